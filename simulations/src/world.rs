//! The simulated network: every node is the real `accord_service::Service` with its
//! in-memory store; the world is an event queue in simulated time. A node's `Io` becomes
//! future events at its peers (after the link's latency and transmission time), its
//! `next_wakeup` becomes a wake event, and nothing here decides anything a node decides:
//! this file only delivers, as the daemon's reactor does with libp2p.
//!
//! Deterministic: one seeded generator, ordered collections wherever order reaches the
//! nodes, and ties in time broken by the order events were scheduled.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_catalogue::{Replica, Seed, Stored, edit, genesis};
use accord_protocol::KeyId;
use accord_service::{Config, Io, MemoryStore, MirrorConfig, Now, PromotionConfig, Service, Topic};
use accord_trust::testkit::{Cooperative, Shape};
use accord_trust::{RootChain, TrustedRoot};
use anyhow::{Context, Result};
use automerge::ChangeHash;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::links::{LinkModel, Site};
use crate::release::{Followed, SimStore};
use crate::topology::Topology;

pub type NodeId = u32;
pub type Node = Service<MemoryStore, NodeId>;

/// The catalogue every node starts from (the repository's seed).
const SEED: &str = include_str!("../../config/catalogue.toml");
/// Simulated Unix time at the start: 2027-01-15T08:00:00Z (milliseconds).
const T0_MS: i64 = 1_800_000_000_000;

/// Something a scenario makes happen at a moment.
#[derive(Debug, Clone)]
pub enum Action {
    /// A capability edit on this node (as its API would make it).
    Edit(NodeId),
    /// The node stops; with `keep_state` false it comes back from its genesis, as a node
    /// whose disk was lost.
    Leave { node: NodeId, keep_state: bool },
    /// The node is back and reconnects to its neighbours that are up.
    Rejoin(NodeId),
    /// The sites listed are cut off from the others: connections across drop, messages in
    /// flight across are lost.
    Cut(Vec<Site>),
    /// The cut is over: connections come back.
    Heal,
    /// A hostile node does its worst once (`crate::hostile`).
    Attack(NodeId),
    /// The node proposes the followed release (`crate::release`).
    Propose(NodeId),
    /// A signer signs the followed release at this node (its own site).
    Sign { node: NodeId, signer: &'static str },
}

#[derive(Debug)]
pub(crate) enum Event {
    Wake(NodeId),
    Request {
        from: NodeId,
        to: NodeId,
        token: u64,
        bytes: Vec<u8>,
    },
    Reply {
        from: NodeId,
        to: NodeId,
        reply: Option<Vec<u8>>,
    },
    Gossip {
        via: NodeId,
        to: NodeId,
        author: NodeId,
        id: u64,
        topic: Topic,
        data: Arc<Vec<u8>>,
    },
    /// A blob announcement sent straight to a peer that just connected (`Io::SendBlobs`),
    /// or (`answer`) that peer's own announcement coming back.
    Direct {
        from: NodeId,
        to: NodeId,
        data: Vec<u8>,
        answer: bool,
    },
    Do(Action),
    /// A blob fetch by `node` from `from` has delivered its last byte, or was turned away
    /// (`refused`: the provider was serving as many as it serves at once).
    Fetched {
        node: NodeId,
        from: NodeId,
        hash: accord_mirror::BlobHash,
        size: u64,
        refused: bool,
    },
}

struct Entry {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Earliest first (the heap is a max-heap).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What one node sent and received.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    /// Blob announcements received (part of `bytes_in`).
    pub announce_bytes_in: u64,
    /// Artifact bytes served to and fetched from other nodes (not in the above).
    pub blob_bytes_out: u64,
    pub blob_bytes_in: u64,
}

/// An edit being followed: when it was made and when each node first held it.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub hash: ChangeHash,
    pub origin: NodeId,
    pub at: Duration,
    pub arrived: Vec<Option<Duration>>,
}

pub struct World {
    pub topology: Topology,
    pub model: LinkModel,
    pub rng: ChaCha8Rng,
    pub coop: Cooperative,
    nodes: Vec<Option<Node>>,
    /// Each node's blob mirror (only when the nodes promote: `release`).
    pub(crate) stores: Vec<SimStore>,
    /// The release a `release` run follows.
    pub release: Option<Followed>,
    neighbours: Vec<Vec<NodeId>>,
    linked: BTreeSet<(NodeId, NodeId)>,
    cut: Option<Vec<Site>>,
    start: Instant,
    pub t: Duration,
    queue: BinaryHeap<Entry>,
    seq: u64,
    busy: HashMap<(NodeId, NodeId), Duration>,
    /// When each node's network interface is free to upload the next blob (blob transfers
    /// from one provider take turns at `LinkModel::intra_bps`).
    uplink_free: Vec<Duration>,
    /// Blob transfers each node is serving now (it turns fetchers away beyond
    /// `Limits::serve_total`, as the node's provider does).
    pub(crate) uploads: Vec<usize>,
    tokens: HashMap<u64, (NodeId, NodeId)>,
    next_token: u64,
    next_gossip: u64,
    seen: HashSet<(NodeId, u64)>,
    wake_at: Vec<Option<Duration>>,
    pub traffic: Vec<Traffic>,
    pub tracked: Vec<Tracked>,
    pub capabilities: Vec<String>,
    pub edits_made: u64,
    pub edits_refused: u64,
    pub audit_rows: u64,
    pub events: u64,
    /// Nodes whose own code is replaced by an attacker's (`crate::hostile`).
    pub hostile: BTreeSet<NodeId>,
    /// Changes the attackers forged: no honest node may ever hold one.
    pub forged: Vec<ChangeHash>,
    /// Pairs of allowed changes an attacker signed on one history and sent to different
    /// nodes: honest nodes must end up agreeing on each (ADR 0008).
    pub equivocations: Vec<(ChangeHash, ChangeHash)>,
    /// Fetches from a provider that lied about holding a blob (`crate::hostile`).
    pub corrupt_fetches: u64,
    /// Attackers stop at this time (`crate::hostile`).
    pub attack_until: Duration,
    /// When the last scheduled edit is made (convergence is judged after it).
    last_edit: Duration,
    /// Each node's return, and when (`churn` measures how long each takes to catch up).
    pub rejoins: Vec<(NodeId, Duration)>,
    /// Nodes that left keeping their state (their store is their disk).
    asleep: HashMap<NodeId, Node>,
    boot: Boot,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("nodes", &self.nodes.len())
            .field("t", &self.t)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// What a node needs to start from nothing (and to start again after losing its disk).
struct Boot {
    root: TrustedRoot,
    genesis: ChangeHash,
    snapshot: Vec<u8>,
    ids: Arc<HashMap<KeyId, NodeId>>,
    config: Config,
    /// Nodes run the promotion engine and a blob mirror.
    promoting: bool,
}

impl World {
    /// Every node of `topology` started from the seed catalogue, the connections up.
    pub fn new(topology: Topology, model: LinkModel, seed: u64, promoting: bool) -> Result<World> {
        let mirrors = (topology.nodes.len() - 4) / 4;
        let mut shape = Shape::default();
        let node_keys = u32::try_from(1 + mirrors).context("too many mirrors")?;
        shape
            .keys_per_role
            .insert(accord_protocol::Role::Node, (node_keys, 1));
        let coop = Cooperative::new(shape);
        let steering = coop.steering();
        let refs: Vec<&str> = steering.iter().map(String::as_str).collect();
        let env = coop.signed_root(1, &refs)?;
        let root = TrustedRoot::anchor(&env.to_json())?;
        let seed_doc = Seed::parse(SEED, "config/catalogue.toml")?;
        let capabilities = seed_doc.capabilities.iter().map(|c| c.id.clone()).collect();
        let (doc, genesis) =
            genesis::build(&seed_doc, &hex_digest(&root.envelope().payload_digest()))?;
        let mut ids = HashMap::new();
        for (i, spec) in topology.nodes.iter().enumerate() {
            ids.insert(coop.signer(&spec.label)?.id().clone(), i as NodeId);
        }
        let boot = Boot {
            root,
            genesis,
            snapshot: doc.save(),
            ids: Arc::new(ids),
            config: Config::default(),
            promoting,
        };
        let n = topology.nodes.len();
        let neighbours = topology.neighbours();
        let mut w = World {
            model,
            rng: ChaCha8Rng::seed_from_u64(seed),
            coop,
            nodes: Vec::with_capacity(n),
            stores: if promoting {
                vec![SimStore::default(); n]
            } else {
                Vec::new()
            },
            release: None,
            neighbours,
            linked: BTreeSet::new(),
            cut: None,
            start: Instant::now(),
            t: Duration::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            busy: HashMap::new(),
            uplink_free: vec![Duration::ZERO; n],
            uploads: vec![0; n],
            tokens: HashMap::new(),
            next_token: 0,
            next_gossip: 0,
            seen: HashSet::new(),
            wake_at: vec![None; n],
            traffic: vec![Traffic::default(); n],
            tracked: Vec::new(),
            capabilities,
            edits_made: 0,
            edits_refused: 0,
            audit_rows: 0,
            events: 0,
            hostile: BTreeSet::new(),
            forged: Vec::new(),
            equivocations: Vec::new(),
            attack_until: Duration::ZERO,
            corrupt_fetches: 0,
            last_edit: Duration::ZERO,
            rejoins: Vec::new(),
            asleep: HashMap::new(),
            boot,
            topology,
        };
        for i in 0..n {
            let node = w.boot_node(i as NodeId)?;
            w.nodes.push(Some(node));
        }
        for (a, b) in w.topology.edges.clone() {
            w.link(a, b);
        }
        Ok(w)
    }

    fn boot_node(&self, id: NodeId) -> Result<Node> {
        let label = &self.topology.nodes[id as usize].label;
        let replica = Replica::open(
            self.boot.genesis,
            Stored {
                snapshot: Some(self.boot.snapshot.clone()),
                ..Stored::default()
            },
            self.coop.signer(label)?,
            RootChain::from_trusted(self.boot.root.clone()),
        )?;
        let ids = self.boot.ids.clone();
        let node = Service::new(
            replica,
            MemoryStore::default(),
            self.boot.config.clone(),
            Box::new(move |k: &accord_trust::PublicKey| ids.get(k.id()).copied()),
            self.now(),
        );
        if !self.boot.promoting {
            return Ok(node);
        }
        let site = self.site(id);
        Ok(node
            .with_mirror(MirrorConfig {
                limits: accord_mirror::Limits::default(),
                salt: u64::from(id),
                jurisdiction: site.code().to_owned(),
            })
            .with_promotion(
                PromotionConfig {
                    jurisdiction: accord_protocol::PrincipalId::new(site.code())?,
                    local_rules: Vec::new(),
                    signer: self.coop.signer(label)?,
                    hook: true,
                    // The node's default staging quota (64 GiB).
                    staging_quota: 64 << 30,
                    checkpoint_every: Duration::from_secs(60),
                    replan_every: Duration::from_secs(60),
                    max_staleness: None,
                },
                accord_promote::State::default(),
                self.now(),
            ))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize).and_then(Option::as_ref)
    }

    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id as usize).and_then(Option::as_mut)
    }

    pub fn site(&self, id: NodeId) -> Site {
        self.topology.nodes[id as usize].site
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// The reactor's "now" at simulated time `t`.
    pub fn now(&self) -> Now {
        Now::new(
            self.start + self.t,
            T0_MS.saturating_add(i64::try_from(self.t.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    pub fn schedule(&mut self, at: Duration, action: Action) {
        if matches!(action, Action::Edit(_)) {
            self.last_edit = self.last_edit.max(at);
        }
        self.push(at, Event::Do(action));
    }

    pub(crate) fn push(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Entry {
            at,
            seq: self.seq,
            event,
        });
    }

    /// Runs events until simulated time `until` (or until nothing is left).
    pub fn run_until(&mut self, until: Duration) {
        while let Some(e) = self.queue.peek() {
            if e.at > until {
                break;
            }
            let Some(e) = self.queue.pop() else { break };
            self.t = e.at;
            self.events += 1;
            self.handle(e.event);
        }
        self.t = until;
    }

    /// Runs until every edit made so far is held by every node that is up, or `limit`.
    /// Returns whether they converged.
    pub fn run_until_converged(&mut self, limit: Duration) -> bool {
        let last_edit = self.last_edit.min(limit);
        if self.t < last_edit {
            self.run_until(last_edit);
        }
        self.run_until_done(limit, World::converged)
    }

    /// Runs in steps of 100 ms of simulated time until `done` holds or `limit` is reached;
    /// returns whether `done` held.
    pub fn run_until_done(&mut self, limit: Duration, done: impl Fn(&World) -> bool) -> bool {
        let step = Duration::from_millis(100);
        loop {
            if done(self) {
                return true;
            }
            if self.t >= limit {
                return false;
            }
            let next = (self.t + step).min(limit);
            self.run_until(next);
        }
    }

    /// Every tracked edit is at every honest node that is up.
    pub fn converged(&self) -> bool {
        self.tracked.iter().all(|e| {
            e.arrived
                .iter()
                .enumerate()
                .all(|(i, a)| a.is_some() || !self.counts(i as NodeId))
        })
    }

    /// Whether a node counts for convergence: up and honest.
    pub fn counts(&self, id: NodeId) -> bool {
        self.is_up(id) && !self.hostile.contains(&id)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Wake(n) => {
                if self.wake_at[n as usize] != Some(self.t) {
                    return; // superseded by an earlier wakeup
                }
                self.wake_at[n as usize] = None;
                let now = self.now();
                if let Some(node) = self.node_mut(n) {
                    node.handle_timeout(now);
                }
                self.drain(n);
            }
            Event::Request {
                from,
                to,
                token,
                bytes,
            } => {
                if !self.is_linked(from, to) {
                    self.tokens.remove(&token);
                    return;
                }
                self.traffic[to as usize].bytes_in += bytes.len() as u64;
                let now = self.now();
                let before = self.applied(to);
                if let Some(node) = self.node_mut(to) {
                    node.sync_request(from, token, &bytes, now);
                }
                self.after_apply(to, before);
                self.drain(to);
            }
            Event::Reply { from, to, reply } => {
                if !self.is_linked(from, to) {
                    return;
                }
                self.traffic[to as usize].bytes_in += reply.as_ref().map_or(0, |r| r.len() as u64);
                let now = self.now();
                let before = self.applied(to);
                if let Some(node) = self.node_mut(to) {
                    node.sync_response(from, reply, now);
                }
                self.after_apply(to, before);
                self.drain(to);
            }
            Event::Gossip {
                via,
                to,
                author,
                id,
                topic,
                data,
            } => {
                if !self.is_linked(via, to) {
                    return;
                }
                self.traffic[to as usize].bytes_in += data.len() as u64;
                if topic == Topic::Blobs {
                    self.traffic[to as usize].announce_bytes_in += data.len() as u64;
                }
                if !self.seen.insert((to, id)) {
                    return;
                }
                let now = self.now();
                let accepted = self
                    .node_mut(to)
                    .is_some_and(|node| node.gossip(Some(author), via, topic, &data, now));
                self.drain(to);
                if accepted {
                    self.flood(to, Some(via), author, id, topic, data);
                }
            }
            Event::Direct {
                from,
                to,
                data,
                answer,
            } => {
                if !self.is_linked(from, to) {
                    return;
                }
                self.traffic[to as usize].bytes_in += data.len() as u64;
                self.traffic[to as usize].announce_bytes_in += data.len() as u64;
                let now = self.now();
                let ours = self.node_mut(to).and_then(|node| {
                    if answer {
                        let _ = node.gossip(Some(from), from, Topic::Blobs, &data, now);
                        None
                    } else {
                        node.blobs_exchanged(from, &data, now)
                    }
                });
                if let Some(ours) = ours {
                    let len = ours.len();
                    self.send(
                        to,
                        from,
                        len,
                        Event::Direct {
                            from: to,
                            to: from,
                            data: ours,
                            answer: true,
                        },
                    );
                }
                self.drain(to);
            }
            Event::Do(action) => self.act(action),
            Event::Fetched {
                node,
                from,
                hash,
                size,
                refused,
            } => self.fetched(node, from, hash, size, refused),
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Edit(n) => self.edit(n),
            Action::Leave { node, keep_state } => self.leave(node, keep_state),
            Action::Rejoin(n) => self.rejoin(n),
            Action::Cut(sites) => {
                self.cut = Some(sites);
                for (a, b) in self.linked.clone() {
                    if self.is_cut(a, b) {
                        self.unlink(a, b);
                    }
                }
            }
            Action::Heal => {
                self.cut = None;
                for (a, b) in self.topology.edges.clone() {
                    self.link(a, b);
                }
            }
            Action::Attack(n) => crate::hostile::attack(self, n),
            Action::Propose(n) => self.propose(n),
            Action::Sign { node, signer } => self.sign(node, signer),
        }
    }

    /// One edit: a random capability's effort, as an operator would set it.
    fn edit(&mut self, n: NodeId) {
        let cap = self.capabilities[self.rng.gen_range(0..self.capabilities.len())].clone();
        let weeks = self.rng.gen_range(1..52);
        let now = self.now();
        let Some(node) = self.node_mut(n) else {
            return;
        };
        let result = node.edit(now, "simulated edit", |tx| {
            edit::set(tx, &cap, "effort", &format!("{weeks} weeks"))
        });
        match result {
            Ok(delta) => {
                self.edits_made += 1;
                let count = self.nodes.len();
                for c in &delta.changes {
                    let mut arrived = vec![None; count];
                    arrived[n as usize] = Some(self.t);
                    self.tracked.push(Tracked {
                        hash: ChangeHash(c.hash),
                        origin: n,
                        at: self.t,
                        arrived,
                    });
                }
            }
            Err(_) => self.edits_refused += 1,
        }
        self.drain(n);
    }

    fn leave(&mut self, n: NodeId, keep_state: bool) {
        for m in self.neighbours[n as usize].clone() {
            self.unlink(n, m);
        }
        let Some(node) = self.nodes.get_mut(n as usize).and_then(Option::take) else {
            return;
        };
        self.wake_at[n as usize] = None;
        if keep_state {
            // Its store is its disk: it comes back with it.
            self.asleep.insert(n, node);
        } else {
            for e in &mut self.tracked {
                e.arrived[n as usize] = None;
            }
        }
    }

    fn rejoin(&mut self, n: NodeId) {
        if self.is_up(n) {
            return;
        }
        let node = match self.asleep.remove(&n) {
            Some(node) => node,
            None => match self.boot_node(n) {
                Ok(node) => node,
                Err(_) => return,
            },
        };
        self.nodes[n as usize] = Some(node);
        self.rejoins.push((n, self.t));
        // What it holds now counts as arrived now.
        self.record_arrivals(n);
        for m in self.neighbours[n as usize].clone() {
            self.link(n, m);
        }
        self.drain(n);
    }

    fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.cut
            .as_ref()
            .is_some_and(|side| side.contains(&self.site(a)) != side.contains(&self.site(b)))
    }

    pub fn is_linked(&self, a: NodeId, b: NodeId) -> bool {
        self.linked.contains(&(a.min(b), a.max(b)))
    }

    /// A connection comes up (both up, not across a cut): both nodes are told.
    pub fn link(&mut self, a: NodeId, b: NodeId) {
        if a == b || !self.is_up(a) || !self.is_up(b) || self.is_cut(a, b) {
            return;
        }
        if !self.linked.insert((a.min(b), a.max(b))) {
            return;
        }
        let now = self.now();
        if let Some(node) = self.node_mut(a) {
            node.peer_connected(b, now);
        }
        if let Some(node) = self.node_mut(b) {
            node.peer_connected(a, now);
        }
        self.drain(a);
        self.drain(b);
    }

    /// A connection closes: both nodes are told; what is in flight on it is lost.
    pub fn unlink(&mut self, a: NodeId, b: NodeId) {
        if !self.linked.remove(&(a.min(b), a.max(b))) {
            return;
        }
        if let Some(node) = self.node_mut(a) {
            node.peer_disconnected(&b);
        }
        if let Some(node) = self.node_mut(b) {
            node.peer_disconnected(&a);
        }
    }

    /// Occupies the directed link `from` to `to` with `bytes` that start after `delay` (a
    /// request crossing first), and delivers `event` when the last byte has arrived; counted
    /// apart from the catalogue traffic (blob transfers).
    /// The provider's interface sends one blob at a time at its rate, so a node that serves
    /// many fetchers makes them wait in turn (the path's own rate may be lower still).
    pub(crate) fn send_after(
        &mut self,
        delay: Duration,
        from: NodeId,
        to: NodeId,
        bytes: usize,
        event: Event,
    ) {
        let a = self.site(from);
        let not_before = self.uplink_free[from as usize].max(self.t + delay);
        let (start, arrival) = self.occupy(from, to, bytes, not_before);
        self.uplink_free[from as usize] = start + self.model.transmit(a, a, bytes);
        self.push(arrival, event);
    }

    /// Puts `bytes` on the directed link `from` to `to`, starting when the link is free
    /// and not before `not_before`; returns when they start and when the last byte arrives.
    fn occupy(
        &mut self,
        from: NodeId,
        to: NodeId,
        bytes: usize,
        not_before: Duration,
    ) -> (Duration, Duration) {
        let (a, b) = (self.site(from), self.site(to));
        let free = self.busy.get(&(from, to)).copied().unwrap_or_default();
        let start = free.max(not_before);
        let done = start + self.model.transmit(a, b, bytes);
        self.busy.insert((from, to), done);
        (start, done + self.model.one_way(a, b))
    }

    /// Sends on the directed link `from` to `to`: it arrives after the link is free, the
    /// bytes are through, and the propagation delay has passed.
    fn send(&mut self, from: NodeId, to: NodeId, bytes: usize, event: Event) {
        let (_, arrival) = self.occupy(from, to, bytes, self.t);
        let t = &mut self.traffic[from as usize];
        t.bytes_out += bytes as u64;
        t.messages_out += 1;
        self.push(arrival, event);
    }

    /// Gossip as gossipsub floods it: to every connected neighbour but the one it came
    /// from; each node passes a message on once.
    fn flood(
        &mut self,
        from: NodeId,
        except: Option<NodeId>,
        author: NodeId,
        id: u64,
        topic: Topic,
        data: Arc<Vec<u8>>,
    ) {
        for m in self.neighbours[from as usize].clone() {
            if Some(m) == except || m == author || !self.is_linked(from, m) {
                continue;
            }
            self.send(
                from,
                m,
                data.len(),
                Event::Gossip {
                    via: from,
                    to: m,
                    author,
                    id,
                    topic,
                    data: data.clone(),
                },
            );
        }
    }

    /// Does the I/O node `n` asks for, then asks when to wake it.
    pub fn drain(&mut self, n: NodeId) {
        while let Some(io) = self.node_mut(n).and_then(Service::poll_io) {
            match io {
                Io::SendSync { peer, bytes } => {
                    if !self.request(n, peer, bytes)
                        && let Some(node) = self.node_mut(n)
                    {
                        node.sync_failed(&peer);
                    }
                }
                Io::Respond { token, reply } => {
                    if let Some((requester, _)) = self.tokens.remove(&token) {
                        let len = reply.as_ref().map_or(0, Vec::len);
                        self.send(
                            n,
                            requester,
                            len,
                            Event::Reply {
                                from: n,
                                to: requester,
                                reply,
                            },
                        );
                    }
                }
                Io::Publish { topic, data } => self.publish(n, topic, data),
                Io::Disconnect(peer) => self.unlink(n, peer),
                Io::Audit(rows) => self.audit_rows += rows.len() as u64,
                Io::Probe(hashes) => self.probe(n, &hashes),
                Io::SendBlobs { peer, data } => {
                    let len = data.len();
                    self.send(
                        n,
                        peer,
                        len,
                        Event::Direct {
                            from: n,
                            to: peer,
                            data,
                            answer: false,
                        },
                    );
                }
                Io::Fetch { hash, from, size } => self.transfer(from, n, size, hash),
                // Simulated nodes do not check provenance (`with_provenance_checks` is the
                // daemon's), so the core never asks.
                Io::VerifyProvenance { .. } => {}
                // The simulated hook succeeds at once.
                Io::RunHook { release, .. } => {
                    let now = self.now();
                    if let Some(node) = self.node_mut(n) {
                        node.hook_finished(release, Ok(()), now);
                    }
                }
                // No blob store in these scenarios; bans are the node's own (`Disconnect`
                // follows, and a banned peer's next connection is refused by the node).
                // Pins are the store's bookkeeping; simulated stores hold what they fetched,
                // and every simulated node is reachable by its number.
                Io::Pin { .. }
                | Io::BlobAddrs { .. }
                | Io::Ban { .. }
                | Io::Unban(_)
                | Io::SetListed(_)
                | Io::RootsAdopted(_)
                | Io::Retired { .. } => {}
            }
        }
        self.note_promotion(n);
        self.schedule_wake(n);
    }

    fn schedule_wake(&mut self, n: NodeId) {
        let Some(at) = self.node(n).map(Service::next_wakeup) else {
            return;
        };
        let at = at.saturating_duration_since(self.start).max(self.t);
        match self.wake_at[n as usize] {
            Some(w) if w <= at && w >= self.t => {}
            _ => {
                self.wake_at[n as usize] = Some(at);
                self.push(at, Event::Wake(n));
            }
        }
    }

    /// Changes node `n` has applied so far (to see whether an input brought any).
    fn applied(&self, n: NodeId) -> u64 {
        self.node(n).map_or(0, |s| s.metrics().changes_applied)
    }

    /// Records which followed edits reached `n`, if the last input applied anything.
    fn after_apply(&mut self, n: NodeId, before: u64) {
        if self.applied(n) != before {
            self.record_arrivals(n);
        }
    }

    /// Marks every followed edit `n` holds and was not known to hold as arrived now.
    fn record_arrivals(&mut self, n: NodeId) {
        let Some(node) = self.nodes.get(n as usize).and_then(Option::as_ref) else {
            return;
        };
        let doc = node.replica().doc();
        let t = self.t;
        for e in &mut self.tracked {
            if e.arrived[n as usize].is_none() && doc.get_change_meta_by_hash(&e.hash).is_some() {
                e.arrived[n as usize] = Some(t);
            }
        }
    }

    /// Sends a sync request from `from` to `to` (its node's, or an attacker's message);
    /// false when they are not connected.
    pub(crate) fn request(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) -> bool {
        if !self.is_linked(from, to) {
            return false;
        }
        self.next_token += 1;
        let token = self.next_token;
        self.tokens.insert(token, (from, to));
        let len = bytes.len();
        self.send(
            from,
            to,
            len,
            Event::Request {
                from,
                to,
                token,
                bytes,
            },
        );
        true
    }

    /// Gossip `from` publishes (its node's, or an attacker's announcement).
    pub(crate) fn publish(&mut self, from: NodeId, topic: Topic, data: Vec<u8>) {
        self.next_gossip += 1;
        let id = self.next_gossip;
        self.seen.insert((from, id));
        self.flood(from, None, from, id, topic, Arc::new(data));
    }

    pub(crate) fn neighbours_of(&self, n: NodeId) -> Vec<NodeId> {
        self.neighbours[n as usize].clone()
    }

    /// Whether any node that counts holds a forged change.
    /// The honest nodes that are up: the ones whose state the invariants are about.
    fn honest_nodes(&self) -> Vec<&Node> {
        (0..self.nodes.len() as NodeId)
            .filter(|n| self.counts(*n))
            .filter_map(|n| self.node(n))
            .collect()
    }

    /// How many of `nodes` hold the change `h`.
    fn holders(nodes: &[&Node], h: &ChangeHash) -> usize {
        nodes
            .iter()
            .filter(|node| node.replica().doc().get_change_meta_by_hash(h).is_some())
            .count()
    }

    /// Equivocating changes (each of every pair) that some honest nodes hold and others do
    /// not: the cooperative split on them.
    pub fn equivocations_split(&self) -> usize {
        let honest = self.honest_nodes();
        self.equivocations
            .iter()
            .flat_map(|(a, b)| [a, b])
            .filter(|h| {
                let held = Self::holders(&honest, h);
                held > 0 && held < honest.len()
            })
            .count()
    }

    /// Equivocating pairs of which every honest node holds both changes: the cooperative
    /// merged what the attacker tried to split it with.
    pub fn equivocations_merged(&self) -> usize {
        let honest = self.honest_nodes();
        self.equivocations
            .iter()
            .filter(|(a, b)| {
                Self::holders(&honest, a) == honest.len()
                    && Self::holders(&honest, b) == honest.len()
            })
            .count()
    }

    /// Equivocating changes every honest node holds.
    pub fn equivocations_everywhere(&self) -> usize {
        let honest = self.honest_nodes();
        self.equivocations
            .iter()
            .flat_map(|(a, b)| [a, b])
            .filter(|h| Self::holders(&honest, h) == honest.len())
            .count()
    }

    /// Forged changes held, summed over the honest nodes (each must be 0).
    pub fn forged_held(&self) -> usize {
        let honest = self.honest_nodes();
        self.forged.iter().map(|h| Self::holders(&honest, h)).sum()
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
