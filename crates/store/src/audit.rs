//! The audit log: append-only, hash-chained, each entry signed by the node key.
//!
//! A row is `signature (64 bytes) || body`, where the body is the exact JSON that was signed;
//! verification never re-serialises. Each body names the SHA-256 of the previous row, so
//! removing, reordering or editing any entry breaks the chain at that point, and an entry
//! cannot be forged without the node key.

use accord_protocol::{KeyId, Timestamp};
use accord_trust::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What happened (the kinds the node writes).
pub mod kind {
    pub const PROPOSED: &str = "proposed";
    pub const SIGNATURE: &str = "signature";
    pub const PROMOTED: &str = "promoted";
    pub const RECALLED: &str = "recalled";
    pub const ROOT: &str = "root";
    pub const REJECTED: &str = "rejected";
    pub const HOOK: &str = "hook";
    /// Two statements claim one `CAP@VER` (ADR 0005 §6).
    pub const EQUIVOCATION: &str = "equivocation";
}

/// The signed part of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditBody {
    pub seq: u64,
    /// Hex SHA-256 of the previous row (all zeros for the first).
    pub prev: String,
    pub at: Timestamp,
    pub kind: String,
    /// What it is about: a release key, a peer, a root version.
    pub subject: String,
    pub detail: String,
    /// The node key that signed this entry.
    pub keyid: KeyId,
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub kind: &'static str,
    pub subject: String,
    pub detail: String,
}

impl AuditEvent {
    pub fn new(kind: &'static str, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        AuditEvent {
            kind,
            subject: subject.into(),
            detail: detail.into(),
        }
    }
}

/// A stored entry, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    #[serde(flatten)]
    pub body: AuditBody,
    /// Hex SHA-256 of the whole row; the next entry's `prev`.
    pub hash: String,
}

/// Where and why the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {why}")]
pub struct ChainBreak {
    pub seq: u64,
    pub why: String,
}

pub const GENESIS: [u8; 32] = [0; 32];

/// Builds the row for `event` after a row whose hash is `prev`.
pub(crate) fn seal(
    seq: u64,
    prev: &[u8; 32],
    at: Timestamp,
    event: &AuditEvent,
    key: &SecretKey,
) -> (Vec<u8>, [u8; 32]) {
    let body = AuditBody {
        seq,
        prev: hex::encode(prev),
        at,
        kind: event.kind.to_owned(),
        subject: event.subject.clone(),
        detail: event.detail.clone(),
        keyid: key.id().clone(),
    };
    // Serialising a plain struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let sig = key.sign(&json);
    let mut row = Vec::with_capacity(64 + json.len());
    row.extend_from_slice(&sig);
    row.extend_from_slice(&json);
    let hash: [u8; 32] = Sha256::digest(&row).into();
    (row, hash)
}

/// Checks a whole log, in order: sequence numbers, the hash chain, and every signature
/// against `key_of` (the node keys the verifier trusts). Returns the entries when intact.
pub fn verify_chain(
    rows: &[(u64, Vec<u8>)],
    key_of: impl Fn(&KeyId) -> Option<PublicKey>,
) -> Result<Vec<AuditEntry>, ChainBreak> {
    let mut prev = GENESIS;
    let mut out = Vec::with_capacity(rows.len());
    for (i, (seq, row)) in rows.iter().enumerate() {
        let brk = |why: String| ChainBreak { seq: *seq, why };
        let expected = i as u64 + 1;
        if *seq != expected {
            return Err(brk(format!(
                "expected entry {expected} here (an entry is missing)"
            )));
        }
        if row.len() < 64 {
            return Err(brk("row is too short to hold a signature".into()));
        }
        let (sig, json) = row.split_at(64);
        let body: AuditBody = serde_json::from_slice(json)
            .map_err(|e| brk(format!("body is not an audit entry: {e}")))?;
        if body.seq != *seq {
            return Err(brk(format!("body says entry {}", body.seq)));
        }
        if body.prev != hex::encode(prev) {
            return Err(brk(
                "does not follow the previous entry (the chain was edited)".into(),
            ));
        }
        let key = key_of(&body.keyid)
            .ok_or_else(|| brk(format!("signed by key {} that is not trusted", body.keyid)))?;
        if !key.verify(json, sig) {
            return Err(brk(
                "signature does not verify (the entry was edited)".into()
            ));
        }
        prev = Sha256::digest(row).into();
        out.push(AuditEntry {
            body,
            hash: hex::encode(prev),
        });
    }
    Ok(out)
}
