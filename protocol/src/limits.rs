//! Size limits for everything parsed from outside the process. They are far above what an
//! honest cooperative produces and far below what would hurt a node's memory.

/// A DSSE envelope as a JSON file or message (payload + signatures).
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;
/// A root document (its envelope).
pub const MAX_ROOT_BYTES: usize = 1 << 20;
/// Signatures on one envelope; more than this is an attack, not a cooperative.
pub const MAX_SIGNATURES: usize = 256;
/// Artifacts in one release.
pub const MAX_SUBJECTS: usize = 1024;
/// Keys listed in one root.
pub const MAX_ROOT_KEYS: usize = 1024;
/// Principals (jurisdictions) in one root.
pub const MAX_PRINCIPALS: usize = 64;
/// Root versions walked in one update (TUF clients bound this too).
pub const MAX_ROOT_HOPS: usize = 256;
/// A key file (PEM).
pub const MAX_KEY_FILE_BYTES: usize = 16 * 1024;
/// Length of names: capabilities, artifacts, principals.
pub const MAX_NAME_LEN: usize = 255;
/// A promotion note (a small DSSE envelope signed by one node key).
pub const MAX_NOTE_BYTES: usize = 8 * 1024;
/// An approval record in the catalogue (statement id, key id, signature).
pub const MAX_APPROVAL_BYTES: usize = 1024;
/// A root adoption record in the catalogue.
pub const MAX_ACK_BYTES: usize = 1024;
