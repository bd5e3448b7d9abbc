use thiserror::Error;

/// Why bytes from outside were refused. Each variant says what was wrong in words an
/// operator can act on; none of them carries the offending bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("{what} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("{what} is not valid JSON of the expected shape: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("{what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

impl ProtocolError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        ProtocolError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}
