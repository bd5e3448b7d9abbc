//! The mirror queue: which blobs this node must hold, who has them, and what to fetch next.
//!
//! Sans-I/O, like the catalogue replica: the node feeds in what the catalogue wants, what the
//! local store already holds, what peers announce and how each fetch ended; the queue answers
//! with the fetches to start. Time is an input, so penalties and backoff are tested without
//! sleeping, and the simulations drive this same code.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash as StdHash;
use std::time::{Duration, Instant};

/// A BLAKE3 hash: the blob's name in the store and on the wire.
pub type BlobHash = [u8; 32];

/// One blob the catalogue wants mirrored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub hash: BlobHash,
    /// The size the signed statement gives; bao verification binds the hash to it.
    pub size: u64,
    /// Who wants it, e.g. `CAP-B01@1.4.0/app.tar`; for status and logs.
    pub wanted_by: BTreeSet<String>,
}

/// Limits from the node config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Blobs larger than this are not mirrored (reported as too large).
    pub max_blob_bytes: u64,
    /// Fetches running at once from one provider.
    pub per_peer: usize,
    /// Fetches running at once in total.
    pub total: usize,
    /// Blob connections this node serves at once, from all peers together. A fetcher
    /// turned away tries another provider (or this one again after `retry_after`): with no
    /// limit every mirror fetched a new release from its proposer at once, which then sent
    /// every copy (`docs/simulations.md`, `release`).
    pub serve_total: usize,
    /// How long a provider that sent corrupt data is not asked again.
    pub corrupt_penalty: Duration,
    /// How long to wait before asking the same provider for the same blob after a failure.
    pub retry_after: Duration,
    /// A fetch that receives nothing for this long has stalled: it is cut off and the
    /// provider, which announced the blob and then held it back, is penalised like one that
    /// sent corrupt data, so the blob goes to another provider.
    pub stall_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: 16 << 30,
            per_peer: 2,
            total: 4,
            serve_total: 8,
            corrupt_penalty: Duration::from_secs(600),
            retry_after: Duration::from_secs(2),
            stall_after: Duration::from_secs(30),
        }
    }
}

/// How a fetch ended, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The blob is complete and verified in the store.
    Complete,
    /// The provider sent data that failed verification; the verified prefix was kept.
    Corrupt,
    /// The provider sent nothing for `Limits::stall_after`; the verified prefix was kept.
    Stalled,
    /// Anything else: connection lost, provider does not have it, timeout.
    Failed(String),
}

/// What the queue asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<P> {
    Fetch { hash: BlobHash, from: P },
}

/// Where one wanted blob stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State<P> {
    /// Waiting for a provider (or for a free slot).
    Queued,
    Fetching {
        from: P,
    },
    Complete,
    /// Larger than `max_blob_bytes`: never fetched.
    TooLarge,
}

#[derive(Debug, Clone)]
struct Entry<P> {
    want: Want,
    state: State<P>,
    /// Verified bytes held locally (partial downloads count).
    have: u64,
    /// provider -> not before
    backoff: HashMap<P, Instant>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub corrupt: u64,
    pub failed: u64,
    pub stalled: u64,
    pub completed: u64,
}

/// One line of status per wanted blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobStatus<P> {
    pub hash: BlobHash,
    pub size: u64,
    pub have: u64,
    pub state: State<P>,
    pub wanted_by: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct MirrorQueue<P> {
    limits: Limits,
    entries: BTreeMap<BlobHash, Entry<P>>,
    /// What each connected peer says it holds complete.
    providers: HashMap<P, BTreeSet<BlobHash>>,
    /// provider -> not before (corrupt data)
    penalised: HashMap<P, Instant>,
    /// provider -> how near it is (lower first; unknown is 1).
    nearness: HashMap<P, u8>,
    /// This node's own number for breaking ties between equal providers (`with_salt`).
    salt: u64,
    counters: Counters,
}

impl<P: Clone + Eq + StdHash + Ord> MirrorQueue<P> {
    pub fn new(limits: Limits) -> Self {
        MirrorQueue {
            limits,
            entries: BTreeMap::new(),
            providers: HashMap::new(),
            penalised: HashMap::new(),
            nearness: HashMap::new(),
            salt: 0,
            counters: Counters::default(),
        }
    }

    /// Breaks ties between equally busy, equally near providers with this node's own
    /// number: every node sees the same providers announce the same blobs, and with one
    /// tie-break for all (the smallest id) every mirror fetched from the same node — the
    /// proposer's, which served 12.7 GB to 200 simulated mirrors (`docs/simulations.md`).
    pub fn with_salt(mut self, salt: u64) -> Self {
        self.salt = salt;
        self
    }

    /// How near a provider is: 0 for a node of this node's own jurisdiction (same site,
    /// cheap link), 1 for the others. Nearer providers are asked first.
    pub fn set_nearness(&mut self, peer: P, rank: u8) {
        self.nearness.insert(peer, rank);
    }

    /// Replaces the wanted set (derived from the catalogue). Blobs no longer wanted leave the
    /// queue; progress on the others is kept.
    pub fn set_wanted(&mut self, wants: Vec<Want>) {
        let mut next = BTreeMap::new();
        for w in wants {
            let entry = match self.entries.remove(&w.hash) {
                Some(mut e) => {
                    e.want.wanted_by = w.wanted_by;
                    e
                }
                None => Entry {
                    state: if w.size > self.limits.max_blob_bytes {
                        State::TooLarge
                    } else {
                        State::Queued
                    },
                    have: 0,
                    backoff: HashMap::new(),
                    want: w,
                },
            };
            next.insert(entry.want.hash, entry);
        }
        self.entries = next;
    }

    /// What the local store holds of `hash`: verified bytes, and whether it is complete.
    pub fn set_local(&mut self, hash: &BlobHash, have: u64, complete: bool) {
        if let Some(e) = self.entries.get_mut(hash) {
            e.have = have.min(e.want.size);
            if complete {
                e.have = e.want.size;
                e.state = State::Complete;
            }
        }
    }

    /// A peer's announcement of the blobs it holds complete (replaces its previous one).
    pub fn set_provider(&mut self, peer: P, has: BTreeSet<BlobHash>) {
        self.providers.insert(peer, has);
    }

    /// A peer went away: it provides nothing until it announces again.
    pub fn remove_provider(&mut self, peer: &P) {
        self.providers.remove(peer);
    }

    /// The fetches to start now, within the limits.
    pub fn poll(&mut self, now: Instant) -> Vec<Action<P>> {
        self.penalised.retain(|_, until| *until > now);
        let mut per_peer: HashMap<P, usize> = HashMap::new();
        let mut total = 0;
        for e in self.entries.values() {
            if let State::Fetching { from } = &e.state {
                *per_peer.entry(from.clone()).or_default() += 1;
                total += 1;
            }
        }
        let mut actions = Vec::new();
        for (hash, e) in self.entries.iter_mut() {
            if total >= self.limits.total {
                break;
            }
            if e.state != State::Queued {
                continue;
            }
            // The least busy provider that has it, is not penalised and is not backing off
            // for this blob; then the nearest; ties go by this node's salt, so nodes spread
            // over providers and each node's choice is still deterministic.
            let mut candidates: Vec<&P> = self
                .providers
                .iter()
                .filter(|(p, has)| {
                    has.contains(hash)
                        && !self.penalised.contains_key(*p)
                        && e.backoff.get(*p).is_none_or(|t| *t <= now)
                        && per_peer.get(*p).copied().unwrap_or(0) < self.limits.per_peer
                })
                .map(|(p, _)| p)
                .collect();
            let salt = self.salt;
            let nearness = &self.nearness;
            candidates.sort_by_key(|p| {
                (
                    per_peer.get(*p).copied().unwrap_or(0),
                    nearness.get(*p).copied().unwrap_or(1),
                    spread(salt, hash, *p),
                    (*p).clone(),
                )
            });
            if let Some(p) = candidates.first() {
                let p = (*p).clone();
                *per_peer.entry(p.clone()).or_default() += 1;
                total += 1;
                e.state = State::Fetching { from: p.clone() };
                actions.push(Action::Fetch {
                    hash: *hash,
                    from: p,
                });
            }
        }
        actions
    }

    /// A fetch ended; `have` is the verified bytes now held.
    pub fn finished(
        &mut self,
        hash: &BlobHash,
        from: &P,
        outcome: Outcome,
        have: u64,
        now: Instant,
    ) {
        let Some(e) = self.entries.get_mut(hash) else {
            return;
        };
        e.have = have.min(e.want.size);
        match outcome {
            Outcome::Complete => {
                self.counters.completed += 1;
                e.have = e.want.size;
                e.state = State::Complete;
            }
            Outcome::Corrupt => {
                self.counters.corrupt += 1;
                self.penalised
                    .insert(from.clone(), now + self.limits.corrupt_penalty);
                e.state = State::Queued;
            }
            Outcome::Stalled => {
                self.counters.stalled += 1;
                self.penalised
                    .insert(from.clone(), now + self.limits.corrupt_penalty);
                e.state = State::Queued;
            }
            Outcome::Failed(_) => {
                self.counters.failed += 1;
                e.backoff
                    .insert(from.clone(), now + self.limits.retry_after);
                e.state = State::Queued;
            }
        }
    }

    /// When a queued blob's provider comes out of its backoff or penalty, if one is
    /// waiting for that: the shell's next `poll` is due then, not at some later tick.
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == State::Queued)
            .flat_map(|(hash, e)| {
                self.providers
                    .iter()
                    .filter(move |(_, has)| has.contains(hash))
                    .filter_map(move |(p, _)| {
                        let backoff = e.backoff.get(p).copied();
                        let penalty = self.penalised.get(p).copied();
                        backoff.max(penalty).filter(|t| *t > now)
                    })
            })
            .min()
    }

    pub fn is_penalised(&self, peer: &P) -> bool {
        self.penalised.contains_key(peer)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Blobs still to fetch (queued or in flight).
    pub fn pending(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.state, State::Queued | State::Fetching { .. }))
            .count()
    }

    pub fn status(&self) -> Vec<BlobStatus<P>> {
        self.entries
            .values()
            .map(|e| BlobStatus {
                hash: e.want.hash,
                size: e.want.size,
                have: e.have,
                state: e.state.clone(),
                wanted_by: e.want.wanted_by.clone(),
            })
            .collect()
    }

    /// Every wanted blob: its hash, verified bytes held, and size (what `status` says,
    /// without copying who wants it).
    pub fn held(&self) -> impl Iterator<Item = (BlobHash, u64, u64)> + '_ {
        self.entries.iter().map(|(h, e)| (*h, e.have, e.want.size))
    }

    /// Verified bytes held of a wanted blob (0 for a blob not wanted).
    pub fn held_bytes(&self, hash: &BlobHash) -> u64 {
        self.entries.get(hash).map_or(0, |e| e.have)
    }

    /// The size the statement gives a wanted blob.
    pub fn size_of(&self, hash: &BlobHash) -> Option<u64> {
        self.entries.get(hash).map(|e| e.want.size)
    }

    /// The wanted set, for persisting.
    pub fn wants(&self) -> impl Iterator<Item = &Want> {
        self.entries.values().map(|e| &e.want)
    }
}

/// A stable mix of this node's salt, the blob and the provider: the same inputs give the
/// same order on every run (SipHash with fixed keys), different nodes different orders.
fn spread<P: StdHash>(salt: u64, hash: &BlobHash, peer: &P) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    salt.hash(&mut h);
    hash.hash(&mut h);
    peer.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(n: u8, size: u64) -> Want {
        Want {
            hash: [n; 32],
            size,
            wanted_by: [format!("CAP-B01@1.0.0/f{n}")].into(),
        }
    }

    fn limits() -> Limits {
        Limits {
            max_blob_bytes: 1000,
            per_peer: 1,
            total: 3,
            serve_total: 8,
            corrupt_penalty: Duration::from_secs(60),
            retry_after: Duration::from_secs(1),
            stall_after: Duration::from_secs(5),
        }
    }

    /// A provider that announced a blob and then sends nothing is cut off, penalised, and
    /// the blob goes to another provider.
    #[test]
    fn a_stalling_provider_is_penalised_and_the_blob_reassigned() {
        let mut q = MirrorQueue::new(limits());
        q.set_wanted(vec![want(1, 100)]);
        q.set_provider("liar", [[1; 32]].into());
        q.set_provider("honest", [[1; 32]].into());
        let now = Instant::now();
        let first = q.poll(now);
        let Action::Fetch { from, .. } = &first[0];
        let (stalled, other) = if *from == "liar" {
            ("liar", "honest")
        } else {
            ("honest", "liar")
        };
        q.finished(&[1; 32], &stalled, Outcome::Stalled, 0, now);
        assert!(q.is_penalised(&stalled));
        assert_eq!(
            q.poll(now),
            vec![Action::Fetch {
                hash: [1; 32],
                from: other
            }]
        );
        assert_eq!(q.counters().stalled, 1);
    }

    /// Nodes that see the same providers do not all pick the same one, and each prefers a
    /// provider of its own jurisdiction.
    #[test]
    fn fetchers_spread_over_providers_and_prefer_their_own_site() {
        let providers: Vec<u32> = (0..8).collect();
        let mut picked = BTreeSet::new();
        for fetcher in 100..140u64 {
            let mut q = MirrorQueue::new(limits()).with_salt(fetcher);
            q.set_wanted(vec![want(1, 10)]);
            for p in &providers {
                q.set_provider(*p, [[1; 32]].into());
            }
            let Action::Fetch { from, .. } = q.poll(Instant::now())[0];
            picked.insert(from);
        }
        assert!(picked.len() >= 6, "40 fetchers used only {picked:?}");
        let mut q = MirrorQueue::new(limits()).with_salt(7);
        q.set_wanted(vec![want(1, 10)]);
        for p in &providers {
            q.set_provider(*p, [[1; 32]].into());
            q.set_nearness(*p, if *p == 5 { 0 } else { 1 });
        }
        assert_eq!(
            q.poll(Instant::now()),
            vec![Action::Fetch {
                hash: [1; 32],
                from: 5
            }]
        );
    }

    #[test]
    fn fetches_from_providers_within_limits() {
        let mut q = MirrorQueue::new(limits());
        q.set_wanted(vec![want(1, 10), want(2, 10), want(3, 10), want(4, 5000)]);
        let now = Instant::now();
        assert!(q.poll(now).is_empty(), "no provider yet");
        q.set_provider("a", [[1; 32], [2; 32], [4; 32]].into());
        q.set_provider("b", [[2; 32], [3; 32]].into());
        let acts = q.poll(now);
        // One per peer: a takes blob 1, b takes blob 2; blob 3 waits for b; 4 is too large.
        assert_eq!(
            acts,
            vec![
                Action::Fetch {
                    hash: [1; 32],
                    from: "a"
                },
                Action::Fetch {
                    hash: [2; 32],
                    from: "b"
                },
            ]
        );
        assert!(q.poll(now).is_empty());
        q.finished(&[2; 32], &"b", Outcome::Complete, 10, now);
        assert_eq!(
            q.poll(now),
            vec![Action::Fetch {
                hash: [3; 32],
                from: "b"
            }]
        );
        let st = q.status();
        assert_eq!(st[3].state, State::TooLarge);
        assert_eq!(q.pending(), 2);
    }

    #[test]
    fn corrupt_provider_is_penalised_and_another_one_used() {
        let mut q = MirrorQueue::new(limits());
        q.set_wanted(vec![want(1, 100)]);
        q.set_provider("a", [[1; 32]].into());
        q.set_provider("b", [[1; 32]].into());
        let now = Instant::now();
        let first = q.poll(now);
        let [Action::Fetch { from: bad, .. }] = first.as_slice() else {
            panic!("one fetch expected: {first:?}");
        };
        let bad = *bad;
        let good = if bad == "a" { "b" } else { "a" };
        q.finished(&[1; 32], &bad, Outcome::Corrupt, 48, now);
        assert!(q.is_penalised(&bad));
        assert_eq!(q.status()[0].have, 48, "the verified prefix counts");
        assert_eq!(
            q.poll(now),
            vec![Action::Fetch {
                hash: [1; 32],
                from: good
            }]
        );
        q.finished(&[1; 32], &good, Outcome::Complete, 100, now);
        assert_eq!(q.counters().corrupt, 1);
        assert_eq!(q.pending(), 0);
        // The penalty ends.
        assert!(q.poll(now + Duration::from_secs(61)).is_empty());
        assert!(!q.is_penalised(&bad));
    }

    #[test]
    fn a_failed_fetch_backs_off_that_provider_for_that_blob() {
        let mut q = MirrorQueue::new(limits());
        q.set_wanted(vec![want(1, 100)]);
        q.set_provider("a", [[1; 32]].into());
        let t0 = Instant::now();
        assert_eq!(q.poll(t0).len(), 1);
        q.finished(&[1; 32], &"a", Outcome::Failed("reset".into()), 0, t0);
        assert!(q.poll(t0).is_empty());
        // The shell knows when to poll again without a timer of its own.
        assert_eq!(q.next_retry(t0), Some(t0 + limits().retry_after));
        assert_eq!(q.poll(t0 + Duration::from_secs(2)).len(), 1);
        assert_eq!(q.next_retry(t0 + Duration::from_secs(2)), None);
    }

    #[test]
    fn local_state_and_rewanting_keep_progress() {
        let mut q: MirrorQueue<&str> = MirrorQueue::new(limits());
        q.set_wanted(vec![want(1, 100), want(2, 100)]);
        q.set_local(&[1; 32], 100, true);
        q.set_local(&[2; 32], 30, false);
        q.set_wanted(vec![want(2, 100)]);
        let st = q.status();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].have, 30);
        assert_eq!(st[0].state, State::Queued);
    }
}
