//! What Accord's tests and benchmarks share, in one place:
//!
//! - `cli`: the `accord` binary as a user runs it, and a cooperative's keys and roots;
//! - `cluster` and `releases` (feature `cluster`): real node processes on loopback, each
//!   bound to port 0 and reporting its addresses, and releases looked at through their API;
//! - `forge`: raw Automerge changes by a listed node key, signed as an honest node signs but
//!   with none of the local checks — what a stolen key or a modified binary sends;
//! - `peer` (feature `net`): a hostile listed node over the real libp2p sync protocol;
//! - `transcript`: literate CLI transcripts (the README's `$ accord …` blocks) run as tests.
//!
//! Waiting is always polling for a state with a deadline (`cluster::eventually`), never a
//! fixed sleep.

#[cfg(feature = "cluster")]
pub mod cli;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod forge;
#[cfg(feature = "net")]
pub mod peer;
#[cfg(feature = "cluster")]
pub mod releases;
pub mod transcript;
