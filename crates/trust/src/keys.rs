//! Ed25519 keys and the files that hold them.
//!
//! Private keys are encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with
//! scrypt and AES-256-CBC), public keys are SubjectPublicKeyInfo PEM
//! (`-----BEGIN PUBLIC KEY-----`). Both are what OpenSSL, Go's x509 package and Python's
//! `cryptography` read, so a jurisdiction can inspect, back up or move its keys with the
//! tools it already trusts: `openssl pkey -in lead.key -pubout` prints the `.pub` file.

use std::fmt;
use std::path::Path;

use accord_protocol::KeyId;
use accord_protocol::limits::MAX_KEY_FILE_BYTES;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use pkcs8::der::pem::PemLabel;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};

use crate::error::TrustError;

/// Verification answers, bounded: when full it is cleared (the next verifications repopulate
/// it); a process-wide cache because the same signatures are checked from several places.
mod verify_cache {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    const CAPACITY: usize = 1 << 16;

    fn cache() -> &'static Mutex<HashMap<[u8; 32], bool>> {
        static CACHE: OnceLock<Mutex<HashMap<[u8; 32], bool>>> = OnceLock::new();
        CACHE.get_or_init(|| Mutex::new(HashMap::new()))
    }

    pub fn get(k: &[u8; 32]) -> Option<bool> {
        cache().lock().ok()?.get(k).copied()
    }

    pub fn put(k: [u8; 32], v: bool) {
        if let Ok(mut c) = cache().lock() {
            if c.len() >= CAPACITY {
                c.clear();
            }
            c.insert(k, v);
        }
    }
}

/// A verified-usable public key: a valid point that is not of small order.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id.short())
    }
}

impl PublicKey {
    /// Accepts only keys that `verify_strict` can rely on: a weak key would let anyone forge
    /// signatures that plain verification accepts, so it is refused where keys enter.
    pub fn from_raw(raw: &[u8; 32]) -> Result<Self, TrustError> {
        let id = KeyId::from_public_key(raw);
        let key = VerifyingKey::from_bytes(raw).map_err(|_| TrustError::InvalidKey {
            key: id.short().to_owned(),
        })?;
        if key.is_weak() {
            return Err(TrustError::WeakKey {
                key: id.short().to_owned(),
            });
        }
        Ok(PublicKey { key, id })
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn raw(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Strict Ed25519 verification (RFC 8032 with canonical encodings, no small-order R).
    /// Each (key, message, signature) is verified once per process: the answer is kept in
    /// a bounded cache keyed by their BLAKE3, so re-deciding a release whose signatures did
    /// not change costs hashing, not curve arithmetic (issue 12).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let digest = {
            let mut h = blake3::Hasher::new();
            h.update(b"accord/verify-cache/v1\0");
            h.update(self.key.as_bytes());
            h.update(&(msg.len() as u64).to_le_bytes());
            h.update(msg);
            h.update(sig);
            *h.finalize().as_bytes()
        };
        if let Some(known) = verify_cache::get(&digest) {
            return known;
        }
        let ok = match ed25519_dalek::Signature::from_slice(sig) {
            Ok(sig) => self.key.verify_strict(msg, &sig).is_ok(),
            Err(_) => false,
        };
        verify_cache::put(digest, ok);
        ok
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    pub fn from_pem(text: &str, path: &str) -> Result<Self, TrustError> {
        let key =
            VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| TrustError::KeyFile {
                path: path.to_owned(),
                detail: format!("not an Ed25519 public key (SubjectPublicKeyInfo PEM): {e}"),
            })?;
        PublicKey::from_raw(&key.to_bytes())
    }

    pub fn read(path: &Path) -> Result<Self, TrustError> {
        let text = read_small(path)?;
        Self::from_pem(&text, &path.display().to_string())
    }
}

/// A private signing key. Never printed, never serialized except encrypted.
pub struct SecretKey {
    key: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public.id.short())
    }
}

impl SecretKey {
    pub fn generate() -> Result<Self, TrustError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| TrustError::KeyFile {
            path: "<generate>".into(),
            detail: format!("no randomness from the operating system: {e}"),
        })?;
        Self::from_seed(&seed)
    }

    /// Deterministic keys for tests, simulations and attack vectors.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, TrustError> {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey::from_raw(&key.verifying_key().to_bytes())?;
        Ok(SecretKey { key, public })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn id(&self) -> &KeyId {
        &self.public.id
    }

    /// The 32-byte Ed25519 seed. Only for deriving the node's network identity (libp2p
    /// PeerId, iroh EndpointId) from the same key; never written anywhere unencrypted.
    pub fn seed_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// Encrypted PKCS#8 PEM under `passphrase`.
    pub fn to_encrypted_pem(&self, passphrase: &str) -> Result<String, TrustError> {
        if passphrase.is_empty() {
            return Err(TrustError::KeyFile {
                path: "<new key>".into(),
                detail: "refusing an empty passphrase".into(),
            });
        }
        let fail = |e: &dyn fmt::Display| TrustError::KeyFile {
            path: "<new key>".into(),
            detail: format!("could not encrypt the key: {e}"),
        };
        // PKCS#8 v1 (RFC 5208, no embedded public key): OpenSSL 3.0 cannot read the v2
        // form that dalek writes by default, and the public key is derivable anyway.
        let v1 = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        let der = v1.to_pkcs8_der().map_err(|e| fail(&e))?;
        let info = PrivateKeyInfoRef::try_from(der.as_bytes()).map_err(|e| fail(&e))?;
        let encrypted = info.encrypt(passphrase.as_bytes()).map_err(|e| fail(&e))?;
        let pem = encrypted
            .to_pem(EncryptedPrivateKeyInfoRef::PEM_LABEL, LineEnding::LF)
            .map_err(|e| fail(&e))?;
        Ok(pem.to_string())
    }

    pub fn from_encrypted_pem(
        text: &str,
        passphrase: &str,
        path: &str,
    ) -> Result<Self, TrustError> {
        let trimmed = text.trim();
        if trimmed.starts_with("-----BEGIN PRIVATE KEY-----") {
            return Err(TrustError::KeyFile {
                path: path.to_owned(),
                detail:
                    "the private key is not encrypted; Accord keys must be passphrase-protected \
                         (re-encrypt: openssl pkcs8 -topk8 -scrypt -in KEY -out KEY.enc)"
                        .into(),
            });
        }
        if !trimmed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(TrustError::KeyFile {
                path: path.to_owned(),
                detail:
                    "not an Accord key file (expected '-----BEGIN ENCRYPTED PRIVATE KEY-----', \
                         an Ed25519 key as written by 'accord keys generate')"
                        .into(),
            });
        }
        let key = match SigningKey::from_pkcs8_encrypted_pem(trimmed, passphrase.as_bytes()) {
            Ok(k) => k,
            Err(ed25519_dalek::pkcs8::Error::EncryptedPrivateKey(_)) => {
                return Err(TrustError::WrongPassphrase {
                    path: path.to_owned(),
                });
            }
            Err(e) => {
                return Err(TrustError::KeyFile {
                    path: path.to_owned(),
                    detail: format!("damaged or not an Ed25519 key: {e}"),
                });
            }
        };
        let public = PublicKey::from_raw(&key.verifying_key().to_bytes())?;
        Ok(SecretKey { key, public })
    }

    pub fn read(path: &Path, passphrase: &str) -> Result<Self, TrustError> {
        let text = read_small(path)?;
        Self::from_encrypted_pem(&text, passphrase, &path.display().to_string())
    }

    /// Accepts an unencrypted PKCS#8 PEM. Only for keys that other tools produced and that
    /// the caller explicitly chose to import.
    pub fn from_unencrypted_pem(text: &str, path: &str) -> Result<Self, TrustError> {
        let key = SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| TrustError::KeyFile {
            path: path.to_owned(),
            detail: format!("not an unencrypted Ed25519 PKCS#8 key: {e}"),
        })?;
        let public = PublicKey::from_raw(&key.verifying_key().to_bytes())?;
        Ok(SecretKey { key, public })
    }
}

/// Reads a key file, refusing anything too large to be one (a wrong path to a big file
/// should fail fast, not fill memory).
fn read_small(path: &Path) -> Result<String, TrustError> {
    let shown = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| TrustError::io(format!("cannot read {shown}"), e))?;
    if meta.len() > MAX_KEY_FILE_BYTES as u64 {
        return Err(TrustError::KeyFile {
            path: shown,
            detail: format!("{} bytes is too large for a key file", meta.len()),
        });
    }
    let bytes =
        std::fs::read(path).map_err(|e| TrustError::io(format!("cannot read {shown}"), e))?;
    String::from_utf8(bytes).map_err(|_| TrustError::KeyFile {
        path: shown,
        detail: "not a PEM text file".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_pem_round_trip_and_wrong_passphrase() {
        let k = SecretKey::from_seed(&[7; 32]).expect("key");
        let pem = k.to_encrypted_pem("correct horse").expect("encrypt");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = SecretKey::from_encrypted_pem(&pem, "correct horse", "k").expect("decrypt");
        assert_eq!(back.id(), k.id());
        assert!(matches!(
            SecretKey::from_encrypted_pem(&pem, "wrong", "k"),
            Err(TrustError::WrongPassphrase { .. })
        ));
        let truncated = &pem[..pem.len() / 2];
        assert!(SecretKey::from_encrypted_pem(truncated, "correct horse", "k").is_err());
        assert!(SecretKey::from_encrypted_pem("hello", "x", "k").is_err());
    }

    #[test]
    fn public_pem_round_trip() {
        let k = SecretKey::from_seed(&[9; 32]).expect("key");
        let pem = k.public().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pem, "p").expect("parse"), *k.public());
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point: small order, accepted by VerifyingKey::from_bytes.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_raw(&identity),
            Err(TrustError::WeakKey { .. })
        ));
        // Not a point on the curve (y = 2 has no x).
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert!(PublicKey::from_raw(&bad).is_err());
    }

    #[test]
    fn strict_verification_refuses_the_weak_key_forgery() {
        // R = identity, s = 0 verifies under plain `verify` for the identity key and any
        // message; PublicKey::from_raw never lets such a key in, and verify_strict refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let vk = VerifyingKey::from_bytes(&identity).expect("decodes");
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        assert!(ed25519_dalek::Verifier::verify(&vk, b"anything", &sig).is_ok());
        assert!(vk.verify_strict(b"anything", &sig).is_err());
    }
}
