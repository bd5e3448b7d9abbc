//! The OCI image layout as Accord fills it: media types, manifests, the index, and the
//! limits a reader holds the small objects to before it parses them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The media types of what a bundle holds.
#[derive(Debug)]
pub struct MediaType;

impl MediaType {
    pub const MANIFEST: &'static str = "application/vnd.oci.image.manifest.v1+json";
    pub const INDEX: &'static str = "application/vnd.oci.image.index.v1+json";
    pub const EMPTY: &'static str = "application/vnd.oci.empty.v1+json";
    /// The root chain: a JSON array of root envelopes (DSSE JSON), oldest first.
    pub const ROOTS: &'static str = "application/vnd.accord.roots.v1+json";
    /// The catalogue's signed changes: one Accord sync message (`accord_catalogue::wire`).
    pub const CATALOGUE: &'static str = "application/vnd.accord.catalogue.changes.v1";
    /// A release's statement with every signature collected (DSSE JSON).
    pub const STATEMENT: &'static str = "application/vnd.accord.statement.v1+json";
    /// An artifact: the file's bytes, as the statement names them.
    pub const ARTIFACT: &'static str = "application/octet-stream";
    /// The artifact type of the catalogue's manifest and of a release's.
    pub const CATALOGUE_ARTIFACT: &'static str = "application/vnd.accord.catalogue.v1";
    pub const RELEASE_ARTIFACT: &'static str = "application/vnd.accord.release.v1";
}

/// The name the catalogue's manifest goes by in `index.json`.
pub const CATALOGUE_REF: &str = "accord-catalogue";

/// Largest small object (roots, the catalogue's changes, a statement, a manifest, the
/// index) a reader accepts, before it reads it.
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;
/// Largest sum of small objects in one bundle.
pub const MAX_OBJECTS_BYTES: u64 = 256 << 20;

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: digest(&sha256(bytes)),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }

    /// The SHA-256 the digest names, if it is a well-formed `sha256:` digest.
    pub fn sha256(&self) -> Option<[u8; 32]> {
        let hex = self.digest.strip_prefix("sha256:")?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(out)
    }
}

/// An OCI image manifest (an "artifact manifest" by its `artifactType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    #[serde(rename = "artifactType")]
    pub artifact_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One artifact of a release: as its signed statement names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub blake3: [u8; 32],
}

/// A release to put in a bundle: its `CAP@VER`, its signed statement (DSSE JSON with every
/// signature), and its artifacts.
#[derive(Debug, Clone)]
pub struct Release {
    pub label: String,
    pub statement: Vec<u8>,
    pub artifacts: Vec<Artifact>,
}

/// Annotation keys.
pub const TITLE: &str = "org.opencontainers.image.title";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const BLAKE3: &str = "dev.accord.blake3";
pub const RELEASE: &str = "dev.accord.release";
/// Set on `index.json`: an id of this export, so parts of two exports are never mixed.
pub const EXPORT_ID: &str = "dev.accord.export";
/// Set on `index.json`: the exporting node's jurisdiction and when it exported (Unix s).
pub const EXPORTED_BY: &str = "dev.accord.exported-by";
pub const EXPORTED_AT: &str = "dev.accord.exported-at";
/// Set on `index.json`: the exporting node's key id and its Ed25519 signature (hex) over
/// [`ExportInfo::signed_bytes`], so who exported when is not the bundle's word alone.
pub const EXPORT_KEY: &str = "dev.accord.export-key";
pub const EXPORT_SIGNATURE: &str = "dev.accord.export-signature";

/// Who exported a bundle, and when: an importing site's view of that jurisdiction is as
/// fresh as `at`, once the signature by a node key of that jurisdiction verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    pub id: String,
    pub jurisdiction: String,
    pub at: i64,
    /// The exporting node's key id (empty: unsigned).
    pub key: String,
    /// Hex Ed25519 signature over `signed_bytes` (empty: unsigned).
    pub signature: String,
}

impl ExportInfo {
    /// What the exporting node signs: the export's id, jurisdiction and time, bound to the
    /// catalogue layer by its SHA-256.
    pub fn signed_bytes(id: &str, jurisdiction: &str, at: i64, catalogue: &[u8]) -> Vec<u8> {
        format!(
            "accord-bundle-export/v1\nid={id}\njurisdiction={jurisdiction}\nat={at}\ncatalogue={}\n",
            hex::encode(sha256(catalogue))
        )
        .into_bytes()
    }
}

/// A reference name OCI tools accept for a release label (`CAP-B01@1.4.0#ab12…` becomes
/// `CAP-B01_1.4.0_ab12…`).
pub fn ref_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

pub fn digest(sha: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(sha))
}

/// The tar path of a blob.
pub fn blob_path(sha: &[u8; 32]) -> String {
    format!("blobs/sha256/{}", hex::encode(sha))
}

/// The bytes a tar entry of `size` bytes takes: its header, the data, padding to 512.
pub fn entry_bytes(size: u64) -> u64 {
    512 + size.div_ceil(512) * 512
}
