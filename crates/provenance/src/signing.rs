//! The certificate and the artifact signature, checked by sigstore-rs.
//!
//! sigstore-rs 0.15 does these well: the leaf chains to a Fulcio CA (webpki, code-signing
//! EKU), its embedded SCT verifies with a CT log key, the SAN and OIDC issuer match, the
//! signature verifies over the artifact digest (or, for DSSE, over the PAE with a subject
//! carrying the digest), and the Rekor body describes exactly this signature, certificate
//! and digest. This module feeds it the trust material valid at issuance and turns its
//! errors into this crate's reasons.
//!
//! The async `Verifier` is driven by polling its future once rather than through
//! `blocking::Verifier`: the blocking one builds a Tokio runtime and `block_on`s it, which
//! panics when called from inside a runtime, as Accord's node would. The future has no
//! await point (nothing in offline verification waits), so one poll completes it; a future
//! sigstore-rs that did wait would get an error here, not a hang.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sigstore::bundle::Bundle;
use sigstore::bundle::verify::{
    ArtifactDigest, BundleErrorKind, CertificateErrorKind, PolicyError, SignatureErrorKind,
    VerificationError, Verifier, policy::Identity,
};

use crate::Policy;
use crate::error::Error;
use crate::trusted_root::TrustedRoot;
use crate::unix_time::Rfc3339;

/// Has sigstore-rs verify `bundle` for the artifact with digest `sha256` under `policy`,
/// trusting the Fulcio CAs and CT logs of `root` that were valid at `issued_at`.
pub(crate) fn verify(
    bundle: Bundle,
    sha256: [u8; 32],
    root: &TrustedRoot,
    issued_at: i64,
    policy: &Policy,
) -> Result<(), Error> {
    let trust = root.sigstore_trust(Some(issued_at));
    if trust.fulcio_certs.is_empty() {
        return Err(Error::NoFulcioCaAt(Rfc3339(issued_at)));
    }
    let verifier = Verifier::new(Default::default(), trust)
        .map_err(|e| Error::MalformedTrustedRoot(e.to_string()))?;
    let identity = Identity::new(&policy.identity, &policy.oidc_issuer);
    let outcome = poll_once(verifier.verify_digest_with(
        ArtifactDigest::Sha256(sha256),
        bundle,
        &identity,
        true,
    ))
    .ok_or_else(|| Error::Sigstore("offline verification unexpectedly waited".into()))?;
    outcome.map_err(|e| reason(e, &sha256))
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// This crate's reason for a sigstore-rs verification error.
fn reason(error: VerificationError, sha256: &[u8; 32]) -> Error {
    let text = error.to_string();
    match error {
        VerificationError::Certificate(kind) => match kind {
            CertificateErrorKind::Malformed(e) => Error::MalformedCertificate(e.to_string()),
            CertificateErrorKind::VerificationFailed(e) => {
                Error::CertificateChain(format!("{e:?}"))
            }
            CertificateErrorKind::Sct(e) => Error::CertificateTimestamp(e.to_string()),
            _ => Error::Sigstore(text),
        },
        VerificationError::Policy(policy) => match policy {
            PolicyError::ExtensionNotFound => Error::MissingCertificateExtension(
                "SubjectAltName or OIDC issuer (1.3.6.1.4.1.57264.1.1)".into(),
            ),
            PolicyError::ExtensionCheckFailed {
                extension,
                expected,
                actual,
            } => match extension.as_str() {
                "SubjectAltName" => Error::IdentityMismatch {
                    found: actual,
                    expected,
                },
                "OIDCIssuer" => Error::IssuerMismatch {
                    found: actual,
                    expected,
                },
                _ => Error::Sigstore(text),
            },
            _ => Error::Sigstore(text),
        },
        VerificationError::Signature(kind) => match kind {
            SignatureErrorKind::VerificationFailed(_) => Error::ArtifactSignature,
            SignatureErrorKind::Transparency => Error::LogEntryMismatch,
            SignatureErrorKind::SubjectDigestMismatch => {
                Error::ArtifactNotInStatement(hex::encode(sha256))
            }
            SignatureErrorKind::AlgoUnsupported(e) => Error::MalformedCertificate(e.to_string()),
            _ => Error::Sigstore(text),
        },
        VerificationError::Bundle(kind) => match kind {
            BundleErrorKind::TlogEntry(n) => Error::TlogEntryCount(n),
            BundleErrorKind::CertificateMalformed(e) => Error::MalformedCertificate(e.to_string()),
            other => Error::MalformedBundle(other.to_string()),
        },
        VerificationError::Input(_) => Error::Sigstore(text),
    }
}
