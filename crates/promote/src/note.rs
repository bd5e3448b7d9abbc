//! The `promoted` note: a node's signed word that a release is live (or was recalled) in
//! its jurisdiction. It replicates through the catalogue so every node can show where a
//! release is live; each reader checks the signature against the node keys the root lists
//! for that jurisdiction, so one node cannot speak for another.

use accord_protocol::{Envelope, PrincipalId, Role, Timestamp};
use accord_trust::{SecretKey, TrustedRoot};
use serde::{Deserialize, Serialize};

pub const NOTE_TYPE: &str = "application/vnd.accord.promotion+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub release: String,
    /// Hex SHA-256 of the release payload that was promoted.
    pub payload_sha256: String,
    pub jurisdiction: PrincipalId,
    pub state: NoteState,
    pub at: Timestamp,
    pub root_version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteState {
    Live,
    Recalled,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("promotion note is not a DSSE envelope: {0}")]
    Envelope(String),
    #[error("promotion note has payload type {0:?}")]
    PayloadType(String),
    #[error("promotion note payload is malformed: {0}")]
    Payload(String),
    #[error("promotion note is filed under {filed} but speaks for {claims}")]
    WrongPlace { filed: String, claims: String },
    #[error("promotion note for {0} is not signed by that jurisdiction's node key")]
    NotSigned(String),
    #[error("promotion note is about {found}, not {expected}")]
    WrongRelease { found: String, expected: String },
}

impl Note {
    /// Signs the note with the node key; the bytes go into the catalogue.
    pub fn sign(&self, key: &SecretKey) -> Vec<u8> {
        // Plain strings, integers and a timestamp always serialise.
        let payload = serde_json::to_vec(self).unwrap_or_default();
        let mut env = Envelope::new(NOTE_TYPE, payload);
        accord_trust::sign_envelope(&mut env, key);
        env.to_json()
    }

    /// Reads a note found in the catalogue under `releases.{release}.promotions.{filed}`
    /// and checks that a node key of `filed` signed it under `root`.
    pub fn verify(
        bytes: &[u8],
        release: &str,
        filed: &str,
        root: &TrustedRoot,
    ) -> Result<Note, NoteError> {
        let env = Envelope::from_json(bytes).map_err(|e| NoteError::Envelope(e.to_string()))?;
        if env.payload_type != NOTE_TYPE {
            return Err(NoteError::PayloadType(env.payload_type));
        }
        let note: Note =
            serde_json::from_slice(&env.payload).map_err(|e| NoteError::Payload(e.to_string()))?;
        if note.jurisdiction.as_str() != filed {
            return Err(NoteError::WrongPlace {
                filed: filed.to_owned(),
                claims: note.jurisdiction.to_string(),
            });
        }
        if note.release != release {
            return Err(NoteError::WrongRelease {
                found: note.release,
                expected: release.to_owned(),
            });
        }
        let pae = env.pae();
        let signed = env.signatures.iter().any(|s| {
            root.body().keys.iter().any(|(id, _)| {
                matches!(root.body().place_of(id), Some((p, Role::Node)) if p.as_str() == filed)
                    && root.key(id).is_some_and(|k| k.verify(&pae, &s.sig))
            })
        });
        if !signed {
            return Err(NoteError::NotSigned(filed.to_owned()));
        }
        Ok(note)
    }
}
