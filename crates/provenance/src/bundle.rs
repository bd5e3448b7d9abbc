//! Reading a Sigstore bundle: one parse into sigstore-rs's own `Bundle` value, from which
//! this crate takes the transparency log entry and the leaf certificate, and which is then
//! handed to sigstore-rs unchanged. Both therefore judge the same bytes; there is no second
//! parser an attacker could make disagree with the first.

use sigstore::bundle::Bundle;
use sigstore_protobuf_specs::dev::sigstore::{
    bundle::v1::{bundle, verification_material},
    common::v1::HashAlgorithm,
    rekor::v1::TransparencyLogEntry,
};
use x509_cert::der::Decode;

use crate::error::Error;

/// A bundle is a certificate, a signature and a log entry, a few kilobytes; DSSE bundles add
/// their statement. Anything past this is refused before parsing.
pub const MAX_BUNDLE_BYTES: usize = 4 << 20;

/// The bundle versions sigstore-rs 0.15 verifies (it refuses every other media type).
const MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];

/// Largest integer RFC 8785 writes as plain digits (2^53 - 1); see [`LogEntry::from_bundle`].
const MAX_CANONICAL_INT: i64 = (1 << 53) - 1;

/// Parses bundle JSON and checks its media type.
pub(crate) fn parse(bytes: &[u8]) -> Result<Bundle, Error> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(Error::TooLarge {
            what: "bundle",
            size: bytes.len(),
            max: MAX_BUNDLE_BYTES,
        });
    }
    let bundle: Bundle =
        serde_json::from_slice(bytes).map_err(|e| Error::MalformedBundle(e.to_string()))?;
    if !MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
        return Err(Error::UnsupportedMediaType(bundle.media_type));
    }
    Ok(bundle)
}

/// The Merkle inclusion proof of a log entry, with sizes as unsigned numbers.
#[derive(Debug)]
pub(crate) struct InclusionProof<'a> {
    /// The leaf's index in the tree the proof is for (for sharded Rekor v1 logs, the index
    /// in the shard, not the entry's global `logIndex`).
    pub(crate) index: u64,
    pub(crate) tree_size: u64,
    pub(crate) root_hash: &'a [u8],
    pub(crate) hashes: &'a [Vec<u8>],
    /// The signed-note text of the checkpoint.
    pub(crate) checkpoint: &'a str,
}

/// The one transparency log entry of a bundle, with everything Accord requires present.
#[derive(Debug)]
pub(crate) struct LogEntry<'a> {
    /// Global index in the log (what the SET signs and users look up).
    pub(crate) log_index: u64,
    pub(crate) log_id: &'a [u8],
    pub(crate) integrated_time: i64,
    /// The exact bytes Rekor hashed into the tree and signed in the SET.
    pub(crate) body: &'a [u8],
    pub(crate) signed_entry_timestamp: &'a [u8],
    pub(crate) proof: InclusionProof<'a>,
}

impl<'a> LogEntry<'a> {
    /// Takes the bundle's single log entry, requiring an inclusion proof with a checkpoint
    /// and a signed entry timestamp.
    ///
    /// The SET is required even though bundle v0.2+ make it optional: it is the only thing
    /// that signs `integratedTime` (the Merkle leaf is the body alone), and the certificate's
    /// ten-minute validity is checked against that time. Without it, or an RFC 3161
    /// timestamp (not supported here), the time would be whatever the bundle says.
    ///
    /// `logIndex` and `integratedTime` must be below 2^53, where RFC 8785 (the SET's
    /// canonical JSON) stops writing integers as plain digits; real values are far smaller.
    pub(crate) fn from_bundle(bundle: &'a Bundle) -> Result<Self, Error> {
        let malformed = |what: &str| Error::MalformedBundle(what.to_owned());
        let material = bundle
            .verification_material
            .as_ref()
            .ok_or_else(|| malformed("no verificationMaterial"))?;
        let entry: &TransparencyLogEntry = match material.tlog_entries.as_slice() {
            [entry] => entry,
            entries => return Err(Error::TlogEntryCount(entries.len())),
        };
        let log_index = canonical_int(entry.log_index)
            .ok_or_else(|| malformed("tlog entry logIndex is negative or too large"))?;
        let integrated_time = match canonical_int(entry.integrated_time) {
            Some(t) if t > 0 => entry.integrated_time,
            _ => return Err(malformed("tlog entry has no valid integratedTime")),
        };
        let log_id = entry
            .log_id
            .as_ref()
            .map(|id| id.key_id.as_slice())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed("tlog entry has no logId"))?;
        if entry.canonicalized_body.is_empty() {
            return Err(malformed("tlog entry has no canonicalizedBody"));
        }
        let proof = entry
            .inclusion_proof
            .as_ref()
            .ok_or(Error::MissingInclusionProof)?;
        let checkpoint = proof
            .checkpoint
            .as_ref()
            .map(|c| c.envelope.as_str())
            .filter(|c| !c.is_empty())
            .ok_or(Error::MissingCheckpoint)?;
        let signed_entry_timestamp = entry
            .inclusion_promise
            .as_ref()
            .map(|p| p.signed_entry_timestamp.as_slice())
            .filter(|set| !set.is_empty())
            .ok_or(Error::MissingSignedEntryTimestamp)?;
        let unsigned = |n: i64, what: &str| {
            u64::try_from(n)
                .map_err(|_| Error::MalformedInclusionProof(format!("{what} {n} is negative")))
        };
        Ok(Self {
            log_index,
            log_id,
            integrated_time,
            body: &entry.canonicalized_body,
            signed_entry_timestamp,
            proof: InclusionProof {
                index: unsigned(proof.log_index, "logIndex")?,
                tree_size: unsigned(proof.tree_size, "treeSize")?,
                root_hash: &proof.root_hash,
                hashes: &proof.hashes,
                checkpoint,
            },
        })
    }
}

/// `n` if it is in `0..2^53`.
fn canonical_int(n: i64) -> Option<u64> {
    if (0..=MAX_CANONICAL_INT).contains(&n) {
        u64::try_from(n).ok()
    } else {
        None
    }
}

/// The signing (leaf) certificate's validity, in Unix seconds.
#[derive(Debug)]
pub(crate) struct LeafCertificate {
    /// When Fulcio issued it.
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

impl LeafCertificate {
    /// The first certificate of the bundle (v0.3: the only one; older: the chain's first).
    ///
    /// Public-key bundles are refused: Accord's policy is about who signed (a Fulcio
    /// identity), and a bare key carries none.
    pub(crate) fn from_bundle(bundle: &Bundle) -> Result<Self, Error> {
        let der = match bundle
            .verification_material
            .as_ref()
            .and_then(|m| m.content.as_ref())
        {
            Some(verification_material::Content::Certificate(cert)) => &cert.raw_bytes,
            Some(verification_material::Content::X509CertificateChain(chain)) => chain
                .certificates
                .first()
                .map(|c| &c.raw_bytes)
                .ok_or_else(|| Error::MalformedBundle("certificate chain is empty".into()))?,
            Some(verification_material::Content::PublicKey(_)) => {
                return Err(Error::MalformedBundle(
                    "bundle is signed with a bare public key, not a Fulcio certificate".into(),
                ));
            }
            None => return Err(Error::MalformedBundle("bundle has no certificate".into())),
        };
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Error::MalformedCertificate(e.to_string()))?;
        let validity = cert.tbs_certificate().validity();
        let seconds = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs())
                .map_err(|_| Error::MalformedCertificate("validity out of range".into()))
        };
        Ok(Self {
            not_before: seconds(validity.not_before)?,
            not_after: seconds(validity.not_after)?,
        })
    }

    /// Whether the certificate was valid at `t`, both ends included (RFC 5280).
    pub(crate) fn valid_at(&self, t: i64) -> bool {
        self.not_before <= t && t <= self.not_after
    }
}

/// For a message-signature bundle, refuses it if its `messageDigest` (when SHA-256) is not
/// the artifact's. The signature check would refuse it anyway; this says why in plain words.
pub(crate) fn check_message_digest(bundle: &Bundle, sha256: &[u8; 32]) -> Result<(), Error> {
    let Some(bundle::Content::MessageSignature(signature)) = &bundle.content else {
        return Ok(());
    };
    match &signature.message_digest {
        Some(d) if d.algorithm == HashAlgorithm::Sha2256 as i32 && d.digest != sha256 => {
            Err(Error::ArtifactDigestMismatch {
                artifact: hex::encode(sha256),
                bundle: hex::encode(&d.digest),
            })
        }
        _ => Ok(()),
    }
}
