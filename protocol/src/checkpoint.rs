//! An audit checkpoint: a node's signed word on how long its audit log is and what its last
//! row hashes to. Nodes publish them in the catalogue, so every peer keeps a copy, and a
//! log that lost its newest rows (or had them rewritten) no longer matches what the peers
//! hold (issue 12).

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::PrincipalId;
use crate::time::Timestamp;
use crate::{Envelope, limits};

/// DSSE payload type of audit checkpoints.
pub const CHECKPOINT_TYPE: &str = "application/vnd.accord.audit-checkpoint+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpoint {
    pub jurisdiction: PrincipalId,
    /// Sequence number of the last row.
    pub seq: u64,
    /// Hex SHA-256 of that row's exact bytes.
    pub head: String,
    pub at: Timestamp,
}

impl AuditCheckpoint {
    pub fn to_envelope(&self) -> Envelope {
        Envelope::new(
            CHECKPOINT_TYPE,
            serde_json::to_vec(self).unwrap_or_default(),
        )
    }

    /// Reads a checkpoint envelope from untrusted bytes; signatures are not checked here.
    pub fn parse(bytes: &[u8]) -> Result<(Envelope, AuditCheckpoint), ProtocolError> {
        if bytes.len() > limits::MAX_NOTE_BYTES {
            return Err(ProtocolError::TooLarge {
                what: "audit checkpoint",
                size: bytes.len(),
                limit: limits::MAX_NOTE_BYTES,
            });
        }
        let env = Envelope::from_json(bytes)?;
        if env.payload_type != CHECKPOINT_TYPE {
            return Err(ProtocolError::invalid(
                "audit checkpoint",
                "wrong payloadType".to_owned(),
            ));
        }
        let c: AuditCheckpoint =
            serde_json::from_slice(&env.payload).map_err(|e| ProtocolError::Malformed {
                what: "audit checkpoint",
                detail: e.to_string(),
            })?;
        Ok((env, c))
    }
}
