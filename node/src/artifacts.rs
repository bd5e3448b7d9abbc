//! Releases and their artifacts on one node: importing a proposal's files into the blob
//! store, writing a release's files out (verified), and the per-artifact view that
//! `accord release status` and the API show. Shared by the daemon and by the CLI when no
//! node runs, so both paths apply the same checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use accord_catalogue::Catalogue;
use accord_catalogue::schema::ReleaseEntry;
use accord_mirror::BlobStore;
use accord_mirror::wants::{ReleaseBlobs, pin_tag, release_blobs};
use accord_protocol::statement::Artifact;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// `CAP-B01@1.4.0`: how the catalogue and the CLI name a release.
pub fn release_key(capability: &str, version: &semver::Version) -> String {
    format!("{capability}@{version}")
}

/// Imports the proposal's files into the store, pinned, and checks that what was imported is
/// exactly what the statement names (a file changed between hashing and import is refused).
pub async fn import(
    store: &BlobStore,
    key: &str,
    artifacts: &[Artifact],
    files: &[PathBuf],
    mut progress: impl FnMut(&str, u64),
) -> Result<()> {
    if artifacts.len() != files.len() {
        bail!(
            "the statement names {} artifacts but {} files were given",
            artifacts.len(),
            files.len()
        );
    }
    for a in artifacts {
        let file = files
            .iter()
            .find(|f| f.file_name().and_then(|n| n.to_str()) == Some(a.name.as_str()))
            .with_context(|| format!("no file named {} was given", a.name))?;
        let (hash, size) = store
            .import(file, &pin_tag(key, &a.name), |n| progress(&a.name, n))
            .await?;
        if hash != a.blake3 || size != a.size {
            bail!(
                "{} changed while it was being proposed (BLAKE3 {} size {}, expected {} size {})",
                file.display(),
                hex::encode(hash),
                size,
                hex::encode(a.blake3),
                a.size
            );
        }
    }
    Ok(())
}

/// Every release in the catalogue whose envelope is a release statement; the others are
/// reported and left alone.
pub fn releases(cat: &Catalogue) -> (Vec<(ReleaseBlobs, &ReleaseEntry)>, Vec<String>) {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for r in &cat.releases {
        match release_blobs(&r.key, &r.envelope) {
            Ok(b) => ok.push((b, r)),
            Err(e) => problems.push(e),
        }
    }
    (ok, problems)
}

/// One artifact of a release and how much of it each node holds (verified bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactView {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub blake3: String,
    /// jurisdiction -> verified bytes held
    pub held: BTreeMap<String, u64>,
}

/// A release as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseView {
    pub key: String,
    /// The statement envelope (DSSE JSON), exactly as signed.
    pub envelope: serde_json::Value,
    pub signatures: usize,
    /// Jurisdictions whose signed promotion note says the release is live there.
    pub promoted_on: Vec<String>,
    pub artifacts: Vec<ArtifactView>,
    /// Per jurisdiction: signatures, mirror progress, state and why not live yet.
    #[serde(default)]
    pub jurisdictions: Vec<crate::promotion::JurisdictionView>,
    /// Recall and conditional statements about the release, with their signatures.
    #[serde(default)]
    pub statements: Vec<StatementView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementView {
    /// Hex SHA-256 of the statement's payload.
    pub id: String,
    pub envelope: serde_json::Value,
}

impl ReleaseView {
    pub fn build(
        blobs: &ReleaseBlobs,
        entry: &ReleaseEntry,
        held: impl Fn(&[u8; 32]) -> BTreeMap<String, u64>,
    ) -> ReleaseView {
        let envelope = serde_json::from_slice(&entry.envelope).unwrap_or(serde_json::Value::Null);
        let signatures = envelope["signatures"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
            + entry.approvals.len();
        ReleaseView {
            key: blobs.key.clone(),
            envelope,
            signatures,
            promoted_on: Vec::new(),
            artifacts: blobs
                .artifacts
                .iter()
                .map(|a| ArtifactView {
                    name: a.name.clone(),
                    size: a.size,
                    sha256: hex::encode(a.sha256),
                    blake3: hex::encode(a.blake3),
                    held: held(&a.blake3),
                })
                .collect(),
            jurisdictions: Vec::new(),
            statements: entry
                .statements
                .iter()
                .filter_map(|(id, s)| {
                    let env = s.signed_envelope().ok()?;
                    Some(StatementView {
                        id: id.clone(),
                        envelope: serde_json::from_slice(&env.to_json()).ok()?,
                    })
                })
                .collect(),
        }
    }

    /// Sets the per-jurisdiction lines, and from them where the release is live.
    pub fn explained(&mut self, lines: Vec<crate::promotion::JurisdictionView>) {
        self.promoted_on = lines
            .iter()
            .filter(|j| j.state == "live")
            .map(|j| j.jurisdiction.clone())
            .collect();
        self.jurisdictions = lines;
    }

    /// What is still missing on `jurisdiction`, one phrase per artifact.
    pub fn missing_on(&self, jurisdiction: &str) -> Vec<String> {
        self.artifacts
            .iter()
            .filter_map(|a| {
                let have = a.held.get(jurisdiction).copied().unwrap_or(0);
                (have < a.size).then(|| {
                    format!(
                        "artifact {} {}% mirrored ({} of {} bytes)",
                        a.name,
                        percent(have, a.size),
                        have,
                        a.size
                    )
                })
            })
            .collect()
    }
}

pub fn percent(have: u64, size: u64) -> u64 {
    have.saturating_mul(100).checked_div(size).unwrap_or(100)
}

/// Parses `CAP-B01@1.4.0`.
pub fn parse_key(s: &str) -> Result<(String, semver::Version)> {
    let (cap, v) = s
        .split_once('@')
        .with_context(|| format!("{s:?} is not CAPABILITY@VERSION (e.g. CAP-B01@1.4.0)"))?;
    let v = semver::Version::parse(v)
        .with_context(|| format!("{v:?} is not a semantic version (e.g. 1.4.0)"))?;
    Ok((cap.to_owned(), v))
}

/// Writes every artifact of a release into `out`, each re-verified against the signed
/// SHA-256 and BLAKE3 on the way out; refuses (writing nothing) unless all are complete.
pub async fn export(
    store: &BlobStore,
    blobs: &ReleaseBlobs,
    out: &Path,
    mut progress: impl FnMut(&str, u64),
) -> Result<Vec<accord_mirror::Written>> {
    let mut missing = Vec::new();
    for a in &blobs.artifacts {
        let local = store.local(&a.blake3).await?;
        if !local.complete {
            missing.push(format!(
                "{} {}% mirrored ({} of {} bytes)",
                a.name,
                percent(local.bytes, a.size),
                local.bytes,
                a.size
            ));
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} is not fully mirrored on this node yet: {}",
            blobs.key,
            missing.join("; ")
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for a in &blobs.artifacts {
        let dest = out.join(&a.name);
        let w = store
            .export_verified(&a.blake3, &a.sha256, &dest, |n| progress(&a.name, n))
            .await
            .with_context(|| format!("{} of {}", a.name, blobs.key))?;
        written.push(w);
    }
    Ok(written)
}
