//! The node's artifact mirror inside the core: which blobs to hold (the engine's mirror
//! plan, pinned), who holds what (peers' announcements), which fetch to start next (the
//! sans-I/O `accord_mirror::MirrorQueue`), what a fetch's end means, and what this node's
//! own store holds of each release, for the engine. The reactor does the blob I/O the core
//! asks for (`Io::Pin`, `Io::Probe`, `Io::Fetch`, `Io::BlobAddrs`) and reports back
//! (`blobs_local`, `fetch_finished`); a simulation does the same with a modelled store and
//! link, so neither re-implements a mirroring decision.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Instant;

use accord_catalogue::Catalogue;
use accord_mirror::wants::{ReleaseBlobs, pin_tag, wants};
use accord_mirror::{Action, Announce, BlobHash, Limits, MirrorQueue, Outcome};
use accord_promote::provenance::{self, Verdict};
use accord_promote::{Mirror, MirrorPlan};
use accord_protocol::ReleaseId;
use tracing::{debug, info, warn};

use super::Service;
use crate::io::Io;
use crate::store::Store;
use crate::time::Now;

/// What the node's config says about mirroring.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub limits: Limits,
    /// Breaks ties between equal providers (the node's endpoint id; a simulated node's
    /// number), so mirrors spread over providers.
    pub salt: u64,
    /// This node's jurisdiction: its other nodes are the nearest providers.
    pub jurisdiction: String,
}

/// The mirror's counters, for the node's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MirrorMetrics {
    /// jurisdiction -> payload bytes of blobs fetched from it
    pub blob_bytes_fetched: BTreeMap<String, u64>,
    pub blob_corrupt: u64,
    pub blob_fetch_failures: u64,
    /// Fetches cut off because the provider sent nothing.
    pub blob_stalled: u64,
    pub mirror_queue: usize,
}

/// The mirror side of the core's state.
#[derive(Debug)]
pub(crate) struct BlobMirror<P> {
    cfg: MirrorConfig,
    queue: MirrorQueue<P>,
    /// Pin tags asked for this run, and tags unpinned this run (each asked for once: a
    /// catalogue change re-pins only what is new).
    pinned: BTreeSet<String>,
    unpinned: BTreeSet<String>,
    /// Releases not mirrored here, and why (the last plan).
    held_back: BTreeMap<ReleaseId, String>,
    /// What each listed peer last announced.
    announced: HashMap<P, Announce>,
    /// Where this node's blob endpoint listens (`set_blob_addrs`), for its announcement.
    addrs: Vec<SocketAddr>,
    /// `Io::Probe` is out: no fetch starts before the core knows what the store holds.
    probing: bool,
    /// What the store holds changed since the engine was last told.
    held_dirty: bool,
    /// The queue's answer may have changed since it was last polled.
    poll_due: bool,
    fetched_from: HashMap<P, u64>,
    /// Verdicts on releases' upstream provenance, when this node checks it
    /// (`Service::with_provenance_checks`).
    provenance: Option<ProvenanceChecks>,
}

/// The provenance verdicts of this run, and the checks asked for and not answered yet.
#[derive(Debug, Default)]
struct ProvenanceChecks {
    verdicts: BTreeMap<ReleaseId, Verdict>,
    asked: BTreeSet<ReleaseId>,
}

impl<P: Clone + Ord + Hash> BlobMirror<P> {
    /// Whether what the store holds changed since the engine was last told.
    pub(crate) fn held_dirty(&self) -> bool {
        self.held_dirty
    }

    pub(crate) fn new(cfg: MirrorConfig) -> Self {
        BlobMirror {
            queue: MirrorQueue::new(cfg.limits).with_salt(cfg.salt),
            cfg,
            pinned: BTreeSet::new(),
            unpinned: BTreeSet::new(),
            held_back: BTreeMap::new(),
            announced: HashMap::new(),
            addrs: Vec::new(),
            probing: false,
            held_dirty: true,
            poll_due: false,
            fetched_from: HashMap::new(),
            provenance: None,
        }
    }

    /// What this node's own store holds of every release (`accord_promote::inputs::held_here`).
    fn held_here(&self, cat: &Catalogue) -> BTreeMap<ReleaseId, Mirror> {
        let have: HashMap<BlobHash, u64> =
            self.queue.held().map(|(h, have, _)| (h, have)).collect();
        accord_promote::inputs::held_here(
            cat,
            |h| have.get(h).copied().unwrap_or(0),
            |id| self.held_back.get(id).cloned(),
            |r| {
                self.provenance
                    .as_ref()
                    .and_then(|p| provenance::line(p.verdicts.get(&r.id)))
            },
        )
    }

    /// The provenance checks to ask for: releases held whole here with no verdict yet.
    fn provenance_due(&mut self, cat: &Catalogue) -> Vec<Io<P>> {
        let Some(checks) = &mut self.provenance else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r in &cat.releases {
            if checks.verdicts.contains_key(&r.id) || checks.asked.contains(&r.id) {
                continue;
            }
            let whole = r
                .artifacts
                .iter()
                .all(|a| self.queue.held_bytes(&a.blake3) >= a.size);
            if !whole {
                continue;
            }
            checks.asked.insert(r.id);
            out.push(Io::VerifyProvenance {
                release: r.id,
                capability: r.capability.clone(),
                artifacts: provenance::payload_artifacts(r)
                    .map(str::to_owned)
                    .collect(),
                checks: provenance::checks(r),
            });
        }
        out
    }
}

impl<S: Store, P: Clone + Ord + Hash + Display + std::fmt::Debug> Service<S, P> {
    /// Gives this core the artifact mirror: from now on it asks the reactor to pin, probe
    /// and fetch blobs, and tells its engine what the store holds.
    pub fn with_mirror(mut self, cfg: MirrorConfig) -> Self {
        self.blobs = Some(BlobMirror::new(cfg));
        self.mirror_listed();
        self
    }

    /// From now on a release counts as here only once this node verified its upstream
    /// provenance (`Io::VerifyProvenance`, answered by `provenance_verified`).
    pub fn with_provenance_checks(mut self) -> Self {
        if let Some(m) = &mut self.blobs {
            m.provenance = Some(ProvenanceChecks::default());
            m.held_dirty = true;
        }
        self
    }

    /// The reactor verified a release's provenance (`Io::VerifyProvenance`).
    pub fn provenance_verified(&mut self, release: ReleaseId, verdict: Verdict, now: Now) {
        self.clock = now;
        if let Some(m) = &mut self.blobs
            && let Some(p) = &mut m.provenance
        {
            match &verdict {
                Verdict::Verified { artifacts } => {
                    info!(release = %release.short(), signers = artifacts.len(), "provenance verified")
                }
                Verdict::Refused { reason } => {
                    warn!(release = %release.short(), %reason, "provenance refused")
                }
            }
            p.asked.remove(&release);
            p.verdicts.insert(release, verdict);
            m.held_dirty = true;
        }
    }

    /// This node's verdict on a release's provenance, if it checks provenance and has one.
    pub fn provenance_verdict(&self, release: &ReleaseId) -> Option<&Verdict> {
        self.blobs
            .as_ref()
            .and_then(|m| m.provenance.as_ref())
            .and_then(|p| p.verdicts.get(release))
    }

    /// The Sigstore trusted root or identity policy changed: every verdict is asked again.
    pub fn provenance_policy_changed(&mut self) {
        if let Some(m) = &mut self.blobs
            && let Some(p) = &mut m.provenance
        {
            p.verdicts.clear();
            p.asked.clear();
            m.held_dirty = true;
        }
    }

    /// Where this node's blob endpoint listens: its announcements say so.
    pub fn set_blob_addrs(&mut self, addrs: Vec<SocketAddr>) {
        if let Some(m) = &mut self.blobs {
            m.addrs = addrs;
        }
    }

    /// Publishes this node's announcement: what it holds (verified bytes of each wanted
    /// blob, which complete) and where to fetch it.
    pub(super) fn publish_blobs(&mut self) {
        if let Some(data) = self.blob_announcement() {
            self.outbox.push_back(Io::Publish {
                topic: crate::io::Topic::Blobs,
                data,
            });
        }
    }

    /// A peer sent its announcement straight to us (`Io::SendBlobs` on its side: it just
    /// connected, perhaps after a restart). Taken as gossip from it; returns ours for the
    /// answer, so the peer learns who holds what over the connection it just opened (its
    /// own `Io::SendBlobs` to us may travel over an older connection not yet known dead).
    pub fn blobs_exchanged(&mut self, peer: P, data: &[u8], now: Now) -> Option<Vec<u8>> {
        if !self.gossip(Some(peer.clone()), peer, crate::io::Topic::Blobs, data, now) {
            return None;
        }
        self.blob_announcement()
    }

    /// This node's announcement, if it mirrors.
    pub(super) fn blob_announcement(&self) -> Option<Vec<u8>> {
        let m = self.blobs.as_ref()?;
        Some(Announce::new(m.addrs.clone(), self.blobs_held()).to_bytes())
    }

    /// Verified bytes held here and the size of every wanted blob, for this node's
    /// announcement and status.
    pub fn blobs_held(&self) -> Vec<(BlobHash, (u64, u64))> {
        self.blobs
            .as_ref()
            .map(|m| {
                m.queue
                    .held()
                    .map(|(h, have, size)| (h, (have, size)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What each listed peer last announced it holds.
    pub fn blobs_announced(&self) -> impl Iterator<Item = (&P, &Announce)> {
        self.blobs.iter().flat_map(|m| m.announced.iter())
    }

    /// Why a release is not mirrored here, if it is not.
    pub fn held_back(&self, id: &ReleaseId) -> Option<&str> {
        self.blobs
            .as_ref()
            .and_then(|m| m.held_back.get(id))
            .map(String::as_str)
    }

    pub fn mirror_metrics(&self) -> MirrorMetrics {
        let Some(m) = &self.blobs else {
            return MirrorMetrics::default();
        };
        let c = m.queue.counters();
        let mut fetched = BTreeMap::new();
        for (p, bytes) in &m.fetched_from {
            if let Some(j) = self.listed.get(p) {
                *fetched.entry(j.clone()).or_insert(0) += bytes;
            }
        }
        MirrorMetrics {
            blob_bytes_fetched: fetched,
            blob_corrupt: c.corrupt,
            blob_fetch_failures: c.failed,
            blob_stalled: c.stalled,
            mirror_queue: m.queue.pending(),
        }
    }

    /// The store's answer to `Io::Probe` (or news of blobs it gained another way): verified
    /// bytes held of each blob, and whether it is complete.
    pub fn blobs_local(&mut self, local: &[(BlobHash, u64, bool)], now: Now) {
        self.clock = now;
        let Some(m) = &mut self.blobs else {
            return;
        };
        for (hash, have, complete) in local {
            m.queue.set_local(hash, *have, *complete);
        }
        m.probing = false;
        m.held_dirty = true;
        m.poll_due = true;
        // What we hold is now known (a proposal's artifacts, a restart): say so.
        self.announce_blobs(now);
    }

    /// A fetch the core asked for ended. `bytes` came from `from`; `local` is what the store
    /// now holds of `hash`, verified, which is what counts: a fetch that failed after a
    /// concurrent one completed the blob is complete.
    pub fn fetch_finished(
        &mut self,
        hash: BlobHash,
        from: P,
        outcome: Outcome,
        bytes: u64,
        local: (u64, bool),
        now: Now,
    ) {
        self.clock = now;
        let Some(m) = &mut self.blobs else {
            return;
        };
        *m.fetched_from.entry(from.clone()).or_default() += bytes;
        let short = hex::encode(&hash[..8]);
        match &outcome {
            Outcome::Complete => {
                info!(blob = %short, peer = %from, bytes, "blob mirrored and verified")
            }
            Outcome::Corrupt => {
                warn!(blob = %short, peer = %from, kept = local.0, "peer sent data that failed verification; penalised")
            }
            Outcome::Stalled => {
                warn!(blob = %short, peer = %from, kept = local.0, "peer announced the blob but sent nothing; penalised, asking another")
            }
            Outcome::Failed(e) => {
                debug!(blob = %short, peer = %from, error = %e, kept = local.0, "fetch failed; will retry")
            }
        }
        let outcome = if local.1 { Outcome::Complete } else { outcome };
        let complete = outcome == Outcome::Complete;
        m.queue.finished(&hash, &from, outcome, local.0, now.mono);
        m.poll_due = true;
        m.held_dirty = true;
        if complete {
            self.announce_blobs(now);
        }
    }

    /// A listed peer's blob announcement: what it holds, and where it listens.
    pub(super) fn heard_blobs(&mut self, author: P, data: &[u8]) {
        let Some(m) = &mut self.blobs else {
            return;
        };
        let a = match Announce::parse(data) {
            Ok(a) => a,
            Err(e) => {
                warn!(peer = %author, error = %e, "blob announcement ignored");
                return;
            }
        };
        m.queue.set_provider(author.clone(), a.complete_hashes());
        m.poll_due = true;
        if m.announced.get(&author).map(|old| &old.addrs) != Some(&a.addrs) {
            self.outbox.push_back(Io::BlobAddrs {
                peer: author.clone(),
                addrs: a.addrs.clone(),
            });
        }
        m.announced.insert(author, a);
    }

    /// The root's node keys changed: nearness follows jurisdictions, and a key no longer
    /// listed provides nothing.
    pub(super) fn mirror_listed(&mut self) {
        let Some(m) = &mut self.blobs else {
            return;
        };
        for (p, j) in &self.listed {
            m.queue
                .set_nearness(p.clone(), u8::from(*j != m.cfg.jurisdiction));
        }
        let gone: Vec<P> = m
            .announced
            .keys()
            .filter(|p| !self.listed.contains_key(*p))
            .cloned()
            .collect();
        for p in gone {
            m.queue.remove_provider(&p);
            m.announced.remove(&p);
        }
        m.poll_due = true;
    }

    /// A peer went away: it provides nothing until it announces again.
    pub(super) fn mirror_peer_gone(&mut self, peer: &P) {
        if let Some(m) = &mut self.blobs {
            m.queue.remove_provider(peer);
        }
    }

    /// The engine's plan changed: pin what is wanted, unpin what is not (recalled,
    /// superseded, over a staging quota; the store keeps the bytes until `accord gc`), and
    /// ask what the store holds of the wanted blobs before fetching any.
    pub(super) fn apply_mirror_plan(&mut self, cat: &Catalogue, plan: &MirrorPlan) {
        let Some(m) = &mut self.blobs else {
            return;
        };
        let releases = accord_promote::channel::releases(cat);
        let (mut pin, mut unpin) = (Vec::new(), Vec::new());
        for r in &releases {
            for a in &r.artifacts {
                let tag = pin_tag(&r.id, &a.name);
                if !plan.wanted.contains(&r.id) {
                    if m.pinned.remove(&tag) || !m.unpinned.contains(&tag) {
                        m.unpinned.insert(tag.clone());
                        unpin.push(tag);
                    }
                } else if !m.pinned.contains(&tag) {
                    m.unpinned.remove(&tag);
                    m.pinned.insert(tag.clone());
                    pin.push((tag, a.blake3));
                }
            }
        }
        let active: Vec<&ReleaseBlobs> = releases
            .iter()
            .filter(|r| plan.wanted.contains(&r.id))
            .collect();
        let w = wants(active);
        let hashes: Vec<BlobHash> = w.iter().map(|w| w.hash).collect();
        m.queue.set_wanted(w);
        m.held_back = plan.held_back.clone();
        m.held_dirty = true;
        if !pin.is_empty() || !unpin.is_empty() {
            self.outbox.push_back(Io::Pin { pin, unpin });
        }
        if hashes.is_empty() {
            let now = self.clock;
            self.announce_blobs(now);
        } else {
            // Announced once the store has answered.
            m.probing = true;
            self.outbox.push_back(Io::Probe(hashes));
        }
    }

    /// Tells the engine what the store holds, if that changed (or the catalogue gained
    /// releases that need their line).
    pub(super) fn report_held(&mut self, cat: &Catalogue) {
        let Some(m) = &mut self.blobs else {
            return;
        };
        if !std::mem::take(&mut m.held_dirty) {
            return;
        }
        let held = m.held_here(cat);
        let due = m.provenance_due(cat);
        self.outbox.extend(due);
        if let Some(p) = &mut self.promotion
            && p.mirror != held
        {
            p.mirror = held;
            p.dirty = true;
        }
    }

    /// Starts the fetches the queue asks for, if its answer may have changed.
    pub(super) fn start_fetches(&mut self, now: Instant) {
        let Some(m) = &mut self.blobs else {
            return;
        };
        if m.probing || !std::mem::take(&mut m.poll_due) {
            return;
        }
        for Action::Fetch { hash, from } in m.queue.poll(now) {
            info!(blob = %hex::encode(&hash[..8]), peer = %from, "fetching");
            let size = m.queue.size_of(&hash).unwrap_or(0);
            self.outbox.push_back(Io::Fetch { hash, from, size });
        }
    }

    /// The mirror side of `next_wakeup`: a provider's backoff or penalty ends.
    pub(super) fn mirror_wakeup(&self) -> Option<Instant> {
        self.blobs
            .as_ref()
            .and_then(|m| m.queue.next_retry(self.clock.mono))
    }

    /// The mirror side of `handle_timeout`: a backoff may have ended.
    pub(super) fn mirror_timeout(&mut self) {
        if let Some(m) = &mut self.blobs {
            m.poll_due = true;
        }
    }

    /// The catalogue changed: new releases need their line in the engine's input.
    pub(super) fn mirror_catalogue_changed(&mut self) {
        if let Some(m) = &mut self.blobs {
            m.held_dirty = true;
        }
    }
}
