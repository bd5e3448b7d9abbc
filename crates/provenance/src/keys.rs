//! Public keys and the signatures they verify: transparency-log keys as the trusted root
//! describes them, and the keys of certificates (Fulcio leaves, CA issuers, TSAs).
//!
//! Signatures are checked with aws-lc-rs, the backend sigstore-rs itself uses, so this crate
//! adds no cryptography of its own. What it adds is the match between key bytes and what the
//! key is declared to be: a root that says "ECDSA P-256 / SHA-256" gets exactly that, never
//! whatever algorithm the key bytes happen to encode.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use sigstore_protobuf_specs::dev::sigstore::common::v1::PublicKeyDetails;
use x509_cert::der::Encode;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A hash a signature is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash named by an algorithm OID (a digest OID or an ECDSA/RSA signature OID).
    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match oid.to_string().as_str() {
            "2.16.840.1.101.3.4.2.1" | "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => {
                Self::Sha256
            }
            "2.16.840.1.101.3.4.2.2" | "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => {
                Self::Sha384
            }
            "2.16.840.1.101.3.4.2.3" | "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => {
                Self::Sha512
            }
            _ => return None,
        })
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// The kinds of key Sigstore uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Ed25519,
    Rsa,
}

impl Kind {
    /// The hash a key of this kind signs with when nothing else says (Sigstore's defaults:
    /// the curve's own hash; SHA-256 for RSA).
    pub(crate) fn default_hash(self) -> Hash {
        match self {
            Self::EcdsaP384 => Hash::Sha384,
            Self::EcdsaP521 => Hash::Sha512,
            _ => Hash::Sha256,
        }
    }

    /// `PublicKeyDetails` name, as Rekor v2 entry bodies spell the signer's key type.
    pub(crate) fn details_name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256",
            Self::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384",
            Self::EcdsaP521 => "PKIX_ECDSA_P521_SHA_512",
            Self::Ed25519 => "PKIX_ED25519",
            Self::Rsa => "PKIX_RSA_PKCS1V15_2048_SHA256",
        }
    }
}

/// A public key (DER SubjectPublicKeyInfo) of a known kind.
#[derive(Debug, Clone)]
pub(crate) struct PublicKey {
    spki: Vec<u8>,
    kind: Kind,
}

/// A transparency-log key: the trusted root declares its kind, and it is held to it.
pub(crate) type LogKey = PublicKey;

impl PublicKey {
    /// Builds a log key from the trusted root's `rawBytes` and `keyDetails`, refusing keys
    /// whose bytes are not of the declared kind.
    pub(crate) fn new(spki: &[u8], key_details: i32) -> Result<Self, String> {
        let details = PublicKeyDetails::try_from(key_details)
            .map_err(|_| format!("unknown keyDetails value {key_details}"))?;
        let declared = match details {
            PublicKeyDetails::PkixEcdsaP256Sha256 => Kind::EcdsaP256,
            PublicKeyDetails::PkixEcdsaP384Sha384 => Kind::EcdsaP384,
            PublicKeyDetails::PkixEcdsaP521Sha512 => Kind::EcdsaP521,
            PublicKeyDetails::PkixEd25519 => Kind::Ed25519,
            other => return Err(format!("unsupported key type {}", other.as_str_name())),
        };
        let key = Self::from_der(spki)?;
        if key.kind != declared {
            return Err(format!(
                "keyDetails says {} but the key bytes are another kind of key",
                details.as_str_name()
            ));
        }
        Ok(key)
    }

    /// A key from DER SubjectPublicKeyInfo, its kind read from the key itself (certificate
    /// keys, whose certificate is what declares them).
    pub(crate) fn from_der(spki: &[u8]) -> Result<Self, String> {
        use x509_cert::der::Decode;
        let parsed = SubjectPublicKeyInfoOwned::from_der(spki).map_err(|e| e.to_string())?;
        Self::from_spki(&parsed)
    }

    /// A key from a parsed SubjectPublicKeyInfo.
    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, String> {
        let oid = spki.algorithm.oid;
        let kind = if oid == EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or("EC key without a curve")?
                .decode_as()
                .map_err(|e| format!("EC curve: {e}"))?;
            match curve {
                c if c == P256 => Kind::EcdsaP256,
                c if c == P384 => Kind::EcdsaP384,
                c if c == P521 => Kind::EcdsaP521,
                other => return Err(format!("unsupported EC curve {other}")),
            }
        } else if oid == ED25519 {
            Kind::Ed25519
        } else if oid == RSA {
            Kind::Rsa
        } else {
            return Err(format!("unsupported key algorithm {oid}"));
        };
        Ok(Self {
            spki: spki.to_der().map_err(|e| e.to_string())?,
            kind,
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether `signature` (DER for ECDSA, raw for Ed25519, PKCS#1 v1.5 for RSA) signs
    /// `message` under the key's default hash.
    pub(crate) fn verifies(&self, signature: &[u8], message: &[u8]) -> bool {
        self.verifies_with(self.kind.default_hash(), signature, message)
    }

    /// Whether `signature` signs `message` hashed with `hash`.
    pub(crate) fn verifies_with(&self, hash: Hash, signature: &[u8], message: &[u8]) -> bool {
        self.algorithm(hash).is_some_and(|alg| {
            UnparsedPublicKey::new(alg, &self.spki)
                .verify(message, signature)
                .is_ok()
        })
    }

    /// Whether the ECDSA `signature` signs the already computed `digest` (Sigstore message
    /// signatures sign SHA-256(artifact), and only the digest may be at hand).
    pub(crate) fn verifies_prehashed(&self, hash: Hash, signature: &[u8], digest: &[u8]) -> bool {
        let digest_alg = match hash {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        };
        let (Some(alg), Ok(imported)) = (
            self.ecdsa(hash),
            digest::Digest::import_less_safe(digest, digest_alg),
        ) else {
            return false;
        };
        UnparsedPublicKey::new(alg, &self.spki)
            .verify_digest(&imported, signature)
            .is_ok()
    }

    fn ecdsa(&self, hash: Hash) -> Option<&'static sig::EcdsaVerificationAlgorithm> {
        Some(match (self.kind, hash) {
            (Kind::EcdsaP256, Hash::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
            (Kind::EcdsaP256, Hash::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
            (Kind::EcdsaP384, Hash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
            (Kind::EcdsaP384, Hash::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
            (Kind::EcdsaP521, Hash::Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
            _ => return None,
        })
    }

    fn algorithm(&self, hash: Hash) -> Option<&'static dyn VerificationAlgorithm> {
        match (self.kind, hash) {
            (Kind::Ed25519, _) => Some(&sig::ED25519),
            (Kind::Rsa, Hash::Sha256) => Some(&sig::RSA_PKCS1_2048_8192_SHA256),
            (Kind::Rsa, Hash::Sha384) => Some(&sig::RSA_PKCS1_2048_8192_SHA384),
            (Kind::Rsa, Hash::Sha512) => Some(&sig::RSA_PKCS1_2048_8192_SHA512),
            _ => self
                .ecdsa(hash)
                .map(|alg| alg as &'static dyn VerificationAlgorithm),
        }
    }
}
