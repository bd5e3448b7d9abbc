//! The transparency log's signing key, as the trusted root describes it.
//!
//! Signatures are checked with sigstore-rs's `CosignVerificationKey` (aws-lc-rs underneath),
//! so this crate adds no cryptography of its own. What it adds is the match between the key
//! bytes and the trusted root's `keyDetails`: a root that says "ECDSA P-256 / SHA-256" gets
//! exactly that, never whatever algorithm the key bytes happen to encode.

use sigstore::crypto::{CosignVerificationKey, Signature};
use sigstore_protobuf_specs::dev::sigstore::common::v1::PublicKeyDetails;

/// The signature schemes a Rekor log key may use here: ECDSA for Rekor v1 (P-256 today),
/// Ed25519 for the Rekor v2 logs the trusted roots already list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    Ed25519,
}

/// A log's public key, checked against its declared scheme when it was built.
#[derive(Debug, Clone)]
pub(crate) struct LogKey {
    /// DER SubjectPublicKeyInfo, as in the trusted root.
    spki: Vec<u8>,
    scheme: Scheme,
}

impl LogKey {
    /// Builds the key from the trusted root's `rawBytes` and `keyDetails`, refusing keys
    /// whose bytes are not of the declared scheme.
    pub(crate) fn new(spki: &[u8], key_details: i32) -> Result<Self, String> {
        let details = PublicKeyDetails::try_from(key_details)
            .map_err(|_| format!("unknown keyDetails value {key_details}"))?;
        let scheme = match details {
            PublicKeyDetails::PkixEcdsaP256Sha256 => Scheme::EcdsaP256Sha256,
            PublicKeyDetails::PkixEcdsaP384Sha384 => Scheme::EcdsaP384Sha384,
            PublicKeyDetails::PkixEd25519 => Scheme::Ed25519,
            other => return Err(format!("unsupported key type {}", other.as_str_name())),
        };
        let parsed = CosignVerificationKey::try_from_der(spki).map_err(|e| e.to_string())?;
        let matches = matches!(
            (scheme, &parsed),
            (
                Scheme::EcdsaP256Sha256,
                CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_)
            ) | (
                Scheme::EcdsaP384Sha384,
                CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_)
            ) | (Scheme::Ed25519, CosignVerificationKey::ED25519(_))
        );
        if !matches {
            return Err(format!(
                "keyDetails says {} but the key bytes are another kind of key",
                details.as_str_name()
            ));
        }
        Ok(Self {
            spki: spki.to_vec(),
            scheme,
        })
    }

    /// Whether `signature` (DER for ECDSA, 64 raw bytes for Ed25519) signs `message`.
    pub(crate) fn verifies(&self, signature: &[u8], message: &[u8]) -> bool {
        let key = match self.scheme {
            Scheme::EcdsaP256Sha256 => CosignVerificationKey::ECDSA_P256_SHA256_ASN1,
            Scheme::EcdsaP384Sha384 => CosignVerificationKey::ECDSA_P384_SHA384_ASN1,
            Scheme::Ed25519 => CosignVerificationKey::ED25519,
        }(self.spki.clone());
        key.verify_signature(Signature::Raw(signature), message)
            .is_ok()
    }
}
