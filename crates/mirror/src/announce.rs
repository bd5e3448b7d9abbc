//! The blob announcement: what a node gossips about its blobs, where its endpoint listens
//! and how many verified bytes of each wanted blob it holds. A peer's announcement is
//! untrusted input: its size is bounded before parsing, and what it claims only decides
//! whom to ask (every byte fetched is verified against the signed BLAKE3).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::queue::BlobHash;

/// Largest announcement accepted (gossipsub's transmit limit is 64 KiB).
pub const MAX_ANNOUNCE_BYTES: usize = 60 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    pub addrs: Vec<SocketAddr>,
    /// hex BLAKE3 -> verified bytes held
    pub held: BTreeMap<String, u64>,
    /// hex BLAKE3 of the blobs held complete
    pub complete: BTreeSet<String>,
}

impl Announce {
    /// The announcement of a node listening at `addrs` that holds `held`
    /// (hash -> verified bytes held, blob size).
    pub fn new(
        addrs: Vec<SocketAddr>,
        held: impl IntoIterator<Item = (BlobHash, (u64, u64))>,
    ) -> Self {
        let mut a = Announce {
            addrs,
            ..Default::default()
        };
        for (hash, (have, size)) in held {
            let h = hex::encode(hash);
            if have == size {
                a.complete.insert(h.clone());
            }
            a.held.insert(h, have);
        }
        a
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings, numbers and addresses always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a peer's announcement, refusing an oversized one before parsing.
    pub fn parse(bytes: &[u8]) -> Result<Announce, String> {
        if bytes.len() > MAX_ANNOUNCE_BYTES {
            return Err(format!(
                "blob announcement of {} bytes is over the {MAX_ANNOUNCE_BYTES}-byte limit",
                bytes.len()
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("unreadable blob announcement: {e}"))
    }

    /// The blobs it says it holds complete (entries that are not hashes are skipped).
    pub fn complete_hashes(&self) -> BTreeSet<BlobHash> {
        self.complete
            .iter()
            .filter_map(|h| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h, &mut out).ok().map(|()| out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let a = Announce::new(
            vec!["127.0.0.1:4000".parse().expect("addr")],
            [([1u8; 32], (10, 10)), ([2u8; 32], (3, 10))],
        );
        let b = Announce::parse(&a.to_bytes()).expect("parse");
        assert_eq!(a, b);
        assert_eq!(b.complete_hashes(), BTreeSet::from([[1u8; 32]]));
        assert!(Announce::parse(&vec![b' '; MAX_ANNOUNCE_BYTES + 1]).is_err());
        assert!(Announce::parse(b"{\"addrs\": 3}").is_err());
    }
}
