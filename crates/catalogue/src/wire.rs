//! The catalogue sync message on the wire: Automerge's sync message plus the signatures of
//! the changes it may carry (relayed changes keep their author's signature).
//!
//! ```text
//! "ACS1" | u32 BE length | automerge sync message | u16 BE count | count × (32-byte change hash, 64-byte signature)
//! ```

use crate::error::CatalogueError;

const MAGIC: &[u8; 4] = b"ACS1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireMessage {
    pub sync: Vec<u8>,
    pub signatures: Vec<([u8; 32], [u8; 64])>,
}

impl WireMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + self.sync.len() + self.signatures.len() * 96);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.sync.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.sync);
        out.extend_from_slice(&(self.signatures.len() as u16).to_be_bytes());
        for (h, s) in &self.signatures {
            out.extend_from_slice(h);
            out.extend_from_slice(s);
        }
        out
    }

    /// Strict decoding of untrusted bytes: exact lengths, nothing left over.
    pub fn decode(bytes: &[u8], peer: &str) -> Result<WireMessage, CatalogueError> {
        let bad = |reason: &str| CatalogueError::Refused {
            peer: peer.to_owned(),
            reason: format!("malformed message: {reason}"),
        };
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("wrong magic"))?;
        let (len, rest) = take::<4>(rest).ok_or_else(|| bad("truncated length"))?;
        let len = u32::from_be_bytes(len) as usize;
        if rest.len() < len {
            return Err(bad("truncated sync message"));
        }
        let (sync, rest) = rest.split_at(len);
        let (count, mut rest) = take::<2>(rest).ok_or_else(|| bad("truncated signature count"))?;
        let count = u16::from_be_bytes(count) as usize;
        if rest.len() != count * 96 {
            return Err(bad("signature list length does not match its count"));
        }
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            let (h, r) = take::<32>(rest).ok_or_else(|| bad("truncated hash"))?;
            let (s, r) = take::<64>(r).ok_or_else(|| bad("truncated signature"))?;
            signatures.push((h, s));
            rest = r;
        }
        Ok(WireMessage {
            sync: sync.to_vec(),
            signatures,
        })
    }
}

fn take<const N: usize>(b: &[u8]) -> Option<([u8; N], &[u8])> {
    if b.len() < N {
        return None;
    }
    let (head, rest) = b.split_at(N);
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Some((out, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncations_refused() {
        let m = WireMessage {
            sync: vec![1, 2, 3],
            signatures: vec![([7; 32], [9; 64])],
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
    }
}
