use thiserror::Error;

/// Why a peer's message was refused: what the node should think of the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The message breaks a rule no honest node breaks: a forged or missing signature, a
    /// forbidden write, malformed bytes. The peer is hostile or broken.
    Violation,
    /// The message cannot be verified now, and an honest peer can send such a message: a
    /// change whose dependencies are missing, or a retired key's change from a peer still on
    /// an older root. Refused without blame; the next sync starts afresh.
    Unverifiable,
}

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
    Refused {
        peer: String,
        reason: String,
        kind: Refusal,
    },
    #[error(
        "root v{version} no longer lists this node's key as a node key: this node is retired and may not write"
    )]
    Retired { version: u64 },
    #[error("stored catalogue is damaged: {0}")]
    Damaged(String),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

impl CatalogueError {
    /// Whether the refused peer should be blamed (counted, and in time banned).
    pub fn is_violation(&self) -> bool {
        !matches!(
            self,
            CatalogueError::Refused {
                kind: Refusal::Unverifiable,
                ..
            }
        )
    }
}
