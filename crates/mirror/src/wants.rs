//! From releases to the blobs a node must hold. Signatures are not required to mirror:
//! artifacts travel while the leads are still signing, so that promotion is not held up by
//! a download once the last signature lands.

use std::collections::BTreeMap;

use accord_protocol::ReleaseId;
use accord_protocol::statement::Artifact;

use crate::queue::{BlobHash, Want};

/// The artifacts of one release statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseBlobs {
    pub id: ReleaseId,
    /// `CAP@VER#<short id>`, for people and logs.
    pub label: String,
    pub artifacts: Vec<Artifact>,
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
                .insert(format!("{}/{}", r.label, a.name));
        }
    }
    by_hash.into_values().collect()
}

/// The prefix of the tags that pin release artifacts in the blob store.
pub const RELEASE_TAG: &str = "release/";

/// The tag that pins one artifact of one release statement in the blob store.
pub fn pin_tag(release: &ReleaseId, artifact: &str) -> String {
    format!("{RELEASE_TAG}{}/{artifact}", release.hex())
}
