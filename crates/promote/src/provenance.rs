//! Upstream provenance as a promotion input (issue 17): a release whose statement carries
//! Sigstore bundles is not "here" on a node until that node has verified every bundle
//! itself, against its own Sigstore trusted root and identity policy. The node's core asks
//! for the check once the bundles' bytes are held here (they are artifacts of the release,
//! mirrored like the others) and keeps the verdict; the engine sees a refusal as the reason
//! the release waits.

use accord_catalogue::schema::Release;
use serde::{Deserialize, Serialize};

/// One bundle to verify: the artifact it is about and the artifact that holds it, with the
/// digests the signed statement gives for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub artifact: String,
    pub artifact_sha256: [u8; 32],
    /// The artifact's blob, whose SHA-256 the verifier computes from the held bytes: the
    /// statement's SHA-256 alone is a claim.
    pub artifact_blake3: [u8; 32],
    pub artifact_size: u64,
    pub bundle: String,
    pub bundle_sha256: [u8; 32],
    pub bundle_blake3: [u8; 32],
    pub bundle_size: u64,
}

/// What a node found when it verified a release's provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Verdict {
    /// Every bundle verified (and every artifact the local policy requires provenance for
    /// has one); who signed each artifact.
    Verified { artifacts: Vec<Signer> },
    /// Why the release is held here.
    Refused { reason: String },
}

/// Who signed one artifact upstream, as this node verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    pub artifact: String,
    pub identity: String,
    pub issuer: String,
    /// When it was signed (Unix seconds), from the log or a timestamp authority.
    pub signed_at: i64,
}

/// The bundles of `release` to verify, in the statement's order. A reference whose
/// subjects are missing cannot occur: the statement was checked when it was read.
pub fn checks(release: &Release) -> Vec<Check> {
    let find = |name: &str| release.artifacts.iter().find(|a| a.name == name);
    release
        .provenance
        .iter()
        .filter_map(|p| {
            let artifact = find(&p.artifact)?;
            let bundle = find(&p.bundle)?;
            Some(Check {
                artifact: artifact.name.clone(),
                artifact_sha256: artifact.sha256,
                artifact_blake3: artifact.blake3,
                artifact_size: artifact.size,
                bundle: bundle.name.clone(),
                bundle_sha256: bundle.sha256,
                bundle_blake3: bundle.blake3,
                bundle_size: bundle.size,
            })
        })
        .collect()
}

/// The artifacts of `release` that are not themselves provenance bundles.
pub fn payload_artifacts(release: &Release) -> impl Iterator<Item = &str> {
    release
        .artifacts
        .iter()
        .map(|a| a.name.as_str())
        .filter(|name| !release.provenance.iter().any(|p| p.bundle == *name))
}

/// The engine's line for a release whose provenance is not (yet) verified here, or `None`
/// when it is.
pub fn line(verdict: Option<&Verdict>) -> Option<String> {
    match verdict {
        Some(Verdict::Verified { .. }) => None,
        Some(Verdict::Refused { reason }) => Some(format!("provenance refused here: {reason}")),
        None => Some("provenance not verified here yet".into()),
    }
}
