//! The catalogue sync message on the wire: Automerge's sync message plus the signatures that
//! cover the changes it carries (relayed changes keep their author's signature).
//!
//! ```text
//! 0xA1 | varint length | automerge sync message | varint count | count × 64-byte signature
//! ```
//!
//! Signatures travel without the change hash they sign: the receiver matches each author's
//! newest change to the signature that verifies under that author's key (at most
//! `MAX_SIGNATURES` tries per author). That keeps a one-edit sync within 25% of plain
//! Automerge's bytes (docs/benchmarks.md).

use crate::error::CatalogueError;

const VERSION: u8 = 0xA1;

/// More signatures than authors in a cooperative is an attack on verification time.
pub const MAX_SIGNATURES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireMessage {
    pub sync: Vec<u8>,
    pub signatures: Vec<[u8; 64]>,
}

impl WireMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.sync.len() + self.signatures.len() * 64);
        out.push(VERSION);
        put_varint(&mut out, self.sync.len() as u64);
        out.extend_from_slice(&self.sync);
        put_varint(&mut out, self.signatures.len() as u64);
        for s in &self.signatures {
            out.extend_from_slice(s);
        }
        out
    }

    /// Strict decoding of untrusted bytes: exact lengths, nothing left over.
    pub fn decode(bytes: &[u8], peer: &str) -> Result<WireMessage, CatalogueError> {
        let bad = |reason: &str| CatalogueError::Refused {
            peer: peer.to_owned(),
            reason: format!("malformed message: {reason}"),
            kind: crate::error::Refusal::Violation,
        };
        let rest = match bytes.split_first() {
            Some((&VERSION, rest)) => rest,
            _ => return Err(bad("unknown version byte")),
        };
        let (len, rest) = get_varint(rest).ok_or_else(|| bad("bad length"))?;
        let len = usize::try_from(len).map_err(|_| bad("bad length"))?;
        if rest.len() < len {
            return Err(bad("truncated sync message"));
        }
        let (sync, rest) = rest.split_at(len);
        let (count, rest) = get_varint(rest).ok_or_else(|| bad("bad signature count"))?;
        let count = usize::try_from(count).map_err(|_| bad("bad signature count"))?;
        if count > MAX_SIGNATURES {
            return Err(bad("too many signatures"));
        }
        if rest.len() != count * 64 {
            return Err(bad("signature list length does not match its count"));
        }
        let signatures = rest
            .chunks_exact(64)
            .map(|c| {
                let mut s = [0u8; 64];
                s.copy_from_slice(c);
                s
            })
            .collect();
        Ok(WireMessage {
            sync: sync.to_vec(),
            signatures,
        })
    }
}

/// LEB128.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            // Refuse non-minimal encodings so one message has one encoding.
            if i > 0 && *byte == 0 {
                return None;
            }
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncations_refused() {
        let m = WireMessage {
            sync: vec![1; 300],
            signatures: vec![[9; 64], [7; 64]],
        };
        let bytes = m.encode();
        assert_eq!(WireMessage::decode(&bytes, "p").expect("decodes"), m);
        for cut in 0..bytes.len() {
            assert!(
                WireMessage::decode(&bytes[..cut], "p").is_err(),
                "cut at {cut} accepted"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(WireMessage::decode(&extra, "p").is_err());
        // Overlong varint and too many signatures.
        assert!(WireMessage::decode(&[VERSION, 0x80, 0x00, 0x00], "p").is_err());
        let many = WireMessage {
            sync: vec![],
            signatures: vec![[0; 64]; MAX_SIGNATURES + 1],
        };
        assert!(WireMessage::decode(&many.encode(), "p").is_err());
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 20, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(get_varint(&out), Some((v, &[][..])));
        }
    }
}
