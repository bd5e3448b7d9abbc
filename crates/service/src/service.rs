//! The node's catalogue side as a state machine: which peer to sync with and when, what a
//! peer's message does, who is over budget or banned, when to announce, when to compact,
//! what a new root changes. Events and time come in as method calls; what to do comes out
//! of `poll_io`, and `next_wakeup` says when to call `handle_timeout` (modelled on Radicle
//! heartwood's `Service` and quinn-proto's `Connection`).
//!
//! `P` is how the reactor names a peer: libp2p's `PeerId` in the node, a number in a
//! simulation. Nothing here knows sockets, tasks or clocks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Display;
use std::hash::Hash;
use std::time::{Duration, Instant};

use accord_catalogue::{CatalogueError, Delta, Replica};
use accord_store::AuditEvent;
use accord_store::audit::kind;
use tracing::{debug, info, warn};

use crate::discipline::{Discipline, Policy, Verdict};
use crate::io::{Io, Topic};
use crate::pace::Pacer;
use crate::rate::Budget;
use crate::store::Store;
use crate::time::Now;

mod command;
mod expiry;
mod freshness;
mod mirror;
mod promotion;
pub use command::{Command, Reply};
pub use mirror::{MirrorConfig, MirrorMetrics};
pub use promotion::{PromotionConfig, PromotionMetrics};

/// How the core behaves; the node reads it from its config.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often every connected peer is offered a sync, every ban checked, every
    /// refusal audited, and our blobs announced, whatever else happens.
    pub anti_entropy: Duration,
    /// At most one announcement per topic per this interval (`pace`).
    pub announce_every: Duration,
    /// Fold stored changes into the snapshot once this many are stored.
    pub compact_after: u64,
    /// With nothing new to say, this node repeats its blob announcement this often, in case
    /// one was lost. It announces at once whenever what it holds changes, and tells a peer
    /// that subscribes directly. Every announcement reaches every node, so the repeat is
    /// what makes each node's traffic grow with the number of nodes
    /// (`docs/simulations.md`, `release`): rare, not every anti-entropy round.
    pub blob_refresh: Duration,
    pub budget: Budget,
    pub policy: Policy,
    /// How long before the current root expires the node starts warning (log, audit,
    /// metrics).
    pub root_expiry_warning: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            anti_entropy: Duration::from_secs(5),
            announce_every: Duration::from_millis(500),
            compact_after: 256,
            blob_refresh: Duration::from_secs(60),
            budget: Budget::default(),
            policy: Policy::default(),
            root_expiry_warning: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Counters the node exports as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncMetrics {
    pub sync_messages_in: u64,
    pub sync_bytes_in: u64,
    pub sync_messages_out: u64,
    pub sync_bytes_out: u64,
    pub changes_applied: u64,
    pub last_change_unix: i64,
    pub rejected_messages: u64,
    pub unverifiable_messages: u64,
    pub rate_limited: u64,
    pub bans: u64,
    /// When the current root expires (Unix seconds), and how long before it the node warns.
    #[serde(default)]
    pub root_expires_unix: i64,
    #[serde(default)]
    pub root_expiry_warning_secs: u64,
}

/// Maps a node key of the root to the reactor's name for that peer.
pub type PeerOf<P> = Box<dyn Fn(&accord_trust::PublicKey) -> Option<P>>;

pub struct Service<S, P> {
    replica: Replica,
    store: S,
    config: Config,
    peer_of: PeerOf<P>,
    /// The root's node keys but ours, as peers, with their jurisdictions.
    listed: HashMap<P, String>,
    connected: BTreeSet<P>,
    /// Peers with a sync request of ours in flight (one at a time per peer).
    in_flight: BTreeSet<P>,
    banned: BTreeSet<P>,
    discipline: Discipline<P>,
    heads_pace: Pacer,
    blobs_pace: Pacer,
    next_anti_entropy: Instant,
    /// When the blob announcement is repeated if nothing changed before.
    next_blob_refresh: Instant,
    outbox: VecDeque<Io<P>>,
    metrics: SyncMetrics,
    /// The catalogue changed since the reactor last asked (`take_changed`).
    changed: bool,
    retired: bool,
    /// Whether a sync conversation with some peer has run to its end since start: until
    /// then this node may lack its own key's history (a data dir initialised again, or
    /// restored from a backup), and a change it wrote would reuse a sequence number its
    /// key already used, which every peer refuses as equivocation.
    caught_up: bool,
    /// `settle_owed` was asked for before `caught_up`.
    owed_pending: bool,
    /// Test pause points (crash tests); a no-op unless the reactor sets one.
    pause: fn(&str),
    /// The promotion engine and its duties (`with_promotion`); a core without it only
    /// syncs the catalogue.
    promotion: Option<promotion::Promotion>,
    /// The artifact mirror (`with_mirror`): what to pin, probe and fetch.
    blobs: Option<mirror::BlobMirror<P>>,
    /// The time of the latest input: work done lazily in `poll_io` happens "now".
    clock: Now,
    /// The typed catalogue, read again only when the document's heads change.
    read_cache: std::cell::RefCell<Option<CatalogueRead>>,
    /// Per jurisdiction, when this node's view of it was last brought up to date (Unix
    /// seconds): a sync conversation with one of its nodes ran to its end. Saved in the store,
    /// at most once a minute (and at once for a jurisdiction heard for the first time).
    heard: BTreeMap<String, i64>,
    heard_dirty: bool,
    heard_saved: Option<Instant>,
    /// When the root expiry warning was last logged, and the root it was audited for.
    expiry_warned: Option<Instant>,
    expiry_audited: Option<u64>,
}

/// The typed catalogue at some heads, and what was wrong with it.
pub type Read = std::rc::Rc<(accord_catalogue::Catalogue, Vec<accord_catalogue::Problem>)>;
type CatalogueRead = (Vec<automerge::ChangeHash>, Read);

impl<S, P> std::fmt::Debug for Service<S, P>
where
    P: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("connected", &self.connected)
            .field("in_flight", &self.in_flight)
            .field("banned", &self.banned)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<S: Store, P: Clone + Ord + Hash + Display + std::fmt::Debug> Service<S, P> {
    /// A core around an opened replica and its store, at `now`.
    pub fn new(replica: Replica, store: S, config: Config, peer_of: PeerOf<P>, now: Now) -> Self {
        let mut s = Service {
            replica,
            store,
            peer_of,
            listed: HashMap::new(),
            connected: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            banned: BTreeSet::new(),
            discipline: Discipline::new(config.budget, config.policy),
            heads_pace: Pacer::new(config.announce_every),
            blobs_pace: Pacer::new(config.announce_every),
            next_anti_entropy: now.mono + config.anti_entropy,
            next_blob_refresh: now.mono + config.blob_refresh,
            outbox: VecDeque::new(),
            metrics: SyncMetrics::default(),
            changed: false,
            retired: false,
            caught_up: false,
            owed_pending: false,
            pause: |_| {},
            promotion: None,
            blobs: None,
            heard: BTreeMap::new(),
            heard_dirty: false,
            heard_saved: None,
            expiry_warned: None,
            expiry_audited: None,
            clock: now,
            read_cache: Default::default(),
            config,
        };
        s.listed = s.listed_now();
        s.load_freshness();
        s.check_root_expiry(now);
        s
    }

    /// Where crash tests may stop the process (`"sync-apply"`, `"compaction"`).
    pub fn set_pause(&mut self, pause: fn(&str)) {
        self.pause = pause;
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn metrics(&self) -> &SyncMetrics {
        &self.metrics
    }

    /// The peers the root lists, with their jurisdictions.
    pub fn listed(&self) -> &HashMap<P, String> {
        &self.listed
    }

    pub fn is_connected(&self, peer: &P) -> bool {
        self.connected.contains(peer)
    }

    pub fn connected(&self) -> impl Iterator<Item = &P> {
        self.connected.iter()
    }

    /// Whether a root this node adopted removed its key (it must stop).
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// Whether the catalogue changed since the last call (the mirror's wants and the
    /// promotion engine follow it).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The typed catalogue, read from the document once per set of heads: everything that
    /// runs per event or per request reads it, and it only changes with the heads.
    pub fn catalogue(&self) -> Read {
        let heads = self.replica.heads();
        if let Some((h, cat)) = self.read_cache.borrow().as_ref()
            && *h == heads
        {
            return cat.clone();
        }
        let cat = std::rc::Rc::new(accord_catalogue::schema::read(self.replica.doc()));
        *self.read_cache.borrow_mut() = Some((heads, cat.clone()));
        cat
    }

    /// The next piece of I/O to do. When nothing else is queued, the promotion engine runs
    /// if anything changed (quinn's `poll_transmit` does its work the same way).
    pub fn poll_io(&mut self) -> Option<Io<P>> {
        if self.outbox.is_empty() {
            self.reconcile(self.clock);
            self.start_fetches(self.clock.mono);
        }
        self.outbox.pop_front()
    }

    /// When `handle_timeout` must run next: the next anti-entropy round, or sooner a
    /// deferred announcement or the end of a ban.
    pub fn next_wakeup(&self) -> Instant {
        [
            Some(self.next_anti_entropy),
            self.heads_pace.next_due(),
            self.blobs_pace.next_due(),
            self.discipline.next_ban_end(),
            self.promotion_wakeup(),
            self.mirror_wakeup(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_anti_entropy)
    }

    /// Does what is due at `now`; calling it early or twice does nothing extra.
    pub fn handle_timeout(&mut self, now: Now) {
        self.clock = now;
        if self.heads_pace.due(now.mono) {
            self.publish_heads();
        }
        if self.blobs_pace.due(now.mono) {
            self.publish_blobs();
        }
        self.end_bans(now);
        if now.mono >= self.next_anti_entropy {
            self.next_anti_entropy = now.mono + self.config.anti_entropy;
            self.save_freshness(false, now);
            self.check_root_expiry(now);
            self.audit_refusals();
            self.sync_with_all();
            if now.mono >= self.next_blob_refresh {
                self.announce_blobs(now);
            }
        }
        self.promotion_timeout(now);
        self.mirror_timeout();
    }

    /// A connection to `peer` is up (the reactor lets only listed keys connect).
    pub fn peer_connected(&mut self, peer: P, now: Now) {
        self.clock = now;
        if self.discipline.banned(&peer, now.mono).is_some() {
            self.outbox.push_back(Io::Disconnect(peer));
            return;
        }
        info!(%peer, "peer connected");
        self.connected.insert(peer.clone());
        self.replica.connect(&peer.to_string());
        self.sync_with(&peer);
        // What we hold, told to this peer directly: it may have just restarted, and neither
        // a gossipsub mesh nor a subscription event is guaranteed to reach it soon (a
        // restarted peer whose old connection is not yet known dead raises no new
        // subscription), while a repeat to everyone is rare (`Config::blob_refresh`).
        if let Some(data) = self.blob_announcement() {
            self.outbox.push_back(Io::SendBlobs { peer, data });
        }
    }

    /// The last connection to `peer` closed: keep its sync state for the next time.
    pub fn peer_disconnected(&mut self, peer: &P) {
        if !self.connected.remove(peer) {
            return;
        }
        info!(%peer, "peer disconnected");
        self.in_flight.remove(peer);
        self.mirror_peer_gone(peer);
        let delta = self.replica.disconnect(&peer.to_string());
        self.persist(&delta);
    }

    /// A peer's sync request, numbered `token` by the reactor: applied, then answered with
    /// our next message. A refused message is not answered; the peer is disconnected.
    pub fn sync_request(&mut self, peer: P, token: u64, bytes: &[u8], now: Now) {
        self.clock = now;
        if self.receive(&peer, bytes, now) {
            let reply = self.replica.generate_message(&peer.to_string());
            match &reply {
                Some(m) => {
                    self.metrics.sync_messages_out += 1;
                    self.metrics.sync_bytes_out += m.len() as u64;
                }
                None => self.concluded(&peer, now),
            }
            self.outbox.push_back(Io::Respond { token, reply });
        }
    }

    /// The answer to our request: applied, then the conversation goes on until neither
    /// side has anything to say.
    pub fn sync_response(&mut self, peer: P, reply: Option<Vec<u8>>, now: Now) {
        self.clock = now;
        self.in_flight.remove(&peer);
        let ok = match reply {
            Some(m) => self.receive(&peer, &m, now),
            None => true,
        };
        if ok && !self.sync_with(&peer) {
            self.concluded(&peer, now);
        }
    }

    /// A conversation ended with nothing left to say: this node holds what that peer
    /// holds, its own key's past included, and its view of that peer's jurisdiction is
    /// current. What was owed at start is written now.
    fn concluded(&mut self, peer: &P, now: Now) {
        if let Some(j) = self.listed.get(peer).cloned() {
            self.view_updated(&j, now.unix(), now);
        }
        if std::mem::replace(&mut self.caught_up, true) || !self.owed_pending {
            return;
        }
        self.owed_pending = false;
        self.settle_owed(now);
    }

    /// Whether this node has caught up with a peer since it started (`caught_up`).
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// Our request to `peer` failed (timeout, connection lost): it may be asked again.
    pub fn sync_failed(&mut self, peer: &P) {
        self.in_flight.remove(peer);
        self.replica.message_lost(&peer.to_string());
    }

    /// A gossip message on `topic`, signed by `author` (if the reactor knows the signer to
    /// be a listed node) and relayed by `via`. Charged to the author's gossip budget, or
    /// the relay's; returns whether it was within that budget (a relay that validates
    /// before forwarding passes on only those). Heads we do not hold yet start a sync with
    /// whoever relayed them; a blob announcement counts only from a listed signer (a relay
    /// cannot speak for another).
    pub fn gossip(
        &mut self,
        author: Option<P>,
        via: P,
        topic: Topic,
        data: &[u8],
        now: Now,
    ) -> bool {
        self.clock = now;
        let payer = author.clone().unwrap_or_else(|| via.clone());
        if let Err(verdict) = self.discipline.gossip_message(&payer, data.len(), now.mono) {
            self.metrics.rate_limited += 1;
            self.punish(&payer, verdict);
            return false;
        }
        match topic {
            Topic::Blobs => match author.filter(|a| self.listed.contains_key(a)) {
                Some(a) => self.heard_blobs(a, data),
                None => debug!("blob announcement from an unlisted source; ignored"),
            },
            Topic::Heads => {
                if let Some(heads) = parse_heads(data)
                    && self.replica.heard_heads(&via.to_string(), &heads)
                {
                    self.sync_with(&via);
                }
            }
        }
        true
    }

    /// Makes a local edit (signed by this node's key, checked like a peer's), commits it
    /// and tells everyone.
    pub fn edit<F>(&mut self, now: Now, message: &str, f: F) -> Result<Delta, CatalogueError>
    where
        F: FnOnce(
            &mut automerge::transaction::Transaction<'_>,
        ) -> Result<(), accord_catalogue::CatalogueError>,
    {
        self.clock = now;
        let delta = self.replica.edit(now.unix(), message, f)?;
        self.committed_locally(&delta, now);
        Ok(delta)
    }

    /// Installs a successor root (TUF rules against the current one), records and
    /// acknowledges it in the catalogue so it reaches every node.
    pub fn adopt_root(&mut self, bytes: &[u8], now: Now) -> Result<u64, CatalogueError> {
        self.clock = now;
        let delta = self.replica.adopt_root(bytes, now.unix())?;
        self.committed_locally(&delta, now);
        let version = self.replica.root().version();
        info!(root = version, "installed a new root");
        Ok(version)
    }

    /// What the catalogue owes for this node's standing (its roots and its acknowledgement,
    /// after `accord init` under a newer root or an offline `accord root apply`).
    /// Deferred until the node has caught up with a peer (`caught_up`): written before,
    /// they could reuse the key's sequence numbers.
    pub fn settle_owed(&mut self, now: Now) {
        self.clock = now;
        if !self.caught_up {
            self.owed_pending = true;
            return;
        }
        match self.replica.owed(now.unix()) {
            Ok(delta) => self.committed_locally(&delta, now),
            Err(e) => warn!(error = %e, "could not record this node's root in the catalogue"),
        }
    }

    /// A change made here is committed: persist it, count it, and tell everyone.
    pub fn committed_locally(&mut self, delta: &Delta, now: Now) {
        self.persist(delta);
        if delta.changes.is_empty() {
            return;
        }
        self.metrics.changes_applied += delta.changes.len() as u64;
        self.metrics.last_change_unix = now.unix();
        self.catalogue_changed();
        self.announce(now);
        self.sync_with_all();
    }

    /// Offers a sync to every connected peer (at start, and at every anti-entropy round).
    pub fn sync_with_all(&mut self) {
        let peers: Vec<P> = self.connected.iter().cloned().collect();
        for p in peers {
            self.sync_with(&p);
        }
    }

    /// Our blob announcement (paced; published when it may go out).
    pub fn announce_blobs(&mut self, now: Now) {
        self.next_blob_refresh = now.mono + self.config.blob_refresh;
        if self.blobs_pace.request(now.mono) {
            self.publish_blobs();
        }
    }

    /// Sends our next sync message to `peer`, if we have one and none is in flight; returns
    /// whether one went out.
    fn sync_with(&mut self, peer: &P) -> bool {
        if self.in_flight.contains(peer) || !self.connected.contains(peer) {
            return false;
        }
        if let Some(m) = self.replica.generate_message(&peer.to_string()) {
            self.metrics.sync_messages_out += 1;
            self.metrics.sync_bytes_out += m.len() as u64;
            self.in_flight.insert(peer.clone());
            self.outbox.push_back(Io::SendSync {
                peer: peer.clone(),
                bytes: m,
            });
            return true;
        }
        false
    }

    /// Changes arrived from `from`: offer them to every other connected peer now (each
    /// conversation is one request in flight; Automerge sends only what that peer lacks).
    /// Only the node that made a change announces it (`committed_locally`): if every node
    /// announced what it applied, one edit would be N announcements each flooded to N
    /// nodes, which the simulations measured growing as N squared.
    fn pass_on(&mut self, from: &P) {
        let others: Vec<P> = self
            .connected
            .iter()
            .filter(|p| *p != from)
            .cloned()
            .collect();
        for p in others {
            self.sync_with(&p);
        }
    }

    /// Applies a peer's message; a bad one disconnects that peer (others are unaffected),
    /// and a peer that keeps sending them is banned.
    fn receive(&mut self, peer: &P, bytes: &[u8], now: Now) -> bool {
        self.metrics.sync_messages_in += 1;
        self.metrics.sync_bytes_in += bytes.len() as u64;
        if let Err(verdict) = self.discipline.sync_message(peer, bytes.len(), now.mono) {
            self.metrics.rate_limited += 1;
            warn!(%peer, "peer is over its sync budget; disconnecting it");
            self.punish(peer, verdict);
            return false;
        }
        match self
            .replica
            .receive_message(&peer.to_string(), bytes, now.unix())
        {
            Ok(delta) => {
                let changed = !delta.changes.is_empty();
                if changed {
                    (self.pause)("sync-apply");
                    self.metrics.changes_applied += delta.changes.len() as u64;
                    self.metrics.last_change_unix = now.unix();
                }
                self.persist(&delta);
                if changed {
                    info!(%peer, changes = delta.changes.len(), "catalogue updated from peer");
                    self.catalogue_changed();
                    self.pass_on(peer);
                }
                true
            }
            Err(e) if !e.is_violation() => {
                // An honest peer can send this (it is behind on roots, or a Bloom filter hid
                // a dependency): no blame. The replica asked for a reset; our next message
                // requests what is missing.
                self.metrics.unverifiable_messages += 1;
                info!(%peer, reason = %e, "a sync message cannot be verified yet; asking again");
                true
            }
            Err(e) => {
                self.metrics.rejected_messages += 1;
                warn!(%peer, error = %e, "refused a sync message; disconnecting the peer");
                let verdict = self.discipline.refused(peer, &e.to_string(), now.mono);
                self.punish(peer, verdict);
                false
            }
        }
    }

    /// Disconnects a peer that broke a rule; bans it when the strikes say so.
    fn punish(&mut self, peer: &P, verdict: Verdict) {
        if let Verdict::Banned { ban, .. } = verdict
            && self.banned.insert(peer.clone())
        {
            self.metrics.bans += 1;
            let who = self.name(peer);
            warn!(peer = %who, seconds = ban.as_secs(), "peer banned");
            self.outbox.push_back(Io::Ban {
                peer: peer.clone(),
                secs: ban.as_secs(),
            });
            self.outbox.push_back(Io::Audit(vec![AuditEvent::new(
                kind::REJECTED,
                format!("peer {who}"),
                format!(
                    "banned for {} s after repeated refused messages",
                    ban.as_secs()
                ),
            )]));
        }
        self.outbox.push_back(Io::Disconnect(peer.clone()));
    }

    fn end_bans(&mut self, now: Now) {
        for peer in self.discipline.expired_bans(now.mono) {
            if self.banned.remove(&peer) && self.listed.contains_key(&peer) {
                info!(peer = %self.name(&peer), "ban over");
                self.outbox.push_back(Io::Unban(peer));
            }
        }
    }

    /// One audit row per peer for the messages refused since the last round (not one
    /// signed, fsynced row per message).
    fn audit_refusals(&mut self) {
        let events: Vec<AuditEvent> = self
            .discipline
            .take_tallies()
            .into_iter()
            .map(|(peer, t)| {
                AuditEvent::new(
                    kind::REJECTED,
                    format!("peer {}", self.name(&peer)),
                    format!(
                        "{} sync message(s) refused, {} over budget since the last entry; first: {}",
                        t.refused,
                        t.over_budget,
                        t.first_reason.unwrap_or_default()
                    ),
                )
            })
            .collect();
        if !events.is_empty() {
            self.outbox.push_back(Io::Audit(events));
        }
    }

    /// The catalogue changed: the reactor hears of it (`take_changed`), and the promotion
    /// engine and the mirror plan follow.
    fn catalogue_changed(&mut self) {
        self.changed = true;
        self.mirror_catalogue_changed();
        self.promotion_follows_catalogue();
    }

    fn name(&self, peer: &P) -> String {
        self.listed
            .get(peer)
            .cloned()
            .unwrap_or_else(|| peer.to_string())
    }

    /// Commits a delta; folds the stored changes into the snapshot now and then; follows
    /// a root the chain gained.
    fn persist(&mut self, delta: &Delta) {
        if let Err(e) = self.store.apply(delta) {
            warn!(error = %e, "could not persist catalogue changes");
        }
        if !delta.changes.is_empty()
            && self
                .store
                .pending_changes()
                .is_ok_and(|n| n >= self.config.compact_after)
        {
            (self.pause)("compaction");
            if let Err(e) = self.store.compact(&self.replica.save()) {
                warn!(error = %e, "could not compact the stored catalogue");
            }
        }
        if !delta.roots.is_empty() {
            self.roots_advanced(delta);
        }
    }

    /// The chain gained roots (committed with the delta): who may connect follows, and a
    /// root that removed this node's key retires it.
    fn roots_advanced(&mut self, delta: &Delta) {
        let versions: Vec<u64> = delta.roots.iter().map(|(v, _)| *v).collect();
        let rows = versions
            .iter()
            .map(|v| {
                info!(root = v, "adopted a new root");
                AuditEvent::new(
                    kind::ROOT,
                    format!("root v{v}"),
                    "adopted: verified against the previous root (TUF rules)",
                )
            })
            .collect();
        self.outbox.push_back(Io::RootsAdopted(versions));
        self.outbox.push_back(Io::Audit(rows));
        let listed = self.listed_now();
        self.discipline.retain(|p| listed.contains_key(p));
        for p in self.connected.clone() {
            if !listed.contains_key(&p) {
                self.outbox.push_back(Io::Disconnect(p));
            }
        }
        self.listed = listed;
        self.mirror_listed();
        self.outbox.push_back(Io::SetListed(self.listed.clone()));
        self.catalogue_changed();
        if self.replica.me().is_none() {
            let root = self.replica.root().version();
            tracing::error!(
                root,
                "root v{root} no longer lists this node's key: this node is retired and stops; initialise a new data directory with the jurisdiction's new node key"
            );
            self.retired = true;
            self.outbox.push_back(Io::Retired { root });
        }
    }

    /// The current root's node keys but ours, as peers.
    fn listed_now(&self) -> HashMap<P, String> {
        let root = self.replica.root();
        let mut out = HashMap::new();
        for (principal, key) in root.node_keys() {
            if self.replica.is_own_key(key) {
                continue;
            }
            if let Some(p) = (self.peer_of)(key) {
                out.insert(p, principal.to_string());
            }
        }
        out
    }

    /// Paced: a burst of changes is one announcement now and one with the heads as they
    /// are when the interval ends.
    fn announce(&mut self, now: Now) {
        if self.heads_pace.request(now.mono) {
            self.publish_heads();
        }
    }

    fn publish_heads(&mut self) {
        let heads: Vec<u8> = self.replica.heads().iter().flat_map(|h| h.0).collect();
        self.outbox.push_back(Io::Publish {
            topic: Topic::Heads,
            data: heads,
        });
    }
}

/// Announced heads: whole 32-byte hashes, at most 64 of them (more is not an honest
/// announcement). Every node announces after each change it applies, so asking whoever
/// announced heads we already hold would turn one edit into a sync with every announcer,
/// and a burst of edits into a storm that runs honest peers over their budgets: the
/// replica asks only for heads it lacks.
fn parse_heads(announced: &[u8]) -> Option<Vec<automerge::ChangeHash>> {
    if !announced.len().is_multiple_of(32) || announced.len() > 32 * 64 {
        return None;
    }
    announced
        .chunks_exact(32)
        .map(|h| <[u8; 32]>::try_from(h).ok().map(automerge::ChangeHash))
        .collect()
}
