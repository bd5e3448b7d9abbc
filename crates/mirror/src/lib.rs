//! Accord's artifact mirror, the decisions: which blobs this node must hold (`wants`),
//! who has them and what to fetch next (`queue`), what a node announces about its blobs
//! (`announce`) and which announced addresses it will dial (`addresses`).
//!
//! Architecture invariant: sans-I/O. No iroh, no tokio, no clock: the node's reactor and
//! the simulations drive the same queue; the blob store, the endpoint and the fetches are
//! `accord-blobs` (ADR 0007). Nothing here reads the catalogue: the node turns releases
//! into `Want`s (see `wants`).

pub mod addresses;
pub mod announce;
pub mod queue;
pub mod wants;

pub use announce::{Announce, MAX_ANNOUNCE_BYTES};
pub use queue::{Action, BlobHash, Limits, MirrorQueue, Outcome, State, Want};

/// Whole percent of `size` that `have` bytes are (100 for an empty blob).
pub fn percent(have: u64, size: u64) -> u64 {
    have.saturating_mul(100).checked_div(size).unwrap_or(100)
}
