use accord_protocol::ProtocolError;
use thiserror::Error;

/// Everything the trust core can refuse. Messages name the thing that failed and, where
/// there is one, what to do about it.
#[derive(Debug, Error)]
pub enum TrustError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("{path}: {detail}")]
    KeyFile { path: String, detail: String },
    #[error("{path}: wrong passphrase, or the key file is damaged")]
    WrongPassphrase { path: String },
    #[error(
        "public key {key} is a weak (small-order) Ed25519 key; it would accept forged signatures"
    )]
    WeakKey { key: String },
    #[error("public key {key} is not a valid Ed25519 point")]
    InvalidKey { key: String },
    #[error("root v{got} cannot follow v{trusted}: {detail}")]
    RootSequence {
        trusted: u64,
        got: u64,
        detail: String,
    },
    #[error("root v{version} is not signed well enough: {detail}")]
    RootSignatures { version: u64, detail: String },
    #[error("root chain is longer than {limit} versions")]
    RootChainTooLong { limit: usize },
    #[error("{0}")]
    Spec(String),
    #[error("Sigstore trusted-root update: {0}")]
    SigstoreRoot(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl TrustError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TrustError::Io {
            what: what.into(),
            source,
        }
    }
}
