//! Signing and reading promotion notes (`accord_protocol::Note`): a node's signed word that
//! a release is live (or was recalled) in its jurisdiction. Each reader checks the note
//! against the root chain: a node key of the jurisdiction the note speaks for must have
//! signed it, so no node can speak for another. A key retired by a later root still
//! vouches for the notes it signed before.

use std::collections::BTreeMap;

use accord_protocol::{Note, PrincipalId, ReleaseId, Role};
use accord_trust::{RootChain, SecretKey, sign_envelope};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("promotion note: {0}")]
    Malformed(String),
    #[error("promotion note for {0} is not signed by that jurisdiction's node key")]
    NotSigned(String),
}

/// Signs `note` with the node key: the bytes that go into the catalogue's `notes` map.
pub fn sign(note: &Note, key: &SecretKey) -> Vec<u8> {
    let mut env = note.to_envelope();
    sign_envelope(&mut env, key);
    env.to_json()
}

/// Reads a note and checks that a node key of the jurisdiction it speaks for, in some root
/// of `chain`, signed it.
pub fn verify(bytes: &[u8], chain: &RootChain) -> Result<Note, NoteError> {
    let (env, note) = Note::parse(bytes).map_err(|e| NoteError::Malformed(e.to_string()))?;
    let pae = env.pae();
    let signed = env.signatures.iter().any(|s| {
        chain.roots().iter().any(|root| {
            root.body()
                .principals
                .get(&note.jurisdiction)
                .is_some_and(|p| {
                    p.roles.get(&Role::Node).is_some_and(|rk| {
                        rk.keys
                            .iter()
                            .any(|id| root.key(id).is_some_and(|k| k.verify(&pae, &s.sig)))
                    })
                })
        })
    });
    if !signed {
        return Err(NoteError::NotSigned(note.jurisdiction.to_string()));
    }
    Ok(note)
}

/// Of the notes about `release`, the newest valid one per jurisdiction (a recall after a
/// promotion, a later promotion after an earlier one).
pub fn latest<'a>(
    release: &ReleaseId,
    notes: impl IntoIterator<Item = &'a [u8]>,
    chain: &RootChain,
) -> BTreeMap<PrincipalId, Note> {
    let mut out: BTreeMap<PrincipalId, Note> = BTreeMap::new();
    for bytes in notes {
        let Ok(n) = verify(bytes, chain) else {
            continue;
        };
        if &n.release != release {
            continue;
        }
        let newer = out
            .get(&n.jurisdiction)
            .is_none_or(|o| (n.at, n.state) > (o.at, o.state));
        if newer {
            out.insert(n.jurisdiction.clone(), n);
        }
    }
    out
}
