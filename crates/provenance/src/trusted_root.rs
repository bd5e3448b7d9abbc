//! The Sigstore `trusted_root.json`: which Fulcio CAs, Rekor logs and CT logs to believe,
//! and when each was valid.
//!
//! It is parsed with the protobuf-specs types sigstore-rs itself uses, so that both sides
//! read the same JSON the same way, and then reduced to what verification needs. Keys are
//! only checked when a bundle refers to them: a root listing a log of an unsupported key type
//! stays usable for the logs it lists that are supported.

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;
use sigstore::trust::ManualTrustRoot;
use sigstore_protobuf_specs::dev::sigstore::{
    common::v1::{HashAlgorithm, TimeRange},
    trustroot::v1 as proto,
};

use crate::error::Error;
use crate::keys::LogKey;
use crate::unix_time::Window;

/// Trusted roots are a few kilobytes; anything near this is not one.
pub const MAX_TRUSTED_ROOT_BYTES: usize = 1 << 20;

/// Media types of the `TrustedRoot` versions this crate reads (v0.1 and v0.2).
const MEDIA_TYPES: [&str; 2] = [
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
];

/// What a trusted root says about the Sigstore instance to believe: its Fulcio CAs, its
/// Rekor transparency logs and its certificate-transparency logs, each with the time range
/// it was valid for.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    fulcio: Vec<CertificateAuthority>,
    rekor: Vec<TransparencyLog>,
    ct: Vec<CtLog>,
}

/// One Fulcio CA: its chain (root last) and when it issued certificates.
#[derive(Debug, Clone)]
struct CertificateAuthority {
    chain: Vec<Vec<u8>>,
    valid: Window,
}

/// One CT log key (DER SPKI) and when it signed SCTs.
#[derive(Debug, Clone)]
struct CtLog {
    log_id: Vec<u8>,
    spki: Vec<u8>,
    valid: Window,
}

/// One Rekor log as the trusted root lists it.
#[derive(Debug, Clone)]
pub(crate) struct TransparencyLog {
    pub(crate) base_url: String,
    /// The id bundles use to name this log (`logId.keyId`).
    pub(crate) log_id: Vec<u8>,
    /// The key id its checkpoints' signature lines carry a 4-byte hint of: `checkpointKeyId`
    /// where the root gives one, else `logId` (for Rekor v1 both are SHA-256 of the key).
    pub(crate) checkpoint_key_id: Vec<u8>,
    spki: Vec<u8>,
    key_details: i32,
    hash_algorithm: i32,
    pub(crate) valid: Window,
}

impl TransparencyLog {
    /// Hex of the log id, as errors show it.
    pub(crate) fn log_id_hex(&self) -> String {
        hex::encode(&self.log_id)
    }

    /// The log's key, if the root describes a usable one for a SHA-256 Merkle tree.
    pub(crate) fn key(&self) -> Result<LogKey, Error> {
        let unusable = |reason: String| Error::UnusableLogKey {
            log_id: self.log_id_hex(),
            reason,
        };
        if self.hash_algorithm != HashAlgorithm::Sha2256 as i32 {
            return Err(unusable(format!(
                "its Merkle tree hash is {}, only SHA2_256 is supported",
                HashAlgorithm::try_from(self.hash_algorithm).map_or("unknown", |h| h.as_str_name())
            )));
        }
        LogKey::new(&self.spki, self.key_details).map_err(unusable)
    }
}

impl TrustedRoot {
    /// Parses `trusted_root.json` bytes (Sigstore `TrustedRoot`, media type v0.1 or v0.2).
    ///
    /// Refuses roots without a Fulcio CA or a Rekor log, entries without keys, and Fulcio
    /// certificates sigstore-rs cannot use as trust anchors, so that a bad root fails here,
    /// when it is installed, rather than on the first bundle.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_TRUSTED_ROOT_BYTES {
            return Err(Error::TooLarge {
                what: "trusted root",
                size: bytes.len(),
                max: MAX_TRUSTED_ROOT_BYTES,
            });
        }
        let malformed = Error::MalformedTrustedRoot;
        let parsed: proto::TrustedRoot =
            serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if !MEDIA_TYPES.contains(&parsed.media_type.as_str()) {
            return Err(malformed(format!(
                "unsupported media type {:?}",
                parsed.media_type
            )));
        }

        let fulcio = parsed
            .certificate_authorities
            .iter()
            .enumerate()
            .map(|(i, ca)| {
                let chain: Vec<Vec<u8>> = ca
                    .cert_chain
                    .as_ref()
                    .map(|c| c.certificates.iter().map(|c| c.raw_bytes.clone()).collect())
                    .unwrap_or_default();
                if chain.is_empty() || chain.iter().any(Vec::is_empty) {
                    return Err(malformed(format!(
                        "certificate authority {i} has no certificates"
                    )));
                }
                Ok(CertificateAuthority {
                    chain,
                    valid: window(ca.valid_for.as_ref()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let rekor = parsed
            .tlogs
            .iter()
            .enumerate()
            .map(|(i, log)| {
                let (log_id, spki, key_details, valid) = log_parts(log)
                    .ok_or_else(|| malformed(format!("tlog {i} lacks its logId or public key")))?;
                let checkpoint_key_id = log
                    .checkpoint_key_id
                    .as_ref()
                    .map(|id| id.key_id.clone())
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| log_id.clone());
                Ok(TransparencyLog {
                    base_url: log.base_url.clone(),
                    log_id,
                    checkpoint_key_id,
                    spki,
                    key_details,
                    hash_algorithm: log.hash_algorithm,
                    valid,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let ct = parsed
            .ctlogs
            .iter()
            .enumerate()
            .map(|(i, log)| {
                let (log_id, spki, _, valid) = log_parts(log)
                    .ok_or_else(|| malformed(format!("ctlog {i} lacks its logId or public key")))?;
                Ok(CtLog {
                    log_id,
                    spki,
                    valid,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;

        if fulcio.is_empty() {
            return Err(malformed("no Fulcio certificate authority".into()));
        }
        if rekor.is_empty() {
            return Err(malformed("no Rekor transparency log".into()));
        }
        let root = Self { fulcio, rekor, ct };
        // sigstore-rs turns every Fulcio certificate into a webpki trust anchor; let it
        // refuse the ones it cannot use now.
        sigstore::bundle::verify::Verifier::new(Default::default(), root.sigstore_trust(None))
            .map_err(|e| malformed(format!("Fulcio certificates: {e}")))?;
        Ok(root)
    }

    /// The Rekor log a bundle names by `logId.keyId`.
    pub(crate) fn rekor_log(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.rekor.iter().find(|log| log.log_id == log_id)
    }

    /// The trust material sigstore-rs checks the certificate with: the Fulcio CAs and CT log
    /// keys valid at `issued_at` (the certificate's notBefore), or all of them for `None`.
    ///
    /// sigstore-rs ignores `validFor` itself, so the selection happens here; Rekor keys are
    /// left out because sigstore-rs does not use them (this crate checks the log itself).
    pub(crate) fn sigstore_trust(&self, issued_at: Option<i64>) -> ManualTrustRoot<'_> {
        let valid = |w: &Window| issued_at.is_none_or(|t| w.contains(t));
        ManualTrustRoot {
            fulcio_certs: self
                .fulcio
                .iter()
                .filter(|ca| valid(&ca.valid))
                .flat_map(|ca| ca.chain.iter())
                .map(|der| CertificateDer::from(der.as_slice()))
                .collect(),
            rekor_keys: BTreeMap::new(),
            ctfe_keys: self
                .ct
                .iter()
                .filter(|log| valid(&log.valid))
                .map(|log| (hex::encode(&log.log_id), log.spki.clone()))
                .collect(),
        }
    }
}

/// A log's id, key, key type and key validity, if the entry has them.
fn log_parts(log: &proto::TransparencyLogInstance) -> Option<(Vec<u8>, Vec<u8>, i32, Window)> {
    let log_id = log.log_id.as_ref()?.key_id.clone();
    let key = log.public_key.as_ref()?;
    let spki = key.raw_bytes.clone()?;
    if log_id.is_empty() || spki.is_empty() {
        return None;
    }
    Some((
        log_id,
        spki,
        key.key_details,
        window(key.valid_for.as_ref()),
    ))
}

/// `validFor` as whole seconds; a missing range or end is open.
///
/// A fractional end second (prod's "2022-12-31T23:59:59.999Z") still counts as that
/// second: the times compared against it are whole seconds.
fn window(range: Option<&TimeRange>) -> Window {
    Window {
        start: range.and_then(|r| r.start.as_ref()).map(|t| t.seconds),
        end: range.and_then(|r| r.end.as_ref()).map(|t| t.seconds),
    }
}
