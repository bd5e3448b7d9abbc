//! Accord's node core without I/O (ADR 0006).
//!
//! `Service` takes events (a peer connected, a sync message arrived, gossip, an edit, a
//! root, an operator's `Command`) and the time, and returns the I/O to do (`Io`: send, answer, publish, disconnect,
//! ban, audit) and when to be woken (`next_wakeup`). The daemon in `node/` is a reactor
//! that translates libp2p, API and timer events into these calls and executes the `Io`;
//! tests and simulations drive the very same `Service` with an in-memory store and a clock
//! they move themselves.
//!
//! Architecture invariant: no sockets, no tasks, no clock (`grep now()` finds nothing
//! here), no libp2p, no iroh. What a peer may cost (`rate`, `discipline`) and how often
//! this node gossips (`pace`) live here, with the state they govern.

pub mod discipline;
pub mod export;
pub mod io;
pub mod pace;
pub mod rate;
pub mod service;
pub mod store;
pub mod time;

pub use io::{Io, Topic};
pub use service::{
    Command, Config, MirrorConfig, MirrorMetrics, PeerOf, PromotionConfig, PromotionMetrics, Read,
    Reply, Service, SyncMetrics,
};
pub use store::{MemoryStore, NodeStore, Store};
pub use time::Now;
