//! The daemon's artifact mirror: owns the blob store, the iroh endpoint and the mirror queue,
//! turns the catalogue's releases into wants, learns from gossip which peer holds what and
//! where its endpoint listens, and runs the fetches the queue asks for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use accord_blobs::fetch::{Fetched, fetch};
use accord_blobs::provider::{AllowList, GatedProvider};
use accord_blobs::{BlobStore, Local};
use accord_catalogue::Catalogue;
use accord_mirror::wants::{ReleaseBlobs, pin_tag, wants};
use accord_mirror::{Action, Announce, BlobHash, Limits, MirrorQueue, Outcome};
use accord_net::libp2p::PeerId;
use accord_protocol::ReleaseId;
use accord_trust::RootChain;
use anyhow::{Context, Result};
use iroh::address_lookup::MemoryLookup;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointId};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::artifacts::{self, ReleaseView};

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
    queue: MirrorQueue<PeerId>,
    ids: HashMap<PeerId, EndpointId>,
    done: mpsc::Sender<FetchDone>,
    /// What each peer last announced.
    peers: HashMap<PeerId, Announce>,
    /// Payload bytes fetched from each peer.
    pub fetched_from: HashMap<PeerId, u64>,
    releases: Vec<ReleaseBlobs>,
    /// Verified bytes held of blobs being fetched right now, updated as chunks arrive (the
    /// queue learns them only when a fetch ends).
    live: std::sync::Arc<std::sync::Mutex<HashMap<BlobHash, u64>>>,
    /// Tags already set in the store this run, so a catalogue change re-pins only new ones.
    pinned: std::collections::HashSet<String>,
    /// Tags removed this run (so they are not removed again on every change).
    unpinned: std::collections::HashSet<String>,
    /// Releases not mirrored here, and why.
    held_back: BTreeMap<ReleaseId, String>,
    limits: Limits,
    /// This node's jurisdiction: its other nodes are the nearest providers.
    jurisdiction: String,
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
        peers: &HashMap<PeerId, String>,
        jurisdiction: &str,
        done: mpsc::Sender<FetchDone>,
    ) -> Result<Mirror> {
        let limits = config.limits();
        let dial = config.dial;
        let store = BlobStore::open(&data_dir.join("blobs")).await?;
        let lookup = MemoryLookup::new();
        let endpoint = accord_blobs::endpoint::bind(seed, listen, &lookup).await?;
        let salt = u64::from_le_bytes(endpoint.id().as_bytes()[..8].try_into().unwrap_or([0; 8]));
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
        let mut m = Mirror {
            store,
            endpoint,
            lookup,
            allow,
            router,
            // Ties between providers broken by this node's own (public) endpoint id.
            queue: MirrorQueue::new(limits).with_salt(salt),
            jurisdiction: jurisdiction.to_owned(),
            ids: HashMap::new(),
            done,
            peers: HashMap::new(),
            fetched_from: HashMap::new(),
            releases: Vec::new(),
            live: Default::default(),
            pinned: Default::default(),
            unpinned: Default::default(),
            held_back: Default::default(),
            limits,
            dial,
            peer_ips: HashMap::new(),
            filtered: HashMap::new(),
        };
        m.set_peers(peers);
        info!(endpoint = %m.endpoint.id(), addrs = ?m.endpoint.bound_sockets(), "blob endpoint ready");
        Ok(m)
    }

    /// The root's node keys (other than ours): who may fetch from us and whom we fetch from.
    pub fn set_peers(&mut self, peers: &HashMap<PeerId, String>) {
        let mut ids = HashMap::new();
        for (p, j) in peers {
            if let Some(id) = endpoint_of(p) {
                ids.insert(*p, id);
                self.queue
                    .set_nearness(*p, u8::from(*j != self.jurisdiction));
            }
        }
        self.allow.set(ids.values().copied());
        for p in self.ids.keys() {
            if !ids.contains_key(p) {
                self.queue.remove_provider(p);
                self.peers.remove(p);
            }
        }
        self.ids = ids;
    }

    /// Re-derives the wanted blobs from the catalogue and the mirror plan: pins what is
    /// wanted, unpins what is not (recalled, superseded, over a staging quota), and reads
    /// what is held. Unpinned blobs stay until `accord gc`.
    pub async fn update_wants(
        &mut self,
        cat: &Catalogue,
        plan: &accord_promote::MirrorPlan,
    ) -> Result<()> {
        self.releases = artifacts::releases(cat);
        for r in &self.releases {
            for a in &r.artifacts {
                let tag = pin_tag(&r.id, &a.name);
                if !plan.wanted.contains(&r.id) {
                    if self.pinned.remove(&tag) || !self.unpinned.contains(&tag) {
                        self.store.unpin(&tag).await?;
                        self.unpinned.insert(tag);
                    }
                } else if !self.pinned.contains(&tag) {
                    self.store.pin(&tag, a.blake3).await?;
                    self.unpinned.remove(&tag);
                    self.pinned.insert(tag);
                }
            }
        }
        let active: Vec<_> = self
            .releases
            .iter()
            .filter(|r| plan.wanted.contains(&r.id))
            .cloned()
            .collect();
        self.held_back = plan.held_back.clone();
        let w = wants(&active);
        let hashes: Vec<BlobHash> = w.iter().map(|w| w.hash).collect();
        self.queue.set_wanted(w);
        for h in hashes {
            let local = self.store.local(&h).await?;
            self.queue.set_local(&h, local.bytes, local.complete);
        }
        Ok(())
    }

    /// Why a release is not mirrored here, if it is not.
    pub fn held_back(&self, id: &ReleaseId) -> Option<&str> {
        self.held_back.get(id).map(String::as_str)
    }

    /// A peer's announcement (already checked to come from a listed peer).
    pub fn on_announce(&mut self, peer: PeerId, bytes: &[u8]) {
        let Some(id) = self.ids.get(&peer).copied() else {
            return;
        };
        let a = match Announce::parse(bytes) {
            Ok(a) => a,
            Err(e) => {
                warn!(%peer, error = %e, "blob announcement ignored");
                return;
            }
        };
        // Only addresses the dial policy allows are dialled (by default the IP the peer's
        // node connection comes from): a peer cannot point this node at anything else.
        let ip = self.peer_ips.get(&peer).copied();
        let addrs: Vec<SocketAddr> = a
            .addrs
            .iter()
            .filter(|s| accord_mirror::addresses::dialable(s, self.dial, ip))
            .copied()
            .collect();
        if addrs.len() < a.addrs.len() {
            // Peers re-announce every anti-entropy tick: say it once per announced set.
            if self.filtered.get(&peer) != Some(&a.addrs) {
                warn!(%peer, announced = ?a.addrs, kept = ?addrs, peer_ip = ?ip, "blob addresses outside the dial policy ignored");
                self.filtered.insert(peer, a.addrs.clone());
            }
        } else {
            self.filtered.remove(&peer);
        }
        accord_blobs::endpoint::set_address(&self.lookup, id, &addrs);
        let complete: BTreeSet<BlobHash> = a
            .complete
            .iter()
            .filter_map(|h| hex::decode(h).ok())
            .filter_map(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .collect();
        self.queue.set_provider(peer, complete);
        self.peers.insert(peer, a);
    }

    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.queue.remove_provider(peer);
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

    /// Verified bytes held of every wanted blob, counting fetches in progress.
    fn held(&self) -> HashMap<BlobHash, (u64, u64)> {
        let live = self.live.lock().map(|l| l.clone()).unwrap_or_default();
        self.queue
            .status()
            .into_iter()
            .map(|s| {
                let have = live
                    .get(&s.hash)
                    .copied()
                    .unwrap_or(0)
                    .max(s.have)
                    .min(s.size);
                (s.hash, (have, s.size))
            })
            .collect()
    }

    /// Our own announcement.
    pub fn announcement(&self) -> Vec<u8> {
        Announce::new(self.endpoint.bound_sockets(), self.held()).to_bytes()
    }

    /// Starts the fetches the queue asks for.
    pub fn dispatch(&mut self) {
        for action in self.queue.poll(Instant::now()) {
            let Action::Fetch { hash, from } = action;
            let Some(id) = self.ids.get(&from).copied() else {
                continue;
            };
            let store = self.store.clone();
            let endpoint = self.endpoint.clone();
            let done = self.done.clone();
            let live = self.live.clone();
            let stall_after = self.limits.stall_after;
            info!(blob = %hex::encode(&hash[..8]), peer = %from, "fetching");
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
    }

    /// A fetch ended. Returns true when a blob became complete (worth announcing).
    pub fn on_done(&mut self, d: FetchDone) -> bool {
        if let Ok(mut l) = self.live.lock() {
            l.remove(&d.hash);
        }
        *self.fetched_from.entry(d.from).or_default() += d.fetched.bytes;
        let hash = hex::encode(&d.hash[..8]);
        match &d.fetched.outcome {
            Outcome::Complete => {
                info!(blob = %hash, peer = %d.from, bytes = d.fetched.bytes, "blob mirrored and verified")
            }
            Outcome::Corrupt => {
                warn!(blob = %hash, peer = %d.from, kept = d.local.bytes, "peer sent data that failed verification; penalised")
            }
            Outcome::Stalled => {
                warn!(blob = %hash, peer = %d.from, kept = d.local.bytes, "peer announced the blob but sent nothing; penalised, asking another")
            }
            Outcome::Failed(e) => {
                info!(blob = %hash, peer = %d.from, error = %e, kept = d.local.bytes, "fetch failed; will retry")
            }
        }
        let outcome = if d.local.complete {
            Outcome::Complete
        } else {
            d.fetched.outcome
        };
        let complete = outcome == Outcome::Complete;
        self.queue
            .finished(&d.hash, &d.from, outcome, d.local.bytes, Instant::now());
        complete
    }

    pub fn counters(&self) -> accord_mirror::queue::Counters {
        self.queue.counters().clone()
    }

    pub fn queue_len(&self) -> usize {
        self.queue.pending()
    }

    /// Every release with what each node holds of each artifact. This node's own entry is
    /// its own store's verified bytes and nothing else: a peer of the same jurisdiction
    /// claiming to hold a blob never stands in for this node (ADR 0005 §5). Other
    /// jurisdictions show the most any of their nodes announced.
    pub fn views(
        &self,
        cat: &Catalogue,
        chain: &RootChain,
        me: &str,
        names: &HashMap<PeerId, String>,
    ) -> Vec<ReleaseView> {
        let mine: HashMap<BlobHash, u64> = self
            .held()
            .into_iter()
            .map(|(h, (have, _))| (h, have))
            .collect();
        cat.releases
            .iter()
            .map(|r| {
                let mut v = ReleaseView::build(r, cat, chain, |h| {
                    let mut held = BTreeMap::new();
                    let hex = hex::encode(h);
                    for (p, a) in &self.peers {
                        if let Some(j) = names.get(p).filter(|j| j.as_str() != me) {
                            let have = a.held.get(&hex).copied().unwrap_or(0);
                            let e = held.entry(j.clone()).or_insert(0);
                            *e = (*e).max(have);
                        }
                    }
                    held.insert(me.to_owned(), mine.get(h).copied().unwrap_or(0));
                    held
                });
                v.not_mirrored = self.held_back(&r.id).map(str::to_owned);
                v
            })
            .collect()
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
