//! Offline Sigstore provenance checks: does this bundle show that this artifact was signed by
//! this identity, as recorded in this Sigstore instance's transparency log?
//!
//! [`verify`] takes the artifact (or [`verify_digest`] its SHA-256), the bundle JSON
//! (v0.1–v0.3, message signature or DSSE), a [`TrustedRoot`] and a [`Policy`] (the
//! certificate identity and OIDC issuer, as cosign's `--certificate-identity` and
//! `--certificate-oidc-issuer` name them), and nothing else: no network, no clock.
//!
//! # What is checked, in this order
//!
//! 1. The bundle parses, has a supported media type and a Fulcio leaf certificate, its
//!    `messageDigest` (if any) is the artifact's, and it has exactly one Rekor entry with an
//!    inclusion proof, a checkpoint and a signed entry timestamp (SET). The SET is required
//!    because it is the only signature over the integration time, which the certificate's
//!    validity is checked against; see [`Error::MissingSignedEntryTimestamp`].
//! 2. The entry's log is a Rekor log of the trusted root, with a usable key.
//! 3. The checkpoint is signed by that log's key (**not done by sigstore-rs**).
//! 4. The inclusion proof is for the checkpoint's tree size and root hash, and its Merkle
//!    path leads from SHA-256(0x00 ‖ canonicalizedBody) to that root (**not done by
//!    sigstore-rs**).
//! 5. The integration time lies within the log key's `validFor` (**not done by
//!    sigstore-rs**) and within the certificate's validity.
//! 6. The SET verifies with the log's key (**not done by sigstore-rs**).
//! 7. sigstore-rs: the certificate chains to a Fulcio CA valid at issuance, its SCT verifies
//!    with a CT log key valid at issuance (the selection by `validFor` is done here;
//!    sigstore-rs ignores `validFor`), identity and issuer match the policy, the
//!    signature verifies for the artifact, and the Rekor body is this very signature,
//!    certificate and digest.
//!
//! All must pass; the order only decides which reason is reported when several would apply.
//! Time checks (5) come before the SET (6) so that a bundle claiming an impossible time is
//! reported as such.
//!
//! Not supported: RFC 3161 timestamps (bundles relying on them instead of a SET are
//! refused), Rekor v2 entries (no SET, and sigstore-rs 0.15 cannot check their bodies),
//! public-key (non-Fulcio) bundles. Bundle and trusted-root JSON is parsed strictly by
//! sigstore's protobuf types: an unknown field is an error, not ignored.

mod bundle;
mod checkpoint;
mod error;
mod keys;
mod merkle;
mod set;
mod signing;
mod trusted_root;
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
    /// When the log integrated the entry, Unix seconds (signed by the SET).
    pub integrated_time: i64,
    /// The entry's global index in the log (as `rekor-cli get --log-index` takes it).
    pub log_index: u64,
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
    let bundle = bundle::parse(bundle_json)?;
    let leaf = bundle::LeafCertificate::from_bundle(&bundle)?;
    bundle::check_message_digest(&bundle, &sha256)?;
    let logged = check_log_entry(&bundle, root, &leaf)?;
    signing::verify(bundle, sha256, root, leaf.not_before, policy)?;
    Ok(Verified {
        identity: policy.identity.clone(),
        oidc_issuer: policy.oidc_issuer.clone(),
        integrated_time: logged.integrated_time,
        log_index: logged.log_index,
        log_id: logged.log_id,
        log_url: logged.log_url,
        tree_size: logged.tree_size,
        root_hash: logged.root_hash,
        sha256,
    })
}

/// What the transparency log checks established, owned so the bundle can move on.
#[derive(Debug)]
struct Logged {
    integrated_time: i64,
    log_index: u64,
    log_id: String,
    log_url: String,
    tree_size: u64,
    root_hash: [u8; 32],
}

/// Steps 1–6 of the crate documentation: everything about the Rekor entry.
fn check_log_entry(
    bundle: &sigstore::bundle::Bundle,
    root: &TrustedRoot,
    leaf: &bundle::LeafCertificate,
) -> Result<Logged, Error> {
    let entry = bundle::LogEntry::from_bundle(bundle)?;
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

    let time = entry.integrated_time;
    if !log.valid.contains(time) {
        return Err(Error::LogKeyNotValidAt {
            time: Rfc3339(time),
            log_id,
            valid: log.valid.to_string(),
        });
    }
    if !leaf.valid_at(time) {
        return Err(Error::IntegratedTimeOutsideCertificate {
            time: Rfc3339(time),
            not_before: Rfc3339(leaf.not_before),
            not_after: Rfc3339(leaf.not_after),
        });
    }
    set::verify(&entry, &key, &log_id)?;

    Ok(Logged {
        integrated_time: time,
        log_index: entry.log_index,
        log_id,
        log_url: log.base_url.clone(),
        tree_size: signed.tree_size,
        root_hash: signed.root_hash,
    })
}
