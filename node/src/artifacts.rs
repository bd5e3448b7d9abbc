//! Releases and their artifacts on one node: importing a proposal's files into the blob
//! store, writing a release's files out (verified), and the per-artifact view that
//! `accord release status` and the API show. Shared by the daemon and by the CLI when no
//! node runs, so both paths apply the same checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use accord_blobs::BlobStore;
use accord_catalogue::{Catalogue, Release};
use accord_mirror::wants::{ReleaseBlobs, pin_tag};
use accord_protocol::statement::Artifact;
use accord_protocol::{ReleaseId, Selector};
use accord_trust::RootChain;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Imports the proposal's files into the store, pinned, and checks that what was imported is
/// exactly what the statement names (a file changed between hashing and import is refused).
pub async fn import(
    store: &BlobStore,
    release: &ReleaseId,
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
            .import(file, &pin_tag(release, &a.name), |n| progress(&a.name, n))
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

/// A proposal checked before its files are imported (the rule is `accord-promote`'s).
pub use accord_promote::inputs::Proposal;

/// What a channel serves for a selector (`accord_promote::channel`: staging serves the
/// statement's artifacts, production exactly what this node pinned when it promoted).
pub fn channel_blobs(
    cat: &Catalogue,
    chain: &RootChain,
    state: &accord_promote::State,
    selector: &str,
    production: bool,
    me: &str,
) -> Result<ReleaseBlobs> {
    accord_promote::channel::channel_blobs(cat, chain, state, selector, production, me)
        .map_err(anyhow::Error::msg)
}

/// The one release a selector names, or why not (`accord_promote::channel::select`).
pub fn select<'c>(cat: &'c Catalogue, sel: &Selector, chain: &RootChain) -> Result<&'c Release> {
    accord_promote::channel::select(cat, sel, chain).map_err(anyhow::Error::msg)
}

pub use accord_promote::channel::releases;

/// Who wrote a statement into the catalogue: "eu (node key 1a2b…)" per author.
pub use accord_promote::inputs::proposers;

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

impl ArtifactView {
    /// The BLAKE3 the view names, as bytes (`None` if it is not 32 bytes of hex).
    pub fn blake3_bytes(&self) -> Option<[u8; 32]> {
        <[u8; 32]>::try_from(hex::decode(&self.blake3).ok()?).ok()
    }
}

/// A release statement as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseView {
    /// SHA-256 of the statement payload: the release's identity.
    pub id: ReleaseId,
    /// `CAP@VER` (not unique when statements conflict; see `conflicts`).
    pub key: String,
    /// Who wrote the statement into the catalogue, e.g. "eu (node key 1a2b3c4d)".
    pub proposed_by: Vec<String>,
    /// Other statements claiming the same `CAP@VER`, as `CAP@VER#ID`.
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// The statement envelope (DSSE JSON) with every approval collected so far.
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
    /// Why this node does not mirror the release (recalled, superseded, over a staging
    /// quota), if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_mirrored: Option<String>,
    /// This node's verdict on the release's upstream provenance: who signed each artifact,
    /// or why it is held. `None` offline, or before the node has checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<accord_promote::provenance::Verdict>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementView {
    /// Hex SHA-256 of the statement's payload.
    pub id: String,
    pub kind: String,
    pub envelope: serde_json::Value,
}

impl ReleaseView {
    pub fn build(
        r: &Release,
        cat: &Catalogue,
        chain: &RootChain,
        held: impl Fn(&[u8; 32]) -> BTreeMap<String, u64>,
    ) -> ReleaseView {
        let env = r.signed_envelope();
        let envelope = serde_json::from_slice(&env.to_json()).unwrap_or(serde_json::Value::Null);
        ReleaseView {
            id: r.id,
            key: r.key(),
            proposed_by: proposers(r, chain),
            conflicts: cat
                .releases
                .iter()
                .filter(|o| o.id != r.id && o.capability == r.capability && o.version == r.version)
                .map(Release::label)
                .collect(),
            envelope,
            signatures: env.signatures.len(),
            promoted_on: Vec::new(),
            artifacts: r
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
            statements: r
                .about
                .iter()
                .filter_map(|s| {
                    Some(StatementView {
                        id: s.id.hex(),
                        kind: s.kind.to_owned(),
                        envelope: serde_json::from_slice(&s.signed_envelope().to_json()).ok()?,
                    })
                })
                .collect(),
            not_mirrored: None,
            provenance: None,
        }
    }

    /// `CAP@VER#<short id>`.
    pub fn label(&self) -> String {
        format!("{}#{}", self.key, self.id.short())
    }

    /// Whether a selector names this release.
    pub fn matches(&self, sel: &Selector) -> bool {
        match self.key.split_once('@') {
            Some((cap, v)) => {
                semver::Version::parse(v).is_ok_and(|v| sel.matches(&self.id, cap, &v))
            }
            None => false,
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
                (have < a.size).then(|| accord_promote::inputs::missing_line(&a.name, have, a.size))
            })
            .collect()
    }
}

pub use accord_mirror::percent;

/// Writes every artifact of a release into `out`, each re-verified against the signed
/// SHA-256 and BLAKE3 on the way out; refuses (writing nothing) unless all are complete.
/// For the production channel `blobs` comes from the node's pinned promotion record, never
/// from the catalogue's current view.
pub async fn export(
    store: &BlobStore,
    blobs: &ReleaseBlobs,
    out: &Path,
    mut progress: impl FnMut(&str, u64),
) -> Result<Vec<accord_blobs::Written>> {
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
            blobs.label,
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
            .with_context(|| format!("{} of {}", a.name, blobs.label))?;
        written.push(w);
    }
    Ok(written)
}
