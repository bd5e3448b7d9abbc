//! Offline Sigstore provenance checks: does this bundle show that this artifact was signed by
//! this identity, as recorded in this Sigstore instance's transparency log?
//!
//! [`verify`] takes the artifact (or [`verify_digest`] its SHA-256), the bundle JSON
//! (v0.1–v0.3, message signature or DSSE, Rekor v1 or v2 entry), a [`TrustedRoot`] and a
//! [`Policy`] (the certificate identity and OIDC issuer, as cosign's
//! `--certificate-identity` and `--certificate-oidc-issuer` name them), and nothing else: no
//! network, no clock.
//!
//! # What is checked, in this order
//!
//! 1. The bundle parses, has a supported media type, a Fulcio leaf certificate, one
//!    signature, and exactly one log entry with an inclusion proof and a checkpoint; its
//!    `messageDigest` (if any) is the artifact's.
//! 2. The entry's log is a Rekor log of the trusted root with a usable key; the checkpoint
//!    is signed by that key (other signatures on it, such as witness cosignatures, are
//!    ignored); the inclusion proof leads from the entry's body to the checkpoint's root.
//! 3. **Time.** Each RFC 3161 timestamp over the signature that a timestamp authority of the
//!    trusted root signed, within its chain's and its `validFor`'s validity, gives a time
//!    ([`tsa`]); a Rekor v1 SET signed by the log gives its integration time. There must be
//!    at least one, and the log key must have been valid at each. The local clock is never
//!    read: certificate validity is judged at these times.
//! 4. At every such time, the certificate chains to a Fulcio CA valid then and is itself
//!    valid; one of its SCTs verifies with a CT log of the root; its key usage allows
//!    signing; its identity and issuer are the policy's.
//! 5. The signature verifies with the certificate's key over the artifact's digest (or the
//!    DSSE envelope, whose in-toto statement must name the artifact).
//! 6. The log entry's body is this very signature, certificate and content.
//!
//! All must pass; the order only decides which reason is reported when several would apply.
//!
//! Not supported: public-key (non-Fulcio) bundles, whose key names no one. Bundle and
//! trusted-root JSON is parsed strictly: an unknown field is an error, not ignored.

mod body;
mod bundle;
mod certificate;
mod checkpoint;
mod content;
mod error;
mod keys;
mod merkle;
mod sct;
mod set;
mod trusted_root;
mod tsa;
mod unix_time;

use sha2::{Digest, Sha256};

pub use bundle::MAX_BUNDLE_BYTES;
pub use error::Error;
pub use trusted_root::{MAX_TRUSTED_ROOT_BYTES, TrustedRoot};
pub use unix_time::Rfc3339;

/// Who must have signed: the certificate's identity (a SAN: e-mail, URI or Sigstore "other
/// name") and the OIDC issuer that vouched for it. Both are compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Expected certificate identity, e.g. `https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1`.
    pub identity: String,
    /// Expected OIDC issuer, e.g. `https://token.actions.githubusercontent.com`.
    pub oidc_issuer: String,
}

impl Policy {
    /// A policy requiring `identity` issued by `oidc_issuer`.
    pub fn new(identity: impl Into<String>, oidc_issuer: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            oidc_issuer: oidc_issuer.into(),
        }
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The certificate identity (equal to the policy's).
    pub identity: String,
    /// The OIDC issuer (equal to the policy's).
    pub oidc_issuer: String,
    /// When it was signed, Unix seconds: the earliest verified time.
    pub signed_at: i64,
    /// Every verified time and what vouches for it.
    pub times: Vec<SignedTime>,
    /// The entry's global index in the log (as `rekor-cli get --log-index` takes it).
    ///
    /// `None` when nothing vouches for it: only a SET signs `logIndex`, and without one it
    /// counts only if it is the inclusion proof's own index (Rekor v2; a sharded Rekor v1
    /// log's global index differs from the index in its shard).
    pub log_index: Option<u64>,
    /// Hex of the log's id (SHA-256 of its key for Rekor v1).
    pub log_id: String,
    /// The log's base URL from the trusted root.
    pub log_url: String,
    /// Size of the tree of the signed checkpoint the entry is proven to be in.
    pub tree_size: u64,
    /// Root hash of that tree.
    pub root_hash: [u8; 32],
    /// SHA-256 of the artifact.
    pub sha256: [u8; 32],
}

/// A verified time of signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTime {
    /// Unix seconds.
    pub at: i64,
    /// Who signed it.
    pub source: TimeSource,
}

/// What vouches for a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// A Rekor v1 signed entry timestamp (the integration time).
    TransparencyLog,
    /// An RFC 3161 timestamp by this authority of the trusted root.
    TimestampAuthority(String),
}

impl std::fmt::Display for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TransparencyLog => f.write_str("transparency log"),
            Self::TimestampAuthority(name) => write!(f, "timestamp authority {name}"),
        }
    }
}

/// Verifies `bundle_json` for the artifact bytes `artifact`. See the crate documentation.
pub fn verify(
    artifact: &[u8],
    bundle_json: &[u8],
    root: &TrustedRoot,
    policy: &Policy,
) -> Result<Verified, Error> {
    verify_digest(Sha256::digest(artifact).into(), bundle_json, root, policy)
}

/// Verifies `bundle_json` for the artifact whose SHA-256 is `sha256`, for artifacts hashed
/// while streaming. See the crate documentation.
pub fn verify_digest(
    sha256: [u8; 32],
    bundle_json: &[u8],
    root: &TrustedRoot,
    policy: &Policy,
) -> Result<Verified, Error> {
    // 1
    let bundle = bundle::parse(bundle_json)?;
    let cert = certificate::SigningCertificate::from_bundle(&bundle)?;
    let signed = content::Signed::from_bundle(&bundle)?;
    bundle::check_message_digest(&bundle, &sha256)?;
    let entry = bundle::LogEntry::from_bundle(&bundle)?;
    // 2
    let logged = check_inclusion(&entry, root)?;
    // 3
    let times = establish_time(&bundle, &entry, &signed, &cert, &logged, root)?;
    // 4
    let mut issuer = None;
    for time in &times {
        issuer = Some(cert.chain_at(root, time.at)?);
    }
    let issuer = issuer.ok_or_else(|| Error::NoVerifiedTime("none".into()))?;
    cert.check_sct(&issuer, root)?;
    cert.check_key_usage()?;
    cert.check_policy(policy)?;
    // 5
    signed.verify(&cert.key, &sha256)?;
    // 6
    body::check(&entry, &signed, &cert, &sha256)?;

    let signed_at = times.iter().map(|t| t.at).min().unwrap_or_default();
    Ok(Verified {
        identity: policy.identity.clone(),
        oidc_issuer: policy.oidc_issuer.clone(),
        signed_at,
        times,
        log_index: (entry.promise.is_some() || entry.log_index == entry.proof.index)
            .then_some(entry.log_index),
        log_id: logged.log.log_id_hex(),
        log_url: logged.log.base_url.clone(),
        tree_size: logged.tree_size,
        root_hash: logged.root_hash,
        sha256,
    })
}

/// What the inclusion checks established.
struct Logged<'r> {
    log: &'r trusted_root::TransparencyLog,
    key: keys::LogKey,
    tree_size: u64,
    root_hash: [u8; 32],
}

/// Step 2: the entry is in a log of the trusted root, proven by a checkpoint it signed.
fn check_inclusion<'r>(
    entry: &bundle::LogEntry<'_>,
    root: &'r TrustedRoot,
) -> Result<Logged<'r>, Error> {
    let log = root
        .rekor_log(entry.log_id)
        .ok_or_else(|| Error::UnknownLog {
            log_id: hex::encode(entry.log_id),
        })?;
    let log_id = log.log_id_hex();
    let key = log.key()?;

    let signed = checkpoint::verify(
        entry.proof.checkpoint,
        &key,
        &log.checkpoint_key_id,
        &log_id,
    )?;
    if signed.tree_size != entry.proof.tree_size {
        return Err(Error::CheckpointTreeSizeMismatch {
            proof: entry.proof.tree_size,
            checkpoint: signed.tree_size,
        });
    }
    if signed.root_hash.as_slice() != entry.proof.root_hash {
        return Err(Error::CheckpointRootHashMismatch {
            proof: hex::encode(entry.proof.root_hash),
            checkpoint: hex::encode(signed.root_hash),
        });
    }
    let computed = merkle::root_from_inclusion_proof(
        entry.proof.index,
        entry.proof.tree_size,
        merkle::leaf_hash(entry.body),
        entry.proof.hashes,
    )
    .map_err(|e| Error::MalformedInclusionProof(e.to_string()))?;
    if computed != signed.root_hash {
        return Err(Error::InclusionProofMismatch);
    }
    Ok(Logged {
        log,
        key,
        tree_size: signed.tree_size,
        root_hash: signed.root_hash,
    })
}

/// Step 3: every time something the trusted root trusts signed, at least one.
fn establish_time(
    bundle: &sigstore_protobuf_specs::dev::sigstore::bundle::v1::Bundle,
    entry: &bundle::LogEntry<'_>,
    signed: &content::Signed<'_>,
    cert: &certificate::SigningCertificate,
    logged: &Logged<'_>,
    root: &TrustedRoot,
) -> Result<Vec<SignedTime>, Error> {
    let mut stamped = Vec::new();
    let mut refused = Vec::new();
    let stamps = bundle::timestamps(bundle)?;
    for stamp in stamps {
        match tsa::verify(stamp, signed.signature(), root) {
            Ok((at, name)) => stamped.push(SignedTime {
                at,
                source: TimeSource::TimestampAuthority(name),
            }),
            Err(reason) => refused.push(reason),
        }
    }
    let mut logged_time = None;
    if let Some(promise) = &entry.promise {
        // Time checks come before the SET so that a bundle claiming an impossible time is
        // reported as such.
        let time = SignedTime {
            at: promise.integrated_time,
            source: TimeSource::TransparencyLog,
        };
        check_log_key_at(logged, time.at)?;
        check_certificate_at(cert, &time)?;
        set::verify(entry, promise, &logged.key, &logged.log.log_id_hex())?;
        logged_time = Some(time);
    }
    if logged_time.is_none() && stamped.is_empty() {
        return Err(Error::NoVerifiedTime(if refused.is_empty() {
            "the bundle has neither a signed entry timestamp nor an RFC 3161 timestamp".into()
        } else {
            format!("no timestamp verifies: {}", refused.join("; "))
        }));
    }
    // The SET's time was checked before the SET; the timestamps' now.
    for time in &stamped {
        check_log_key_at(logged, time.at)?;
        check_certificate_at(cert, time)?;
    }
    stamped.extend(logged_time);
    Ok(stamped)
}

/// The signing certificate must have been valid at `time`.
fn check_certificate_at(
    cert: &certificate::SigningCertificate,
    time: &SignedTime,
) -> Result<(), Error> {
    if cert.valid_at(time.at) {
        Ok(())
    } else {
        Err(Error::TimeOutsideCertificate {
            time: Rfc3339(time.at),
            by: time.source.to_string(),
            not_before: Rfc3339(cert.not_before),
            not_after: Rfc3339(cert.not_after),
        })
    }
}

/// The log's key must have been valid at `t`.
fn check_log_key_at(logged: &Logged<'_>, t: i64) -> Result<(), Error> {
    if logged.log.valid.contains(t) {
        Ok(())
    } else {
        Err(Error::LogKeyNotValidAt {
            time: Rfc3339(t),
            log_id: logged.log.log_id_hex(),
            valid: logged.log.valid.to_string(),
        })
    }
}
