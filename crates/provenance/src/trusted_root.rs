//! The Sigstore `trusted_root.json`: which Fulcio CAs, Rekor logs, CT logs and timestamp
//! authorities to believe, and when each was valid.
//!
//! It is parsed with the protobuf-specs types, strictly, and then reduced to what
//! verification needs. Every `validFor` must have its start (the specification requires it;
//! reading a missing start as "always" would widen trust). Keys are only checked when a
//! bundle refers to them: a root listing a log of an unsupported key type stays usable for
//! the logs it lists that are supported.

use rustls_pki_types::CertificateDer;
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
    tsa: Vec<TimestampAuthority>,
}

/// One Fulcio CA: its chain (root last) and when it issued certificates.
#[derive(Debug, Clone)]
pub(crate) struct CertificateAuthority {
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) valid: Window,
}

/// One RFC 3161 timestamp authority: its chain (signing certificate first, root last), what
/// the root calls it, and when its timestamps count.
#[derive(Debug, Clone)]
pub(crate) struct TimestampAuthority {
    pub(crate) name: String,
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) valid: Window,
}

/// One CT log key (DER SPKI) and when it signed SCTs.
#[derive(Debug, Clone)]
pub(crate) struct CtLog {
    pub(crate) log_id: Vec<u8>,
    spki: Vec<u8>,
    key_details: i32,
    pub(crate) valid: Window,
}

impl CtLog {
    /// The log's key, if the root describes a usable one.
    pub(crate) fn key(&self) -> Result<LogKey, String> {
        LogKey::new(&self.spki, self.key_details)
    }
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
    /// certificates webpki cannot use as trust anchors, so that a bad root fails here,
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
                let (chain, valid) = authority(ca, &format!("certificate authority {i}"))?;
                Ok(CertificateAuthority { chain, valid })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let tsa = parsed
            .timestamp_authorities
            .iter()
            .enumerate()
            .map(|(i, ca)| {
                let what = format!("timestamp authority {i}");
                let (chain, valid) = authority(ca, &what)?;
                let name = match (&ca.uri, &ca.subject) {
                    (uri, _) if !uri.is_empty() => uri.clone(),
                    (_, Some(subject)) if !subject.common_name.is_empty() => {
                        subject.common_name.clone()
                    }
                    _ => what,
                };
                Ok(TimestampAuthority { name, chain, valid })
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let rekor = parsed
            .tlogs
            .iter()
            .enumerate()
            .map(|(i, log)| {
                let (log_id, spki, key_details, valid) = log_parts(log, &format!("tlog {i}"))?;
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
                let (log_id, spki, key_details, valid) = log_parts(log, &format!("ctlog {i}"))?;
                Ok(CtLog {
                    log_id,
                    spki,
                    key_details,
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
        // Every Fulcio and TSA certificate must be usable as a trust anchor: refuse the
        // root now rather than on the first bundle.
        let chains = fulcio
            .iter()
            .map(|ca| &ca.chain)
            .chain(tsa.iter().map(|t| &t.chain));
        for der in chains.flatten() {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                .map_err(|e| malformed(format!("unusable CA certificate: {e:?}")))?;
        }
        Ok(Self {
            fulcio,
            rekor,
            ct,
            tsa,
        })
    }

    /// The Rekor log a bundle names by `logId.keyId`.
    pub(crate) fn rekor_log(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.rekor.iter().find(|log| log.log_id == log_id)
    }

    /// The Fulcio CAs whose `validFor` contains `t`.
    pub(crate) fn fulcio_at(&self, t: i64) -> impl Iterator<Item = &CertificateAuthority> {
        self.fulcio.iter().filter(move |ca| ca.valid.contains(t))
    }

    /// The CT log a signed certificate timestamp names.
    pub(crate) fn ct_log(&self, log_id: &[u8]) -> Option<&CtLog> {
        self.ct.iter().find(|log| log.log_id == log_id)
    }

    /// The RFC 3161 timestamp authorities.
    pub(crate) fn timestamp_authorities(&self) -> &[TimestampAuthority] {
        &self.tsa
    }
}

/// A CA's certificate chain and validity, refusing an empty chain or a missing start.
fn authority(
    ca: &proto::CertificateAuthority,
    what: &str,
) -> Result<(Vec<Vec<u8>>, Window), Error> {
    let chain: Vec<Vec<u8>> = ca
        .cert_chain
        .as_ref()
        .map(|c| c.certificates.iter().map(|c| c.raw_bytes.clone()).collect())
        .unwrap_or_default();
    if chain.is_empty() || chain.iter().any(Vec::is_empty) {
        return Err(Error::MalformedTrustedRoot(format!(
            "{what} has no certificates"
        )));
    }
    Ok((chain, window(ca.valid_for.as_ref(), what)?))
}

/// A log's id, key, key type and key validity, refusing an entry without them.
fn log_parts(
    log: &proto::TransparencyLogInstance,
    what: &str,
) -> Result<(Vec<u8>, Vec<u8>, i32, Window), Error> {
    let lacking = || Error::MalformedTrustedRoot(format!("{what} lacks its logId or public key"));
    let log_id = log.log_id.as_ref().ok_or_else(lacking)?.key_id.clone();
    let key = log.public_key.as_ref().ok_or_else(lacking)?;
    let spki = key.raw_bytes.clone().ok_or_else(lacking)?;
    if log_id.is_empty() || spki.is_empty() {
        return Err(lacking());
    }
    let valid = window(key.valid_for.as_ref(), what)?;
    Ok((log_id, spki, key.key_details, valid))
}

/// `validFor` as whole seconds. The start is required; a missing end is open.
///
/// A fractional end second (prod's "2022-12-31T23:59:59.999Z") still counts as that
/// second: the times compared against it are whole seconds.
fn window(range: Option<&TimeRange>, what: &str) -> Result<Window, Error> {
    let start = range
        .and_then(|r| r.start.as_ref())
        .map(|t| t.seconds)
        .ok_or_else(|| Error::MalformedTrustedRoot(format!("{what} has no validFor start")))?;
    Ok(Window {
        start: Some(start),
        end: range.and_then(|r| r.end.as_ref()).map(|t| t.seconds),
    })
}
