//! Accord's artifact mirror: the blob store in the node's data dir, the offline iroh endpoint
//! that moves blobs between the cooperative's nodes, and the mirror queue that decides what
//! to fetch from whom.
//!
//! Architecture invariant: the queue (`queue`) is sans-I/O and makes every decision; `store`,
//! `endpoint`, `provider` and `fetch` only do I/O. Nothing here reads the catalogue: the node
//! turns releases into `Want`s (see `wants`).

pub mod addresses;
pub mod endpoint;
pub mod fetch;
pub mod provider;
pub mod queue;
pub mod store;
pub mod wants;

use thiserror::Error;

pub use queue::{Action, BlobHash, Limits, MirrorQueue, Outcome, State, Want};
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
