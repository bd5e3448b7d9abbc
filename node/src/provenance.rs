//! Every node verifies upstream provenance itself (issue 17): once a release's blobs are
//! held here, the core asks (`Io::VerifyProvenance`) and this module reads each Sigstore
//! bundle from the blob store (BLAKE3-verified as read, then checked against the SHA-256 the
//! signed statement gives), verifies it offline for its artifact's SHA-256 against this
//! node's Sigstore trusted root and the identities its config allows for the capability,
//! and returns the verdict the core keeps. Nothing is fetched from the network.

use std::path::{Path, PathBuf};

use accord_blobs::BlobStore;
use accord_promote::provenance::{Check, Signer, Verdict};
use accord_provenance::{MAX_BUNDLE_BYTES, MAX_TRUSTED_ROOT_BYTES, Policy, TrustedRoot};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::{SignerRule, SigstoreConfig};

/// The trusted root file the steering committee's newest signed update is kept in, in the
/// data directory; it takes the config's place once applied.
pub const APPLIED_ROOT: &str = "sigstore_trusted_root.json";
/// The signed update itself, beside it: its sequence is the floor for the next one.
pub const APPLIED_UPDATE: &str = "sigstore_trusted_root.update.json";

/// Installs a Sigstore trusted-root update in `data_dir` if its signatures meet the root
/// rule of `root` (the node's current cooperative root), it replaces the trusted root the
/// node uses now (the last one applied, else `configured`, the config's), it is newer than
/// the one applied before, and its trusted root is usable. The root is written before the update, each
/// atomically: a crash between the two leaves the new root with the old floor, and applying
/// the same update again completes it.
pub fn apply_update(
    data_dir: &Path,
    envelope: &[u8],
    root: &accord_trust::TrustedRoot,
    configured: &Path,
) -> Result<accord_trust::sigstore_root::SigstoreRootUpdate> {
    let env = accord_protocol::Envelope::from_json(envelope).context("not an update envelope")?;
    let applied = match std::fs::read(data_dir.join(APPLIED_UPDATE)) {
        Ok(bytes) => Some(
            accord_protocol::Envelope::from_json(&bytes)
                .ok()
                .and_then(|e| accord_trust::sigstore_root::read(&e).ok())
                .map(|u| u.sequence)
                .context("the update applied before is unreadable")?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("cannot read the update applied before"),
    };
    let applied_root = data_dir.join(APPLIED_ROOT);
    let current_path = if applied_root.exists() {
        applied_root
    } else {
        configured.to_path_buf()
    };
    let current =
        crate::files::read_limited(&current_path, MAX_TRUSTED_ROOT_BYTES).with_context(|| {
            format!(
                "cannot read the trusted root in use, {}",
                current_path.display()
            )
        })?;
    let update = accord_trust::sigstore_root::verify(&env, root, &current, applied)?;
    TrustedRoot::from_json(&update.trusted_root)
        .context("the update's trusted root is not usable")?;
    crate::files::write_atomic(&data_dir.join(APPLIED_ROOT), &update.trusted_root, false)?;
    crate::files::write_atomic(&data_dir.join(APPLIED_UPDATE), envelope, false)?;
    Ok(update)
}

/// What this node verifies provenance with.
#[derive(Debug, Clone, Default)]
pub struct SigstorePolicy {
    /// `None`: no `[sigstore]` in the config.
    root: Option<(TrustedRoot, PathBuf)>,
    signers: Vec<SignerRule>,
}

impl SigstorePolicy {
    /// From the config, preferring a root the steering committee applied in `data_dir`.
    pub fn load(cfg: Option<&SigstoreConfig>, data_dir: &Path) -> Result<Self> {
        let Some(cfg) = cfg else {
            return Ok(Self::default());
        };
        let applied = data_dir.join(APPLIED_ROOT);
        let path = if applied.exists() {
            applied
        } else {
            cfg.trusted_root.clone()
        };
        let root = Self::read_root(&path)?;
        Ok(Self {
            root: Some((root, path)),
            signers: cfg.signers.clone(),
        })
    }

    /// Reads and parses a Sigstore trusted root file.
    pub fn read_root(path: &Path) -> Result<TrustedRoot> {
        let bytes = crate::files::read_limited(path, MAX_TRUSTED_ROOT_BYTES)?;
        TrustedRoot::from_json(&bytes)
            .with_context(|| format!("{} is not a usable Sigstore trusted root", path.display()))
    }

    /// Whether a signer rule covers `capability` (its releases need provenance here).
    pub fn covers(&self, capability: &str) -> bool {
        self.signers.iter().any(|r| r.covers(capability))
    }

    /// The trusted root file in use, if any.
    pub fn root_path(&self) -> Option<&Path> {
        self.root.as_ref().map(|(_, p)| p.as_path())
    }

    /// The verdict on one release: every bundle verifies for its artifact under an identity
    /// allowed for `capability`, and every artifact of a capability the policy covers has a
    /// bundle.
    pub async fn verdict(
        &self,
        store: &BlobStore,
        capability: &str,
        artifacts: &[String],
        checks: &[Check],
    ) -> Verdict {
        match self.verify(store, capability, artifacts, checks).await {
            Ok(artifacts) => Verdict::Verified { artifacts },
            Err(e) => Verdict::Refused {
                reason: format!("{e:#}"),
            },
        }
    }

    async fn verify(
        &self,
        store: &BlobStore,
        capability: &str,
        artifacts: &[String],
        checks: &[Check],
    ) -> Result<Vec<Signer>> {
        let allowed: Vec<&SignerRule> = self
            .signers
            .iter()
            .filter(|r| r.covers(capability))
            .collect();
        if !allowed.is_empty()
            && let Some(bare) = artifacts
                .iter()
                .find(|a| !checks.iter().any(|c| &c.artifact == *a))
        {
            anyhow::bail!(
                "{capability} requires upstream provenance here, and artifact {bare} has no Sigstore bundle"
            );
        }
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let Some((root, path)) = &self.root else {
            anyhow::bail!(
                "the release carries Sigstore bundles and this node has no Sigstore trusted root to verify them against ([sigstore] trusted_root in its config)"
            );
        };
        if allowed.is_empty() {
            anyhow::bail!(
                "no signer may sign {capability} under this node's Sigstore policy ([[sigstore.signers]] in its config)"
            );
        }
        let mut out = Vec::with_capacity(checks.len());
        for check in checks {
            // The bundle is checked for the bytes this node holds, not for the digest the
            // statement claims: a signer who paired a genuine bundle's digest with other
            // bytes is caught here, not only by clients that hash what they fetch.
            let held = sha256_of_blob(store, check.artifact_blake3, check.artifact_size)
                .await
                .with_context(|| format!("cannot read {} from the store", check.artifact))?;
            if held != check.artifact_sha256 {
                anyhow::bail!(
                    "{} held here has SHA-256 {}, not the {} its statement gives",
                    check.artifact,
                    hex::encode(held),
                    hex::encode(check.artifact_sha256)
                );
            }
            let bundle = read_bundle(store, check).await?;
            out.push(verify_one(&bundle, check, root, &allowed).with_context(|| {
                format!(
                    "{} does not verify for {} against {}",
                    check.bundle,
                    check.artifact,
                    path.display()
                )
            })?);
        }
        Ok(out)
    }
}

/// Verifies one bundle under the first allowed identity it matches; with none, the reason
/// given for the closest (the last tried when all fail alike).
fn verify_one(
    bundle: &[u8],
    check: &Check,
    root: &TrustedRoot,
    allowed: &[&SignerRule],
) -> Result<Signer> {
    let mut last = None;
    for rule in allowed {
        let policy = Policy::new(&rule.identity, &rule.issuer);
        match accord_provenance::verify_digest(check.artifact_sha256, bundle, root, &policy) {
            Ok(v) => {
                return Ok(Signer {
                    artifact: check.artifact.clone(),
                    identity: v.identity,
                    issuer: v.oidc_issuer,
                    signed_at: v.signed_at,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no signer allowed"), anyhow::Error::from))
}

/// Streams a blob held whole through `each`, BLAKE3-verified as it is read; fails unless it
/// is exactly its signed `size` (reading stops at the first byte past it).
async fn stream_blob(
    store: &BlobStore,
    blake3: [u8; 32],
    size: u64,
    mut each: impl FnMut(&[u8]),
) -> Result<()> {
    let mut rx = store.read_verified(blake3);
    let mut read = 0u64;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        read += chunk.len() as u64;
        if read > size {
            anyhow::bail!("the blob in the store is longer than its signed {size} bytes");
        }
        each(&chunk);
    }
    if read != size {
        anyhow::bail!("the blob holds {read} bytes, not {size}");
    }
    Ok(())
}

/// SHA-256 of a blob held whole (`stream_blob`).
async fn sha256_of_blob(store: &BlobStore, blake3: [u8; 32], size: u64) -> Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    stream_blob(store, blake3, size, |chunk| hasher.update(chunk)).await?;
    Ok(hasher.finalize().into())
}

/// A bundle's bytes from the store (`stream_blob`): never more than a bundle may be, and
/// with the SHA-256 the statement gives.
async fn read_bundle(store: &BlobStore, check: &Check) -> Result<Vec<u8>> {
    let max = u64::try_from(MAX_BUNDLE_BYTES).unwrap_or(u64::MAX);
    if check.bundle_size > max {
        anyhow::bail!(
            "{} is {} bytes, more than a Sigstore bundle may be ({MAX_BUNDLE_BYTES})",
            check.bundle,
            check.bundle_size
        );
    }
    let mut bytes = Vec::with_capacity(usize::try_from(check.bundle_size).unwrap_or(0));
    stream_blob(store, check.bundle_blake3, check.bundle_size, |chunk| {
        bytes.extend_from_slice(chunk)
    })
    .await
    .with_context(|| format!("cannot read {} from the store", check.bundle))?;
    if <[u8; 32]>::from(Sha256::digest(&bytes)) != check.bundle_sha256 {
        anyhow::bail!("{} in the store is not the signed bundle", check.bundle);
    }
    Ok(bytes)
}
