//! What Accord's tests share: a node key's worst behaviour, written down.
//!
//! `forge` writes raw Automerge changes with a listed node key, signed exactly as an honest
//! node signs, but with none of the local checks: the changes a stolen key or a modified
//! binary would send. `peer` (feature `net`) delivers them to a running node over the real
//! libp2p sync protocol.

pub mod forge;
#[cfg(feature = "net")]
pub mod peer;
