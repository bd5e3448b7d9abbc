//! What the core asks the reactor to do. The reactor only translates: every variant maps
//! to one call on the swarm, the mirror or the files, and decides nothing.

use std::collections::HashMap;

use std::net::SocketAddr;

use accord_mirror::BlobHash;
use accord_protocol::ReleaseId;
use accord_store::AuditEvent;

/// The gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// "My catalogue's heads are these" (32-byte change hashes).
    Heads,
    /// "I hold these blobs, fetch them from me here" (the mirror's announcement).
    Blobs,
}

/// One piece of I/O, in the order the core wants it done.
#[derive(Debug, Clone)]
pub enum Io<P> {
    /// Send our next sync message to `peer`, as a request (one in flight per peer).
    SendSync { peer: P, bytes: Vec<u8> },
    /// Answer the sync request the reactor numbered `token` (our next message, or none).
    Respond { token: u64, reply: Option<Vec<u8>> },
    /// Gossip `data` on `topic`.
    Publish { topic: Topic, data: Vec<u8> },
    /// Send this node's blob announcement straight to `peer` (it just connected, and may
    /// not be in any gossip mesh yet); the peer takes it as if gossiped by this node.
    SendBlobs { peer: P, data: Vec<u8> },
    /// Close every connection to `peer`.
    Disconnect(P),
    /// Refuse `peer`'s connections until `Unban` (it broke the rules too often).
    Ban { peer: P, secs: u64 },
    /// Let `peer` connect again (its ban is over).
    Unban(P),
    /// The root now lists these node keys (as peers, with their jurisdictions): only they
    /// may connect, and the mirror deals only with them.
    SetListed(HashMap<P, String>),
    /// Rows to append to the audit log.
    Audit(Vec<AuditEvent>),
    /// The root chain gained roots (already committed): write the chain files.
    RootsAdopted(Vec<u64>),
    /// Run the `on_promote` command for `release` with exactly this environment (plus
    /// `PATH` and the data dir), and report with `Service::hook_finished`.
    RunHook {
        release: ReleaseId,
        env: Vec<(String, String)>,
    },
    /// Pin these blobs in the store under these tags (wanted), and drop these tags (no
    /// longer wanted; the bytes stay until `accord gc`).
    Pin {
        pin: Vec<(String, BlobHash)>,
        unpin: Vec<String>,
    },
    /// Say what the store holds of these blobs: `Service::blobs_local`.
    Probe(Vec<BlobHash>),
    /// Fetch `hash` (`size` bytes, as signed) from `from`, verifying as bytes arrive, and
    /// report with `Service::fetch_finished`.
    Fetch { hash: BlobHash, from: P, size: u64 },
    /// `peer`'s blob endpoint listens at these addresses (as it announced them; the
    /// reactor dials only those its dial policy allows).
    BlobAddrs { peer: P, addrs: Vec<SocketAddr> },
    /// The current root no longer lists this node's key: stop the node.
    Retired { root: u64 },
    /// Every blob of `release` is held here: verify its upstream provenance (the Sigstore
    /// bundles `checks` names, read from the store, against this node's Sigstore trusted
    /// root and identity policy for `capability`, which may also require provenance for
    /// `artifacts` that carry none) and report with `Service::provenance_verified`.
    VerifyProvenance {
        release: accord_protocol::ReleaseId,
        capability: String,
        artifacts: Vec<String>,
        checks: Vec<accord_promote::provenance::Check>,
    },
}
