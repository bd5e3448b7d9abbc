//! Offline bundles (issue 16): what an air-gapped site needs, in one tar that is an OCI
//! image layout (`oci-layout`, `index.json`, `blobs/sha256/…`), so `skopeo` and `oras`
//! can list and copy the artifacts, while Accord's own objects (the root chain, the signed
//! catalogue changes, each release's signed statement) sit in the same index under their
//! own media types.
//!
//! The layout is written and read as a stream in one fixed order: `oci-layout`, Accord's
//! objects and the manifests (small, bounded), `index.json`, then the artifacts. A reader
//! therefore knows every artifact's SHA-256, BLAKE3 and size before its bytes arrive, and
//! checks them as they pass, in bounded memory, without a temporary copy. This crate knows
//! the format and the digests; what the objects mean (signatures, the rule) is checked by
//! the caller with `accord-catalogue` and `accord-trust`.

pub mod layout;
pub mod parts;
pub mod read;
pub mod write;

pub use layout::{Artifact, ExportInfo, MediaType, Release};
pub use read::{Contents, ReadError, Reader};
pub use write::Writer;
