//! Accord's trust core: keys and key files, DSSE signing and strict verification, the
//! cooperative root and its rotation, and the promotion policy.
//!
//! Architecture invariant: decisions (`policy::evaluate`, `TrustedRoot::update`) are pure
//! functions of their inputs, time included; only `keys` and `spec` read files, and only
//! when asked to.

pub mod chain;
pub mod error;
pub mod keys;
pub mod policy;
pub mod root;
pub mod rotation;
pub mod rule;
pub mod sigstore_root;
pub mod spec;
pub mod tally;
pub mod testkit;

pub use chain::{KeyStanding, RootChain};
pub use error::TrustError;
pub use keys::{PublicKey, SecretKey};
pub use policy::{Blocker, Decision, PolicyInput, evaluate};
pub use root::{TrustedRoot, root_envelope};
pub use rule::RequirementOutcome;
pub use spec::RootSpec;
pub use tally::{SignatureCheck, Tally, sign_envelope};
