//! Accord's replicated catalogue: the Automerge document of capabilities, working groups,
//! jurisdictions and the release history (statements, approvals, notes, roots); its
//! deterministic genesis from the seed catalogue; signed changes; who may write what
//! (`authority`); and the sans-I/O `Replica` that syncs it with peers.
//!
//! Architecture invariant: no networking and no files here. `Replica` takes bytes and time
//! as inputs and returns bytes to send and a `Delta` to persist. Nothing is applied before
//! `authority` and the signature checks have passed it.

pub mod authority;
pub mod chunks;
pub mod edit;
pub mod error;
pub mod genesis;
pub mod history;
pub mod limits;
pub mod records;
pub mod replica;
pub mod schema;
pub mod seed;
pub mod signing;
pub mod wire;

pub use error::{CatalogueError, Refusal};
pub use limits::Limits;
pub use records::{Ack, Approval, History};
pub use replica::{Delta, Replica, Stored, StoredChange};
pub use schema::{Capability, Catalogue, Problem, Release, Status};
pub use seed::Seed;
