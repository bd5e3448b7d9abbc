use thiserror::Error;

/// What the catalogue refuses. Sync errors name the peer-supplied problem; none of them
/// leaves a partial change behind.
#[derive(Debug, Error)]
pub enum CatalogueError {
    #[error("seed catalogue {path}: {detail}")]
    Seed { path: String, detail: String },
    #[error("unknown capability {0}")]
    UnknownCapability(String),
    #[error("invalid value for {field}: {detail}")]
    InvalidValue { field: String, detail: String },
    #[error("sync message from {peer} refused: {reason}")]
    Refused { peer: String, reason: String },
    #[error("stored catalogue is damaged: {0}")]
    Damaged(String),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}
