//! Accord's replicated catalogue: the Automerge document of capabilities, working groups,
//! jurisdictions and releases; its deterministic genesis from the seed catalogue; signed
//! changes; and the sans-I/O `Replica` that syncs it with peers.
//!
//! Architecture invariant: no networking and no files here. `Replica` takes bytes and time
//! as inputs and returns bytes to send and a `Delta` to persist.

pub mod edit;
pub mod error;
pub mod genesis;
pub mod replica;
pub mod schema;
pub mod seed;
pub mod signing;
pub mod wire;

pub use error::CatalogueError;
pub use replica::{Delta, Replica, Stored, StoredChange};
pub use schema::{Capability, Catalogue, Problem, Status};
pub use seed::Seed;
