//! Reading a Sigstore bundle: one strict parse into the protobuf-specs `Bundle` value, from
//! which every check takes what it needs. There is no second parser an attacker could make
//! disagree with the first.

use sigstore_protobuf_specs::dev::sigstore::bundle::v1::Bundle;
use sigstore_protobuf_specs::dev::sigstore::{
    bundle::v1::bundle, common::v1::HashAlgorithm, rekor::v1::TransparencyLogEntry,
};

use crate::error::Error;

/// A bundle is a certificate, a signature and a log entry, a few kilobytes; DSSE bundles add
/// their statement. Anything past this is refused before parsing.
pub const MAX_BUNDLE_BYTES: usize = 4 << 20;

/// The bundle versions read here; v0.3 has two spellings and both are in use.
const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];

/// v0.1 bundles predate inclusion proofs with checkpoints and must carry a SET instead.
const V0_1: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";

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
    /// `kindVersion`: the body's type, e.g. `hashedrekord` / `0.0.1`.
    pub(crate) kind: &'a str,
    pub(crate) version: &'a str,
    /// The exact bytes Rekor hashed into the tree (and signed in the SET).
    pub(crate) body: &'a [u8],
    /// Rekor v1 only: the integration time and the SET that signs it. `None` when the entry
    /// has no SET (Rekor v2, or a v1 entry relying on signed timestamps): an integrated
    /// time nothing signs is not a time.
    pub(crate) promise: Option<Promise<'a>>,
    pub(crate) proof: InclusionProof<'a>,
}

/// Rekor v1's signed promise of inclusion at a time.
#[derive(Debug)]
pub(crate) struct Promise<'a> {
    pub(crate) integrated_time: i64,
    pub(crate) signed_entry_timestamp: &'a [u8],
}

impl<'a> LogEntry<'a> {
    /// Takes the bundle's single log entry, requiring an inclusion proof with a checkpoint
    /// (v0.1 bundles: a SET instead may do, but Accord requires the proof from all).
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
        let log_id = entry
            .log_id
            .as_ref()
            .map(|id| id.key_id.as_slice())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed("tlog entry has no logId"))?;
        let kind_version = entry
            .kind_version
            .as_ref()
            .filter(|kv| !kv.kind.is_empty() && !kv.version.is_empty())
            .ok_or_else(|| malformed("tlog entry has no kindVersion"))?;
        if entry.canonicalized_body.is_empty() {
            return Err(malformed("tlog entry has no canonicalizedBody"));
        }
        let set = entry
            .inclusion_promise
            .as_ref()
            .map(|p| p.signed_entry_timestamp.as_slice())
            .filter(|set| !set.is_empty());
        let promise = match set {
            Some(signed_entry_timestamp) => match canonical_int(entry.integrated_time) {
                Some(t) if t > 0 => Some(Promise {
                    integrated_time: entry.integrated_time,
                    signed_entry_timestamp,
                }),
                _ => {
                    return Err(malformed(
                        "tlog entry has a SET but no valid integratedTime",
                    ));
                }
            },
            None if bundle.media_type == V0_1 => {
                return Err(Error::MissingSignedEntryTimestamp);
            }
            None => None,
        };
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
        let unsigned = |n: i64, what: &str| {
            u64::try_from(n)
                .map_err(|_| Error::MalformedInclusionProof(format!("{what} {n} is negative")))
        };
        Ok(Self {
            log_index,
            log_id,
            kind: &kind_version.kind,
            version: &kind_version.version,
            body: &entry.canonicalized_body,
            promise,
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

/// The bundle's RFC 3161 timestamps (DER), at most [`crate::tsa::MAX_TIMESTAMPS`] and no
/// two alike.
pub(crate) fn timestamps(bundle: &Bundle) -> Result<Vec<&[u8]>, Error> {
    let stamps: Vec<&[u8]> = bundle
        .verification_material
        .as_ref()
        .and_then(|m| m.timestamp_verification_data.as_ref())
        .map(|d| {
            d.rfc3161_timestamps
                .iter()
                .map(|t| t.signed_timestamp.as_slice())
                .collect()
        })
        .unwrap_or_default();
    if stamps.len() > crate::tsa::MAX_TIMESTAMPS {
        return Err(Error::MalformedBundle(format!(
            "{} signed timestamps, more than {}",
            stamps.len(),
            crate::tsa::MAX_TIMESTAMPS
        )));
    }
    let mut sorted = stamps.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != stamps.len() {
        return Err(Error::MalformedBundle("duplicate signed timestamp".into()));
    }
    Ok(stamps)
}

/// `n` if it is in `0..2^53`.
fn canonical_int(n: i64) -> Option<u64> {
    if (0..=MAX_CANONICAL_INT).contains(&n) {
        u64::try_from(n).ok()
    } else {
        None
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
