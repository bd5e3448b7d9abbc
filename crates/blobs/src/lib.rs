//! Accord's blob I/O: the iroh-blobs store in the node's data dir (`store`), the offline
//! iroh endpoint that moves blobs between the cooperative's nodes (`endpoint`), the
//! provider that serves only listed peers (`provider`) and one fetch (`fetch`).
//!
//! Architecture invariant: no decision is made here. What to hold, whom to ask and what a
//! fetch's end means are `accord-mirror`'s (sans-I/O, ADR 0007); this crate only does the
//! I/O, and verifies every byte against its BLAKE3 as it arrives.

pub mod endpoint;
pub mod fetch;
pub mod provider;
pub mod store;

use thiserror::Error;

pub use store::{BlobStore, Local, Written};

#[derive(Debug, Error)]
pub enum MirrorError {
    #[error("blob store: {0}")]
    Store(String),
    #[error("blob endpoint: {0}")]
    Endpoint(String),
    #[error("blob {hash} is not fully mirrored yet ({have} bytes held)")]
    Incomplete { hash: String, have: u64 },
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(String),
}
