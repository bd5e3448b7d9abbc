//! The promotion note: a node's signed word that a release is live (or was recalled) in its
//! jurisdiction. It travels in the catalogue's `notes` map (ADR 0005) so every node can show
//! where a release is live; only a node key of the jurisdiction it speaks for may write it,
//! and every reader checks its signature against the root chain.

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::PrincipalId;
use crate::release::ReleaseId;
use crate::time::Timestamp;
use crate::{Envelope, limits};

/// DSSE payload type of promotion notes.
pub const NOTE_TYPE: &str = "application/vnd.accord.promotion+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// The release statement promoted (or recalled) there.
    pub release: ReleaseId,
    pub jurisdiction: PrincipalId,
    pub state: NoteState,
    pub at: Timestamp,
    pub root_version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteState {
    Live,
    Recalled,
}

impl Note {
    /// The unsigned envelope of this note.
    pub fn to_envelope(&self) -> Envelope {
        // Plain strings, integers and a timestamp always serialise.
        Envelope::new(NOTE_TYPE, serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a note envelope from untrusted bytes; signatures are not checked here.
    pub fn parse(bytes: &[u8]) -> Result<(Envelope, Note), ProtocolError> {
        if bytes.len() > limits::MAX_NOTE_BYTES {
            return Err(ProtocolError::TooLarge {
                what: "promotion note",
                size: bytes.len(),
                limit: limits::MAX_NOTE_BYTES,
            });
        }
        let env = Envelope::from_json(bytes)?;
        if env.payload_type != NOTE_TYPE {
            return Err(ProtocolError::invalid(
                "promotion note",
                format!(
                    "payloadType is {:?}, expected {NOTE_TYPE:?}",
                    crate::ids::truncate(&env.payload_type, 80)
                ),
            ));
        }
        let note: Note =
            serde_json::from_slice(&env.payload).map_err(|e| ProtocolError::Malformed {
                what: "promotion note",
                detail: e.to_string(),
            })?;
        Ok((env, note))
    }
}
