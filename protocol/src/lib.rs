//! Accord's protocol: the types that are signed, stored and sent between nodes, and the
//! pure rules that say whether a value of them is well formed.
//!
//! Architecture invariant: this crate does no I/O, no async and no cryptography beyond
//! hashing. Everything here is a function of its arguments, so every node, the CLI and the
//! simulations agree on what a byte string means. Signature checks and policy decisions
//! live in `accord-trust`, which builds on these types.

pub mod checkpoint;
pub mod dsse;
pub mod error;
pub mod ids;
pub mod limits;
pub mod note;
pub mod release;
pub mod root;
pub mod statement;
pub mod time;

pub use checkpoint::AuditCheckpoint;
pub use dsse::{Envelope, EnvelopeSignature};
pub use error::ProtocolError;
pub use ids::{KeyId, PrincipalId, Role};
pub use note::{Note, NoteState};
pub use release::{ReleaseId, Selector};
pub use root::{Principal, Requirement, RoleKeys, RootBody, Rule, Rules};
pub use statement::{
    ConditionalPredicate, RecallPredicate, ReleasePredicate, ResourceDescriptor, Statement,
    StatementKind,
};
pub use time::Timestamp;
