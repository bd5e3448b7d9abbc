//! Why a bundle was rejected.
//!
//! One variant per reason, each displayed as one line that names the check that failed, so
//! the node can print it as is and tests can assert on the exact reason rather than on "it
//! failed somewhere".

use crate::unix_time::Rfc3339;

/// A Sigstore bundle, or the trusted root it was checked against, was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the inputs themselves -------------------------------------------------------------
    /// The trusted root is not a Sigstore `TrustedRoot` document we can use.
    #[error("trusted root is malformed: {0}")]
    MalformedTrustedRoot(String),

    /// The bundle is not valid Sigstore bundle JSON, or lacks a part every bundle has.
    #[error("bundle is malformed: {0}")]
    MalformedBundle(String),

    /// The input is larger than anything legitimate; refused before parsing.
    #[error("{what} is {size} bytes, more than the {max} accepted")]
    TooLarge {
        /// "bundle" or "trusted root".
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// The bundle's media type is not one of the versions this crate verifies.
    #[error("unsupported bundle media type {0:?} (expected a Sigstore bundle v0.1, v0.2 or v0.3)")]
    UnsupportedMediaType(String),

    /// The bundle carries something other than exactly one transparency log entry.
    #[error("bundle has {0} transparency log entries, expected exactly one")]
    TlogEntryCount(usize),

    /// The log entry has no Merkle inclusion proof, so nothing shows it is in the log.
    #[error("transparency log entry has no inclusion proof")]
    MissingInclusionProof,

    /// The inclusion proof has no checkpoint, so nothing signed vouches for its root hash.
    #[error("inclusion proof has no checkpoint")]
    MissingCheckpoint,

    /// The log entry has no signed entry timestamp: nothing signed vouches for its time.
    #[error("a v0.1 bundle's log entry has no signed entry timestamp, which that version requires")]
    MissingSignedEntryTimestamp,

    /// The bundle names a transparency log the trusted root does not know.
    #[error("transparency log {log_id} is not a Rekor log of the trusted root")]
    UnknownLog {
        /// Hex of the bundle's log id.
        log_id: String,
    },

    /// The trusted root's key for the log cannot be used (unsupported or malformed).
    #[error("Rekor key {log_id} of the trusted root is unusable: {reason}")]
    UnusableLogKey {
        /// Hex of the log id.
        log_id: String,
        /// What is wrong with the key.
        reason: String,
    },

    // --- the transparency log entry ----------------------------------------------------------
    /// The inclusion proof's index, size or hashes are structurally wrong.
    #[error("inclusion proof is malformed: {0}")]
    MalformedInclusionProof(String),

    /// The Merkle path from the entry's leaf hash does not reach the checkpoint's root hash.
    #[error("inclusion proof does not lead to the checkpoint's root hash")]
    InclusionProofMismatch,

    /// The checkpoint is not a well-formed signed note.
    #[error("checkpoint is malformed: {0}")]
    MalformedCheckpoint(String),

    /// The checkpoint carries no signature line with the log's key hint.
    #[error("checkpoint has no signature by Rekor log {log_id} of the trusted root")]
    CheckpointNotSignedByLog {
        /// Hex of the log id.
        log_id: String,
    },

    /// The checkpoint's signature by the log's key hint does not verify.
    #[error("checkpoint signature does not verify with Rekor key {log_id} of the trusted root")]
    CheckpointSignature {
        /// Hex of the log id.
        log_id: String,
    },

    /// The signed checkpoint describes another tree than the inclusion proof.
    #[error(
        "inclusion proof is for tree size {proof}, but the signed checkpoint is for {checkpoint}"
    )]
    CheckpointTreeSizeMismatch {
        /// Tree size in the inclusion proof.
        proof: u64,
        /// Tree size in the signed checkpoint.
        checkpoint: u64,
    },

    /// The inclusion proof claims another root hash than the signed checkpoint.
    #[error("inclusion proof root hash {proof} differs from the signed checkpoint's {checkpoint}")]
    CheckpointRootHashMismatch {
        /// Hex of the inclusion proof's root hash.
        proof: String,
        /// Hex of the checkpoint's root hash.
        checkpoint: String,
    },

    /// The signed entry timestamp (inclusion promise) does not verify.
    #[error("signed entry timestamp does not verify with Rekor key {log_id} of the trusted root")]
    SignedEntryTimestamp {
        /// Hex of the log id.
        log_id: String,
    },

    /// The log's key in the trusted root was not valid when the entry was integrated.
    #[error("signing time {time} is outside the validity of Rekor key {log_id} ({valid})")]
    LogKeyNotValidAt {
        /// When the entry claims to have been integrated.
        time: Rfc3339,
        /// Hex of the log id.
        log_id: String,
        /// The key's validity range.
        valid: String,
    },

    // --- the signing certificate -----------------------------------------------------------
    /// A verified time of signing falls outside the (short-lived) certificate's validity.
    #[error(
        "signing time {time} (from the {by}) is outside the certificate's validity {not_before} .. {not_after}"
    )]
    TimeOutsideCertificate {
        /// The verified time.
        time: Rfc3339,
        /// What vouches for it.
        by: String,
        /// Certificate notBefore.
        not_before: Rfc3339,
        /// Certificate notAfter.
        not_after: Rfc3339,
    },

    /// The leaf certificate cannot be parsed.
    #[error("signing certificate is malformed: {0}")]
    MalformedCertificate(String),

    /// No Fulcio CA of the trusted root was valid when the certificate was issued.
    #[error("no Fulcio CA of the trusted root was valid when the certificate was issued ({0})")]
    NoFulcioCaAt(Rfc3339),

    /// The certificate does not chain to a Fulcio CA of the trusted root.
    #[error("signing certificate does not chain to a Fulcio CA of the trusted root: {0}")]
    CertificateChain(String),

    /// The certificate's embedded SCT does not verify with a CT log key of the trusted root.
    #[error("signing certificate's SCT does not verify with a CT log of the trusted root: {0}")]
    CertificateTimestamp(String),

    /// The certificate lacks the SAN or the OIDC issuer extension.
    #[error("signing certificate has no usable {0} extension")]
    MissingCertificateExtension(String),

    /// The certificate was issued to someone else.
    #[error("certificate identity is {found}, expected {expected}")]
    IdentityMismatch {
        /// The identities (SANs) in the certificate.
        found: String,
        /// The identity the policy requires.
        expected: String,
    },

    /// The certificate's identity was vouched for by another OIDC issuer.
    #[error("certificate OIDC issuer is {found}, expected {expected}")]
    IssuerMismatch {
        /// The issuer in the certificate.
        found: String,
        /// The issuer the policy requires.
        expected: String,
    },

    // --- the artifact ----------------------------------------------------------------------
    /// The bundle is about another artifact (its message digest differs).
    #[error("artifact sha256 is {artifact}, but the bundle is for {bundle}")]
    ArtifactDigestMismatch {
        /// Hex sha256 of the artifact given.
        artifact: String,
        /// Hex of the bundle's message digest.
        bundle: String,
    },

    /// No subject of the DSSE statement has the artifact's digest.
    #[error("no subject of the bundle's in-toto statement has the artifact's sha256 {0}")]
    ArtifactNotInStatement(String),

    /// The signature does not verify with the certificate's key.
    #[error("artifact signature does not verify with the signing certificate's key")]
    ArtifactSignature,

    /// The log entry's body describes another signature, certificate or artifact.
    #[error(
        "transparency log entry's body does not match the bundle's signature, certificate and artifact"
    )]
    LogEntryMismatch,

    /// The log entry is of a kind (type and version) this crate cannot compare with the
    /// bundle.
    #[error("transparency log entry kind {kind} {version} is not supported")]
    UnsupportedLogEntry {
        /// `kindVersion.kind`.
        kind: String,
        /// `kindVersion.version`.
        version: String,
    },

    /// Nothing the trusted root trusts vouches for when the bundle was signed.
    #[error("no verified time of signing: {0}")]
    NoVerifiedTime(String),
}
