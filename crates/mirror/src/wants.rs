//! From releases to the blobs a node must hold. A release's envelope is untrusted catalogue
//! content: one that does not parse as a release statement wants nothing and is reported.
//! Signatures are not required to mirror: artifacts travel while the leads are still
//! signing, so that promotion is not held up by a download once the last signature lands.

use std::collections::BTreeMap;

use accord_protocol::{Envelope, Statement, StatementKind};

use crate::queue::{BlobHash, Want};

/// The artifacts of one release, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseBlobs {
    pub key: String,
    pub artifacts: Vec<accord_protocol::statement::Artifact>,
}

/// Parses a release's envelope; `None` with the reason when it is not a release statement.
pub fn release_blobs(key: &str, envelope: &[u8]) -> Result<ReleaseBlobs, String> {
    let env = Envelope::from_json(envelope).map_err(|e| format!("{key}: {e}"))?;
    match Statement::from_envelope(&env).map_err(|e| format!("{key}: {e}"))? {
        StatementKind::Release { artifacts, .. } => Ok(ReleaseBlobs {
            key: key.to_owned(),
            artifacts,
        }),
        _ => Err(format!("{key}: not a release statement")),
    }
}

/// Every blob the given releases want, merged by hash (two releases may share a file).
pub fn wants<'a>(releases: impl IntoIterator<Item = &'a ReleaseBlobs>) -> Vec<Want> {
    let mut by_hash: BTreeMap<BlobHash, Want> = BTreeMap::new();
    for r in releases {
        for a in &r.artifacts {
            by_hash
                .entry(a.blake3)
                .or_insert_with(|| Want {
                    hash: a.blake3,
                    size: a.size,
                    wanted_by: Default::default(),
                })
                .wanted_by
                .insert(format!("{}/{}", r.key, a.name));
        }
    }
    by_hash.into_values().collect()
}

/// The tag that pins one artifact of one release in the blob store.
pub fn pin_tag(release_key: &str, artifact: &str) -> String {
    format!("{}{release_key}/{artifact}", crate::store::RELEASE_TAG)
}
