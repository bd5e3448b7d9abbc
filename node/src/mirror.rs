//! The daemon's side of the artifact mirror: the blob store, the iroh endpoint and
//! provider, and the fetches. What to pin, what to ask the store, what to fetch from whom,
//! and what a fetch's end means are the core's (`accord_service`: `Io::Pin`, `Io::Probe`,
//! `Io::Fetch`, `Io::BlobAddrs`); this module carries them out and reports back.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use accord_blobs::fetch::{Fetched, fetch};
use accord_blobs::provider::{AllowList, GatedProvider};
use accord_blobs::{BlobStore, Local};
use accord_catalogue::Catalogue;
use accord_mirror::{Announce, BlobHash};
use accord_net::libp2p::PeerId;
use accord_protocol::ReleaseId;
use accord_trust::RootChain;
use anyhow::{Context, Result};
use iroh::address_lookup::MemoryLookup;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointId};
use tokio::sync::mpsc;
use tracing::warn;

use crate::artifacts::ReleaseView;

/// A fetch task's report back to the loop.
#[derive(Debug)]
pub struct FetchDone {
    pub hash: BlobHash,
    pub from: PeerId,
    pub fetched: Fetched,
    pub local: Local,
}

pub struct Mirror {
    pub store: BlobStore,
    endpoint: Endpoint,
    lookup: MemoryLookup,
    allow: AllowList,
    router: Router,
    ids: HashMap<PeerId, EndpointId>,
    done: mpsc::Sender<FetchDone>,
    /// Verified bytes held of blobs being fetched right now, updated as chunks arrive (the
    /// core learns them only when a fetch ends).
    live: std::sync::Arc<std::sync::Mutex<HashMap<BlobHash, u64>>>,
    stall_after: Duration,
    dial: accord_mirror::addresses::DialPolicy,
    /// The IP address each peer's node connection comes from (for `DialPolicy::SameIp`).
    peer_ips: HashMap<PeerId, std::net::IpAddr>,
    /// Announced addresses the dial policy filtered, last warned about, per peer.
    filtered: HashMap<PeerId, Vec<SocketAddr>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("endpoint", &self.endpoint.id())
            .finish_non_exhaustive()
    }
}

impl Mirror {
    pub async fn start(
        data_dir: &Path,
        seed: [u8; 32],
        listen: SocketAddr,
        config: &crate::config::MirrorConfig,
        done: mpsc::Sender<FetchDone>,
    ) -> Result<Mirror> {
        let limits = config.limits();
        let store = BlobStore::open(&data_dir.join("blobs")).await?;
        let lookup = MemoryLookup::new();
        let endpoint = accord_blobs::endpoint::bind(seed, listen, &lookup).await?;
        let allow = AllowList::default();
        let router = Router::builder(endpoint.clone())
            .accept(
                iroh_blobs::ALPN,
                GatedProvider::new(
                    store.inner().clone(),
                    allow.clone(),
                    limits.per_peer * 2,
                    limits.serve_total,
                ),
            )
            .spawn();
        let m = Mirror {
            store,
            endpoint,
            lookup,
            allow,
            router,
            ids: HashMap::new(),
            done,
            live: Default::default(),
            stall_after: limits.stall_after,
            dial: config.dial,
            peer_ips: HashMap::new(),
            filtered: HashMap::new(),
        };
        tracing::info!(endpoint = %m.endpoint.id(), addrs = ?m.endpoint.bound_sockets(), "blob endpoint ready");
        Ok(m)
    }

    /// This node's own (public) endpoint id as a number: the core breaks ties between
    /// providers with it, so mirrors spread over them.
    pub fn salt(&self) -> u64 {
        u64::from_le_bytes(
            self.endpoint.id().as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        )
    }

    /// Where the blob endpoint listens (for this node's announcements).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoint.bound_sockets()
    }

    /// The root's node keys (other than ours): who may fetch from us and whom we fetch from.
    pub fn set_peers(&mut self, peers: &HashMap<PeerId, String>) {
        self.ids = peers
            .keys()
            .filter_map(|p| endpoint_of(p).map(|id| (*p, id)))
            .collect();
        self.allow.set(self.ids.values().copied());
    }

    /// Where a listed peer's blob endpoint listens, as it announced. Only addresses the
    /// dial policy allows are dialled (by default the IP the peer's node connection comes
    /// from): a peer cannot point this node at anything else.
    pub fn set_addresses(&mut self, peer: PeerId, announced: &[SocketAddr]) {
        let Some(id) = self.ids.get(&peer).copied() else {
            return;
        };
        let ip = self.peer_ips.get(&peer).copied();
        let addrs: Vec<SocketAddr> = announced
            .iter()
            .filter(|s| accord_mirror::addresses::dialable(s, self.dial, ip))
            .copied()
            .collect();
        if addrs.len() < announced.len() {
            if self.filtered.get(&peer).map(Vec::as_slice) != Some(announced) {
                warn!(%peer, ?announced, kept = ?addrs, peer_ip = ?ip, "blob addresses outside the dial policy ignored");
                self.filtered.insert(peer, announced.to_vec());
            }
        } else {
            self.filtered.remove(&peer);
        }
        accord_blobs::endpoint::set_address(&self.lookup, id, &addrs);
    }

    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.peer_ips.remove(peer);
    }

    /// Where a peer's node connection comes from.
    pub fn peer_connected(&mut self, peer: PeerId, ip: Option<std::net::IpAddr>) {
        match ip {
            Some(ip) => {
                self.peer_ips.insert(peer, ip);
            }
            None => {
                self.peer_ips.remove(&peer);
            }
        }
    }

    /// Pins and unpins what the core asked for (`Io::Pin`).
    pub async fn pin(&self, pin: &[(String, BlobHash)], unpin: &[String]) -> Result<()> {
        for tag in unpin {
            self.store.unpin(tag).await?;
        }
        for (tag, hash) in pin {
            self.store.pin(tag, *hash).await?;
        }
        Ok(())
    }

    /// What the store holds of each blob (`Io::Probe`), verified.
    pub async fn probe(&self, hashes: &[BlobHash]) -> Result<Vec<(BlobHash, u64, bool)>> {
        let mut out = Vec::with_capacity(hashes.len());
        for h in hashes {
            let local = self.store.local(h).await?;
            out.push((*h, local.bytes, local.complete));
        }
        Ok(out)
    }

    /// Starts the fetch the core asked for (`Io::Fetch`); the task reports to the loop.
    pub fn fetch(&self, hash: BlobHash, from: PeerId) {
        let Some(id) = self.ids.get(&from).copied() else {
            warn!(peer = %from, "asked to fetch from a peer with no blob endpoint");
            return;
        };
        let store = self.store.clone();
        let endpoint = self.endpoint.clone();
        let done = self.done.clone();
        let live = self.live.clone();
        let stall_after = self.stall_after;
        tokio::spawn(async move {
            let base = store.local(&hash).await.map(|l| l.bytes).unwrap_or(0);
            let fetched = fetch(store.inner(), &endpoint, id, &hash, stall_after, |n| {
                if let Ok(mut l) = live.lock() {
                    l.insert(hash, base + n);
                }
            })
            .await;
            let local = store.local(&hash).await.unwrap_or(Local {
                bytes: 0,
                complete: false,
            });
            if let Ok(mut l) = live.lock() {
                l.remove(&hash);
            }
            let _ = done
                .send(FetchDone {
                    hash,
                    from,
                    fetched,
                    local,
                })
                .await;
        });
    }

    /// Verified bytes held of blobs being fetched right now.
    pub fn in_progress(&self) -> HashMap<BlobHash, u64> {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops serving, then closes the store (in that order: the provider reads the store).
    pub async fn shutdown(self) -> Result<()> {
        self.router
            .shutdown()
            .await
            .context("cannot stop the blob endpoint")?;
        self.store.shutdown().await?;
        Ok(())
    }
}

/// Every release with what each node holds of each artifact. This node's own entry is
/// its own store's verified bytes (`mine`) and nothing else: a peer of the same
/// jurisdiction claiming to hold a blob never stands in for this node (ADR 0005 §5). Other
/// jurisdictions show the most any of their nodes announced.
pub fn views<'a>(
    cat: &Catalogue,
    chain: &RootChain,
    me: &str,
    names: &HashMap<PeerId, String>,
    mine: &HashMap<BlobHash, u64>,
    announced: impl Iterator<Item = (&'a PeerId, &'a Announce)>,
    held_back: impl Fn(&ReleaseId) -> Option<String>,
) -> Vec<ReleaseView> {
    let announced: Vec<(&str, &Announce)> = announced
        .filter_map(|(p, a)| names.get(p).map(|j| (j.as_str(), a)))
        .filter(|(j, _)| *j != me)
        .collect();
    cat.releases
        .iter()
        .map(|r| {
            let mut v = ReleaseView::build(r, cat, chain, |h| {
                let mut held = BTreeMap::new();
                let hex = hex::encode(h);
                for (j, a) in &announced {
                    let have = a.held.get(&hex).copied().unwrap_or(0);
                    let e = held.entry((*j).to_owned()).or_insert(0);
                    *e = (*e).max(have);
                }
                held.insert(me.to_owned(), mine.get(h).copied().unwrap_or(0));
                held
            });
            v.not_mirrored = held_back(&r.id);
            v
        })
        .collect()
}

/// libp2p PeerIds of Ed25519 keys embed the key: the same key is the iroh endpoint id.
fn endpoint_of(peer: &PeerId) -> Option<EndpointId> {
    let mh = peer.as_ref();
    if mh.code() != 0x00 {
        return None;
    }
    let pk = accord_net::libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    let raw = pk.try_into_ed25519().ok()?.to_bytes();
    EndpointId::from_bytes(&raw).ok()
}
