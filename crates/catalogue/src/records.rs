//! The catalogue's history maps and the small records some of them hold (ADR 0005).
//!
//! Each history map is content addressed and append-only: an entry's key is the hex SHA-256
//! of its value. What a value must be, and who may write it, is `authority`'s business.

use accord_protocol::limits::{
    MAX_ACK_BYTES, MAX_APPROVAL_BYTES, MAX_ENVELOPE_BYTES, MAX_NOTE_BYTES, MAX_ROOT_BYTES,
};
use accord_protocol::{KeyId, PrincipalId, ReleaseId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The append-only maps at the document's top level, all created by the genesis change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum History {
    /// In-toto statement payloads: releases, recalls, conditionals.
    Statements,
    /// Approval records: a signature over one statement.
    Signatures,
    /// Promotion notes: DSSE envelopes signed by a node key.
    Notes,
    /// Root envelopes: the cooperative's root chain.
    Roots,
    /// Root adoption records: "jurisdiction J runs root vN".
    Acks,
    /// Audit checkpoints: a node's signed length and head of its audit log.
    Checkpoints,
}

impl History {
    pub const ALL: [History; 6] = [
        History::Statements,
        History::Signatures,
        History::Notes,
        History::Roots,
        History::Acks,
        History::Checkpoints,
    ];

    /// The map's key in the document root.
    pub fn key(self) -> &'static str {
        match self {
            History::Statements => "statements",
            History::Signatures => "signatures",
            History::Notes => "notes",
            History::Roots => "roots",
            History::Acks => "acks",
            History::Checkpoints => "checkpoints",
        }
    }

    pub fn from_key(k: &str) -> Option<History> {
        History::ALL.into_iter().find(|h| h.key() == k)
    }

    /// Largest value accepted in this map.
    pub fn max_bytes(self) -> usize {
        match self {
            History::Statements => MAX_ENVELOPE_BYTES,
            History::Signatures => MAX_APPROVAL_BYTES,
            History::Notes => MAX_NOTE_BYTES,
            History::Roots => MAX_ROOT_BYTES,
            History::Acks => MAX_ACK_BYTES,
            History::Checkpoints => MAX_NOTE_BYTES,
        }
    }
}

/// The key an entry must have: hex SHA-256 of its value.
pub fn entry_key(value: &[u8]) -> String {
    hex::encode(Sha256::digest(value))
}

/// One lead's (or security's, or steering's) signature over one statement, as the catalogue
/// keeps it: the statement is named by its id, the signature is over the DSSE PAE of the
/// statement's exact payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub statement: ReleaseId,
    pub keyid: KeyId,
    /// 64 bytes, hex.
    #[serde(with = "hex64")]
    pub sig: [u8; 64],
}

impl Approval {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Fixed-size hex strings and a key id always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<Approval, String> {
        if bytes.len() > MAX_APPROVAL_BYTES {
            return Err(format!("approval record of {} bytes", bytes.len()));
        }
        let a: Approval =
            serde_json::from_slice(bytes).map_err(|e| format!("approval record: {e}"))?;
        // One encoding per record, so one record has one key.
        if a.to_bytes() != bytes {
            return Err("approval record is not in its canonical form".into());
        }
        Ok(a)
    }
}

/// A node's record that its jurisdiction adopted a root. It also vouches, through its
/// dependencies, for every change the node held at that moment (ADR 0005 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub root: u64,
    /// Hex SHA-256 of the root's payload.
    pub root_sha256: String,
    pub jurisdiction: PrincipalId,
    pub at: Timestamp,
}

impl Ack {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<Ack, String> {
        if bytes.len() > MAX_ACK_BYTES {
            return Err(format!("root adoption record of {} bytes", bytes.len()));
        }
        let a: Ack =
            serde_json::from_slice(bytes).map_err(|e| format!("root adoption record: {e}"))?;
        if a.to_bytes() != bytes {
            return Err("root adoption record is not in its canonical form".into());
        }
        Ok(a)
    }
}

mod hex64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 64];
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom("signature must be lower-case hex"));
        }
        hex::decode_to_slice(&s, &mut out)
            .map_err(|_| serde::de::Error::custom("signature must be 128 hex digits"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_other_encodings() {
        let a = Approval {
            statement: ReleaseId::of_payload(b"x"),
            keyid: KeyId::from_public_key(&[7; 32]),
            sig: [9; 64],
        };
        let bytes = a.to_bytes();
        assert_eq!(Approval::parse(&bytes).expect("parses"), a);
        let spaced = String::from_utf8(bytes.clone())
            .expect("utf8")
            .replace(':', ": ");
        assert!(Approval::parse(spaced.as_bytes()).is_err());
        assert!(Approval::parse(b"{}").is_err());
        assert!(Approval::parse(&vec![b' '; 2000]).is_err());
        let upper = String::from_utf8(bytes)
            .expect("utf8")
            .replace("09090909", "0A0A0A0A");
        assert!(Approval::parse(upper.as_bytes()).is_err());
    }
}
