//! The harness the core's tests share: real replicas and signatures, an in-memory store,
//! a network that is a queue, and a clock the test moves.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use accord_catalogue::{Replica, Seed, Stored, edit, genesis};
use accord_mirror::{BlobHash, Limits, Outcome};
use accord_service::{Config, Io, MemoryStore, MirrorConfig, Now, PromotionConfig, Service, Topic};
use accord_trust::testkit::Cooperative;

/// How often a promoting node may checkpoint its audit log in these tests.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

const SEED: &str = include_str!("../../../../config/catalogue.toml");
pub const T0: i64 = 1_800_000_000_000;

pub type Node = Service<MemoryStore, String>;

/// A few nodes on a lossless, instant network; `drop_sync` loses sync traffic.
pub struct Net {
    pub nodes: HashMap<String, Node>,
    pub links: Vec<(String, String)>,
    pub now: Now,
    /// (requester, responder) per outstanding request token.
    pub tokens: HashMap<u64, (String, String)>,
    pub next_token: u64,
    /// Every Io each node emitted, for assertions.
    pub log: Vec<(String, Io<String>)>,
    pub queue: VecDeque<(String, Io<String>)>,
    pub drop_sync: bool,
    /// Starts a node from the genesis with a fresh store (a new data dir for its key).
    pub boot: Boot,
    /// Each node's blob store: verified bytes held, and whether complete.
    pub blobs: HashMap<String, BTreeMap<BlobHash, (u64, bool)>>,
    /// Whether fetches are carried out (from the provider's store, at once); otherwise
    /// they stay in flight.
    pub serve_fetches: bool,
}

pub type Boot = Box<dyn Fn(&str, Now) -> Node>;

pub fn setup(names: &[&str]) -> (Cooperative, Net) {
    setup_with(names, false, None)
}

/// Nodes that also run the promotion engine (`with_promotion`), with an `on_promote`
/// hook configured.
pub fn setup_promoting(names: &[&str]) -> (Cooperative, Net) {
    setup_with(names, true, None)
}

/// Promoting nodes that hold production promotions back past `max` of staleness.
pub fn setup_promoting_fresh(names: &[&str], max: Duration) -> (Cooperative, Net) {
    setup_with(names, true, Some(max))
}

fn setup_with(
    names: &[&str],
    promoting: bool,
    max_staleness: Option<Duration>,
) -> (Cooperative, Net) {
    let (coop, root) = accord_trust::testkit::anchored().expect("cooperative");
    let seed = Seed::parse(SEED, "seed").expect("seed");
    let (doc, hash) =
        genesis::build(&seed, &hex::encode(root.envelope().payload_digest())).expect("genesis");
    let ids: HashMap<accord_protocol::KeyId, String> = ["uk", "eu", "ca", "au"]
        .iter()
        .map(|j| {
            (
                coop.signer(&format!("{j}.node")).expect("key").id().clone(),
                (*j).to_owned(),
            )
        })
        .collect();
    let now = Now::new(Instant::now(), T0);
    let keys = coop.clone();
    let boot: Boot = Box::new(move |n: &str, now: Now| {
        let replica = Replica::open(
            hash,
            Stored {
                snapshot: Some(doc.save()),
                ..Stored::default()
            },
            keys.signer(&format!("{n}.node")).expect("key"),
            accord_trust::RootChain::from_trusted(root.clone()),
        )
        .expect("open");
        let ids = ids.clone();
        let svc = Service::new(
            replica,
            MemoryStore::default(),
            Config::default(),
            Box::new(move |k: &accord_trust::PublicKey| ids.get(k.id()).cloned()),
            now,
        );
        if !promoting {
            return svc;
        }
        svc.with_mirror(MirrorConfig {
            limits: Limits::default(),
            salt: n.len() as u64,
            jurisdiction: n.to_owned(),
        })
        .with_promotion(
            PromotionConfig {
                jurisdiction: accord_protocol::PrincipalId::new(n).expect("jurisdiction"),
                local_rules: Vec::new(),
                signer: keys.signer(&format!("{n}.node")).expect("key"),
                hook: true,
                staging_quota: 1 << 30,
                checkpoint_every: CHECKPOINT_EVERY,
                replan_every: Duration::from_secs(60),
                max_staleness,
            },
            accord_promote::State::default(),
            now,
        )
    });
    let mut nodes = HashMap::new();
    for n in names {
        nodes.insert((*n).to_owned(), boot(n, now));
    }
    (
        coop,
        Net {
            nodes,
            links: Vec::new(),
            now,
            tokens: HashMap::new(),
            next_token: 0,
            log: Vec::new(),
            queue: VecDeque::new(),
            drop_sync: false,
            boot,
            blobs: HashMap::new(),
            serve_fetches: false,
        },
    )
}

impl Net {
    pub fn node(&mut self, n: &str) -> &mut Node {
        self.nodes.get_mut(n).expect("node")
    }

    pub fn connect(&mut self, a: &str, b: &str) {
        self.links.push((a.to_owned(), b.to_owned()));
        let now = self.now;
        self.node(a).peer_connected(b.to_owned(), now);
        self.node(b).peer_connected(a.to_owned(), now);
        self.pump();
    }

    pub fn linked(&self, a: &str, b: &str) -> bool {
        self.links
            .iter()
            .any(|(x, y)| (x == a && y == b) || (x == b && y == a))
    }

    /// Delivers every Io until no node has anything to do (time does not move).
    pub fn pump(&mut self) {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for _ in 0..10_000 {
            for n in &names {
                while let Some(io) = self.node(n).poll_io() {
                    self.queue.push_back((n.clone(), io));
                }
            }
            let Some((from, io)) = self.queue.pop_front() else {
                return;
            };
            self.log.push((from.clone(), io.clone()));
            let now = self.now;
            match io {
                Io::SendSync { peer, bytes } => {
                    if self.drop_sync {
                        self.node(&from).sync_failed(&peer);
                        continue;
                    }
                    self.next_token += 1;
                    let t = self.next_token;
                    self.tokens.insert(t, (from.clone(), peer.clone()));
                    self.node(&peer).sync_request(from.clone(), t, &bytes, now);
                }
                Io::Respond { token, reply } => {
                    if let Some((req, resp)) = self.tokens.remove(&token) {
                        self.node(&req).sync_response(resp, reply, now);
                    }
                }
                Io::Publish { topic, data } => {
                    let peers: Vec<String> = names
                        .iter()
                        .filter(|p| self.linked(&from, p))
                        .cloned()
                        .collect();
                    for p in peers {
                        self.node(&p)
                            .gossip(Some(from.clone()), from.clone(), topic, &data, now);
                    }
                }
                Io::Disconnect(peer) => {
                    self.links.retain(|(x, y)| {
                        !((x == &from && y == &peer) || (x == &peer && y == &from))
                    });
                    self.node(&from).peer_disconnected(&peer);
                    if let Some(p) = self.nodes.get_mut(&peer) {
                        p.peer_disconnected(&from);
                    }
                }
                Io::SendBlobs { peer, data } if self.linked(&from, &peer) => {
                    self.node(&peer).gossip(
                        Some(from.clone()),
                        from.clone(),
                        Topic::Blobs,
                        &data,
                        now,
                    );
                }
                Io::Probe(hashes) => {
                    let store = self.blobs.entry(from.clone()).or_default();
                    let local: Vec<(BlobHash, u64, bool)> = hashes
                        .iter()
                        .map(|h| {
                            let (have, complete) = store.get(h).copied().unwrap_or((0, false));
                            (*h, have, complete)
                        })
                        .collect();
                    self.node(&from).blobs_local(&local, now);
                }
                Io::Fetch {
                    hash,
                    from: provider,
                    size,
                } if self.serve_fetches => {
                    let has = self
                        .blobs
                        .get(&provider)
                        .and_then(|s| s.get(&hash))
                        .is_some_and(|(_, complete)| *complete);
                    let (outcome, local) = if has {
                        self.blobs
                            .entry(from.clone())
                            .or_default()
                            .insert(hash, (size, true));
                        (Outcome::Complete, (size, true))
                    } else {
                        (Outcome::Failed("not there".into()), (0, false))
                    };
                    let bytes = if has { size } else { 0 };
                    self.node(&from)
                        .fetch_finished(hash, provider, outcome, bytes, local, now);
                }
                _ => {}
            }
        }
        panic!("the network never went quiet");
    }

    /// Moves the clock to `node`'s next wakeup and lets it do what is due.
    pub fn wake(&mut self, node: &str) -> Duration {
        let at = self.node(node).next_wakeup();
        let d = at.saturating_duration_since(self.now.mono);
        self.now = self.now.after(d);
        let now = self.now;
        self.node(node).handle_timeout(now);
        self.pump();
        d
    }

    /// `n`'s store gains `have` bytes of `artifact` (complete if all), as if written there
    /// (a proposal's upload, a fetch), and the core hears of it.
    pub fn hold(&mut self, n: &str, artifact: &accord_protocol::statement::Artifact, have: u64) {
        let complete = have >= artifact.size;
        self.blobs
            .entry(n.to_owned())
            .or_default()
            .insert(artifact.blake3, (have.min(artifact.size), complete));
        let now = self.now;
        self.node(n)
            .blobs_local(&[(artifact.blake3, have.min(artifact.size), complete)], now);
        self.pump();
    }

    /// Drops the connection between `a` and `b`.
    pub fn disconnect(&mut self, a: &str, b: &str) {
        self.links
            .retain(|(x, y)| !((x == a && y == b) || (x == b && y == a)));
        self.node(a).peer_disconnected(&b.to_owned());
        self.node(b).peer_disconnected(&a.to_owned());
    }

    pub fn heads(&self, n: &str) -> Vec<automerge::ChangeHash> {
        self.nodes[n].replica().heads()
    }

    pub fn count(&self, from: &str, pred: impl Fn(&Io<String>) -> bool) -> usize {
        self.log
            .iter()
            .filter(|(f, io)| f == from && pred(io))
            .count()
    }
}

pub fn set_effort(net: &mut Net, n: &str, i: usize) {
    let now = net.now;
    net.node(n)
        .edit(now, "effort", |tx| {
            edit::set(tx, "CAP-B01", "effort", &format!("{i} weeks"))
        })
        .expect("edit");
}

impl Net {
    /// Gives `n` an operator's command, as the API does, lets the network carry what it
    /// caused, and returns the core's answer.
    pub fn command<T: Send + 'static>(
        &mut self,
        n: &str,
        make: impl FnOnce(accord_service::Reply<T>) -> accord_service::Command,
    ) -> Result<T, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let cmd = make(accord_service::Reply::new(move |answer| {
            tx.send(answer).expect("the test waits for the answer")
        }));
        let now = self.now;
        self.node(n).command(cmd, now);
        self.pump();
        rx.try_recv()
            .expect("a command is answered before `command` returns")
    }
}
