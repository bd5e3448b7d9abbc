//! `accord node run`: the daemon, a reactor around the sans-I/O core (`accord-service`,
//! ADR 0006). It turns libp2p, iroh, API and timer events into calls on the core and does
//! the I/O the core returns (send, answer, publish, disconnect, ban, audit, pin, probe,
//! fetch, run the hook). Every decision is the core's or a library's; the daemon owns the
//! sockets, the blob store, the processes and the clock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use accord_catalogue::Replica;
use accord_net::libp2p::gossipsub::{self, IdentTopic};
use accord_net::libp2p::request_response::{self, Message, ResponseChannel};
use accord_net::libp2p::swarm::SwarmEvent;
use accord_net::libp2p::{Multiaddr, PeerId, Swarm};
use accord_net::{
    BLOBS_TOPIC, Behaviour, BehaviourEvent, BlobsAck, BlobsAnnounce, HEADS_TOPIC, SyncMessage,
    SyncReply,
};
use accord_protocol::{ReleaseId, Role};
use accord_service::{Io, NodeStore, Now, Service, Topic};
use accord_trust::TrustedRoot;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use tracing::{info, warn};

use accord_protocol::Timestamp;

use crate::api::{ApiRequest, CatalogueView, Metrics, NodeView, PeerView};
use crate::config::NodeConfig;
use crate::datadir::DataDir;
use crate::mirror::{FetchDone, Mirror};

mod promote;

/// Results of work the loop handed to a task, coming back to be applied in order.
enum Internal {
    /// One run of the `on_promote` hook finished.
    HookDone {
        id: ReleaseId,
        result: std::result::Result<(), String>,
    },
}

/// How often this node may gossip each kind of announcement: an honest node then sends at
/// most two per second per topic, whatever its edit rate, well inside the gossip budget
/// its peers hold it to.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(500);

/// How often an unchanged blob announcement is repeated to everyone (docs/simulations.md).
const BLOB_REFRESH: Duration = Duration::from_secs(60);

/// Decisions change with time alone only at a root's expiry: the engine runs for the time
/// once a minute (it runs after every change anyway).
const REPLAN_EVERY: Duration = Duration::from_secs(60);

/// Both clocks, read once per event for the core.
fn now() -> Now {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Now::new(std::time::Instant::now(), unix_ms)
}

/// The reactor: the libp2p swarm, the mirror, the API and the hook runner around the
/// sans-I/O core (`accord_service::Service`), which decides everything about the
/// catalogue, its peers and promotion.
struct Node {
    jurisdiction: String,
    me: PeerId,
    data_dir: std::path::PathBuf,
    dir: DataDir,
    /// Where the swarm listens (recorded in `listen.addrs`).
    listening: Vec<Multiaddr>,
    /// The catalogue, its store, the peers' budgets, strikes and bans, the pacing of
    /// announcements, the promotion engine: every decision.
    svc: Service<NodeStore, PeerId>,
    /// Sync requests the core has not answered yet, by the number it knows them by.
    responses: HashMap<u64, ResponseChannel<SyncReply>>,
    next_token: u64,
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    blobs_topic: IdentTopic,
    mirror: Mirror,
    /// Blob store work the core asked for, done after the drain (the store is async).
    store_io: Vec<Io<PeerId>>,
    internal: tokio::sync::mpsc::Sender<Internal>,
    on_promote: Option<String>,
    /// What upstream provenance is verified against (`[sigstore]`).
    sigstore: crate::provenance::SigstorePolicy,
    sigstore_cfg: Option<crate::config::SigstoreConfig>,
    /// Signs what the node vouches for outside the catalogue (an export's plan).
    node_key: accord_trust::SecretKey,
}

impl Node {
    /// The typed catalogue (cached by the core per set of heads).
    fn read(&self) -> accord_service::Read {
        self.svc.catalogue()
    }

    /// PeerId -> jurisdiction, for the peers the current root lists.
    fn names(&self) -> &HashMap<PeerId, String> {
        self.svc.listed()
    }

    /// Does the I/O the core asked for, in its order.
    fn drain(&mut self) {
        while let Some(io) = self.svc.poll_io() {
            self.execute(io);
        }
        // A request the core did not answer (it refused the message) is dropped: the peer
        // sees the stream close.
        self.responses.clear();
    }

    /// One piece of the core's I/O: a translation, no decision.
    fn execute(&mut self, io: Io<PeerId>) {
        match io {
            Io::SendSync { peer, bytes } => {
                self.swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, SyncMessage(bytes));
            }
            Io::Respond { token, reply } => {
                if let Some(channel) = self.responses.remove(&token) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, SyncReply(reply.map(SyncMessage)));
                }
            }
            Io::Publish { topic, data } => {
                let topic = match topic {
                    Topic::Heads => self.topic.clone(),
                    Topic::Blobs => self.blobs_topic.clone(),
                };
                self.publish(topic, data);
            }
            Io::SendBlobs { peer, data } => {
                self.swarm
                    .behaviour_mut()
                    .blobs
                    .send_request(&peer, BlobsAnnounce(data));
            }
            Io::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Io::Ban { peer, .. } => {
                self.swarm.behaviour_mut().allow.disallow_peer(peer);
            }
            Io::Unban(peer) => {
                self.swarm.behaviour_mut().allow.allow_peer(peer);
            }
            Io::SetListed(names) => {
                let allowed: Vec<PeerId> = names.keys().copied().collect();
                accord_net::set_allowed(&mut self.swarm, &allowed);
                self.mirror.set_peers(&names);
            }
            Io::Audit(events) => self.audit(&events),
            Io::RunHook { release, env } => self.run_hook(release, env),
            // Done after the drain: the blob store is async.
            io @ (Io::Pin { .. } | Io::Probe(_) | Io::VerifyProvenance { .. }) => {
                self.store_io.push(io)
            }
            Io::Fetch { hash, from, .. } => self.mirror.fetch(hash, from),
            Io::BlobAddrs { peer, addrs } => self.mirror.set_addresses(peer, &addrs),
            Io::RootsAdopted(_) => {
                if let Err(e) = self.dir.write_chain_files(self.svc.replica().chain()) {
                    warn!(error = %format!("{e:#}"), "could not write the root chain files");
                }
            }
            // The loop stops once the core says it is retired.
            Io::Retired { .. } => {}
        }
    }

    /// Gossips `data`; with no subscribed peer yet there is no one to tell, which is fine.
    fn publish(&mut self, topic: IdentTopic, data: Vec<u8>) {
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            tracing::debug!(error = %e, "nothing published");
        }
    }

    /// The node's counters, all the core's.
    fn metrics(&self) -> Metrics {
        Metrics {
            sync: self.svc.metrics().clone(),
            promotion: self.svc.promotion_metrics(),
            mirror: self.svc.mirror_metrics(),
            view_updated_unix: self
                .svc
                .freshness()
                .iter()
                .filter(|(j, _)| **j != self.jurisdiction)
                .map(|(j, at)| (j.clone(), *at))
                .collect(),
        }
    }

    /// Does the blob store work the core asked for (pins, then what the store holds, which
    /// goes back to the core), until it asks for none.
    async fn store_io(&mut self) {
        while !self.store_io.is_empty() {
            for io in std::mem::take(&mut self.store_io) {
                match io {
                    Io::Pin { pin, unpin } => {
                        if let Err(e) = self.mirror.pin(&pin, &unpin).await {
                            warn!(error = %format!("{e:#}"), "cannot pin or unpin blobs");
                        }
                    }
                    Io::Probe(hashes) => match self.mirror.probe(&hashes).await {
                        Ok(local) => self.svc.blobs_local(&local, now()),
                        Err(e) => {
                            // The core then fetches what it may already hold, rather
                            // than wait forever for an answer.
                            warn!(error = %format!("{e:#}"), "cannot read the blob store");
                            self.svc.blobs_local(&[], now());
                        }
                    },
                    Io::VerifyProvenance {
                        release,
                        capability,
                        artifacts,
                        checks,
                    } => {
                        let verdict = self
                            .sigstore
                            .verdict(&self.mirror.store, &capability, &artifacts, &checks)
                            .await;
                        self.svc.provenance_verified(release, verdict, now());
                    }
                    _ => {}
                }
            }
            self.drain();
        }
    }

    fn fetch_done(&mut self, d: FetchDone) {
        self.svc.fetch_finished(
            d.hash,
            d.from,
            d.fetched.outcome,
            d.fetched.bytes,
            (d.local.bytes, d.local.complete),
            now(),
        );
    }

    fn internal(&mut self, msg: Internal) {
        match msg {
            Internal::HookDone { id, result } => self.svc.hook_finished(id, result, now()),
        }
    }

    fn handle(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                // The addresses actually bound (a config may ask for port 0), for whoever
                // starts nodes and needs to point others at this one.
                self.listening.push(address);
                let text: String = self.listening.iter().map(|a| format!("{a}\n")).collect();
                if let Err(e) = crate::files::write_atomic(
                    &self.data_dir.join("listen.addrs"),
                    text.as_bytes(),
                    false,
                ) {
                    warn!(error = %format!("{e:#}"), "cannot record the listen addresses");
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                self.mirror
                    .peer_connected(peer_id, ip_of(endpoint.get_remote_address()));
                self.svc.peer_connected(peer_id, now());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.mirror.peer_gone(&peer_id);
                self.svc.peer_disconnected(&peer_id);
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                info!(%send_back_addr, %error, "refused an incoming connection");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.handle_sync(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            })) => {
                // Signed gossip: the source is the listed node whose key signed it, and
                // pays for it (a peer relaying others' announcements is not blamed).
                let source = message.source.filter(|s| self.names().contains_key(s));
                let topic = if message.topic == self.blobs_topic.hash() {
                    Topic::Blobs
                } else {
                    Topic::Heads
                };
                let _ = self
                    .svc
                    .gossip(source, propagation_source, topic, &message.data, now());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Blobs(ev)) => self.handle_blobs(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(
                accord_net::libp2p::mdns::Event::Discovered(found),
            )) => {
                for (peer, addr) in found {
                    // Only the root's node keys are worth a dial; the allow-list would refuse
                    // anyone else anyway.
                    if self.names().contains_key(&peer)
                        && !self.swarm.is_connected(&peer)
                        && let Err(e) = self.swarm.dial(addr.clone())
                    {
                        tracing::debug!(%peer, %addr, error = %e, "cannot dial a peer found by mDNS");
                    }
                }
            }
            _ => {}
        }
    }
    fn handle_api(&mut self, req: ApiRequest) {
        match req {
            ApiRequest::Command(cmd) => self.svc.command(cmd, now()),
            ApiRequest::History { id, reply } => {
                let _ = reply.send(accord_catalogue::history::capability(
                    self.svc.replica().doc(),
                    self.svc.replica().chain(),
                    &id,
                ));
            }
            ApiRequest::View(reply) => {
                let read = self.read();
                let (catalogue, problems) = (read.0.clone(), read.1.clone());
                let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
                let mut peers: Vec<PeerView> = self
                    .names()
                    .iter()
                    .map(|(p, j)| PeerView {
                        peer_id: p.to_string(),
                        jurisdiction: Some(j.clone()),
                        connected: connected.contains(p),
                    })
                    .collect();
                peers.sort_by(|a, b| a.jurisdiction.cmp(&b.jurisdiction));
                let _ = reply.send(NodeView {
                    jurisdiction: self.jurisdiction.clone(),
                    peer_id: self.me.to_string(),
                    root_version: self.svc.replica().root().version(),
                    heads: self
                        .svc
                        .replica()
                        .heads()
                        .iter()
                        .map(|h| hex::encode(h.0))
                        .collect(),
                    view: CatalogueView {
                        catalogue,
                        problems,
                    },
                    peers,
                    metrics: self.metrics(),
                });
            }
            ApiRequest::ProposeCheck { envelope, reply } => {
                let answer = crate::artifacts::Proposal::check(&envelope, &self.read().0);
                let _ = reply.send(answer);
            }
            ApiRequest::Releases(reply) => {
                let _ = reply.send(self.release_views());
            }
            ApiRequest::Statement { selector, reply } => {
                let read = self.read();
                let cat = &read.0;
                let answer = selector
                    .parse::<accord_protocol::Selector>()
                    .map_err(anyhow::Error::from)
                    .and_then(|sel| {
                        crate::artifacts::select(cat, &sel, self.svc.replica().chain())
                            .map(|r| r.signed_envelope().to_json())
                    })
                    .map_err(|e| format!("{e:#}"));
                let _ = reply.send(answer);
            }
            ApiRequest::Audit(reply) => {
                let _ = reply.send(self.svc.store().db.audit_rows().map_err(|e| e.to_string()));
            }
            ApiRequest::ExportPlan {
                request,
                held,
                reply,
            } => {
                let replica = self.svc.replica();
                let signatures: HashMap<_, _> =
                    replica.signatures().map(|(h, s)| (*h, *s)).collect();
                let plan = crate::cmd::bundle::plan_export(
                    replica.doc(),
                    replica.genesis(),
                    &signatures,
                    replica.chain(),
                    &self.jurisdiction,
                    request.since.as_ref(),
                    &request.releases,
                    &|h| held.contains(h),
                    &self.node_key,
                )
                .map_err(|e| format!("{e:#}"));
                let _ = reply.send(plan);
            }
            ApiRequest::SigstoreRoot { envelope, reply } => {
                let _ = reply.send(self.apply_sigstore_root(&envelope));
            }
            ApiRequest::Artifact {
                selector,
                name,
                production,
                reply,
            } => {
                let read = self.read();
                // Borrowed, not copied per request: the state grows with every release.
                let none = accord_promote::State::default();
                let state = self.svc.promotion_state().unwrap_or(&none);
                let answer = crate::artifacts::channel_blobs(
                    &read.0,
                    self.svc.replica().chain(),
                    state,
                    &selector,
                    production,
                    &self.jurisdiction,
                )
                .map_err(|e| format!("{e:#}"))
                .and_then(|b| {
                    // Staging serves a release only once this node verified its upstream
                    // provenance (production serves what it promoted, verified then).
                    if !production {
                        self.staging_allowed(&read.0, &b.id, &b.label)?;
                    }
                    b.artifacts
                        .iter()
                        .find(|a| a.name == name)
                        .map(|a| (a.blake3, a.size))
                        .ok_or_else(|| format!("{} has no artifact {name:?}", b.label))
                });
                let _ = reply.send(answer);
            }
        }
    }

    /// Whether the staging channel may serve a release: not while its provenance is refused
    /// here, nor before this node verified the Sigstore bundles it carries.
    fn staging_allowed(
        &self,
        cat: &accord_catalogue::Catalogue,
        id: &accord_protocol::ReleaseId,
        label: &str,
    ) -> std::result::Result<(), String> {
        use accord_promote::provenance::Verdict;
        match self.svc.provenance_verdict(id) {
            Some(Verdict::Refused { reason }) => Err(format!(
                "{label} is held on this node: provenance refused here: {reason}"
            )),
            None if cat.release(id).is_some_and(|r| {
                !r.provenance.is_empty() || self.sigstore.covers(&r.capability)
            }) =>
            {
                Err(format!(
                    "{label}: this node has not verified its provenance yet"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Applies a Sigstore trusted-root update the steering committee signed, then has the
    /// core ask for every release's provenance verdict again, against the new root.
    fn apply_sigstore_root(&mut self, envelope: &[u8]) -> std::result::Result<u64, String> {
        let Some(cfg) = &self.sigstore_cfg else {
            return Err(
                "this node has no [sigstore] section in its config: it verifies no provenance"
                    .into(),
            );
        };
        let root = self.svc.replica().chain().current().clone();
        let update =
            crate::provenance::apply_update(&self.data_dir, envelope, &root, &cfg.trusted_root)
                .map_err(|e| format!("{e:#}"))?;
        self.sigstore = crate::provenance::SigstorePolicy::load(Some(cfg), &self.data_dir)
            .map_err(|e| format!("{e:#}"))?;
        info!(
            sequence = update.sequence,
            sha256 = %hex::encode(update.sha256),
            "Sigstore trusted root updated by the steering committee"
        );
        self.svc.provenance_policy_changed();
        Ok(update.sequence)
    }

    /// Every release with its mirror progress and, per jurisdiction, where it stands.
    fn release_views(&self) -> Vec<crate::artifacts::ReleaseView> {
        let read = self.read();
        let cat = &read.0;
        let chain = self.svc.replica().chain();
        // This node's bytes: what the core knows verified, and fetches under way.
        let mut mine: HashMap<accord_mirror::BlobHash, u64> = self
            .svc
            .blobs_held()
            .into_iter()
            .map(|(h, (have, _))| (h, have))
            .collect();
        for (h, live) in self.mirror.in_progress() {
            let e = mine.entry(h).or_insert(0);
            *e = (*e).max(live);
        }
        let mut views = crate::mirror::views(
            cat,
            chain,
            &self.jurisdiction,
            self.names(),
            &mine,
            self.svc.blobs_announced(),
            |id| self.svc.held_back(id).map(str::to_owned),
        );
        let me = self.svc.promotion_jurisdiction();
        let at = Timestamp::from_unix(now().unix());
        for v in &mut views {
            v.provenance = self.svc.provenance_verdict(&v.id).cloned();
            if let (Some(r), Some(me)) = (cat.release(&v.id), me) {
                let mine = self.svc.explanations().and_then(|e| e.get(&v.id));
                let lines = crate::promotion::explain(r, v, chain, me, mine, at);
                v.explained(lines);
            }
        }
        views
    }

    /// A blob announcement sent straight to us: the core takes it as gossip from its sender
    /// (a connected, listed node).
    /// A blob announcement sent straight to us, and the answer to ours: the core takes each
    /// as gossip from its sender (a connected, listed node) and answers a request with its
    /// own.
    fn handle_blobs(&mut self, ev: request_response::Event<BlobsAnnounce, BlobsAck>) {
        let request_response::Event::Message { peer, message, .. } = ev else {
            return;
        };
        match message {
            Message::Request {
                request, channel, ..
            } => {
                let ours = self.svc.blobs_exchanged(peer, &request.0, now());
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blobs
                    .send_response(channel, BlobsAck(ours.map(BlobsAnnounce)));
            }
            Message::Response {
                response: BlobsAck(Some(theirs)),
                ..
            } => {
                let _ = self
                    .svc
                    .gossip(Some(peer), peer, Topic::Blobs, &theirs.0, now());
            }
            Message::Response { .. } => {}
        }
    }

    fn handle_sync(&mut self, ev: request_response::Event<SyncMessage, SyncReply>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => {
                    let token = self.next_token;
                    self.next_token = self.next_token.wrapping_add(1);
                    self.responses.insert(token, channel);
                    self.svc.sync_request(peer, token, &request.0, now());
                }
                Message::Response { response, .. } => {
                    self.svc.sync_response(peer, response.0.map(|m| m.0), now());
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "sync request failed");
                self.svc.sync_failed(&peer);
            }
            _ => {}
        }
    }
}

/// Runs the node until SIGINT/SIGTERM; state is committed on every change and on shutdown.
pub async fn run(cfg: NodeConfig, passphrase: String) -> Result<()> {
    let dir = DataDir::new(&cfg.data_dir);
    // One unlock of the node key serves the network identity and the replica.
    let key = dir.node_key(&passphrase)?;
    let seed = key.seed_bytes();
    let key_id = key.id().clone();
    let me = accord_net::peer_id(&key.public().raw())?;
    let signer = accord_trust::SecretKey::from_seed(&seed)?;
    dir.secure()?;
    let (mut replica, db) = dir.replica_with(key)?;
    replica.set_limits(cfg.limits.catalogue());
    reconcile_root_file(&dir, &mut replica, &db)?;
    dir.write_chain_files(replica.chain())?;
    let state = match db.promotion_state()? {
        Some(b) => accord_promote::State::from_json(&b)
            .context("the promotion state in node.redb is unreadable")?,
        None => accord_promote::State::default(),
    };
    let root = replica.root().clone();
    match root.body().place_of(&key_id) {
        Some((p, Role::Node)) if p.as_str() == cfg.jurisdiction => {}
        Some((p, role)) => bail!(
            "the node key is {p}'s {role} key in root v{}, but the config says jurisdiction {}",
            root.version(),
            cfg.jurisdiction
        ),
        None => bail!("the node key is not in root v{}", root.version()),
    }
    if !cfg.local_rules.is_empty() {
        let local = accord_protocol::Rule {
            all_of: cfg.local_rules.clone(),
        };
        root.body()
            .check_rule("local", &local)
            .context("local_rules in the config cannot be met under the current root")?;
    }
    crate::files::write_atomic(
        &cfg.data_dir.join("local_rules.json"),
        &serde_json::to_vec(&cfg.local_rules)?,
        false,
    )?;
    let store = NodeStore {
        db,
        signer: accord_trust::SecretKey::from_seed(&seed)?,
    };
    let promotion = accord_service::PromotionConfig {
        jurisdiction: accord_protocol::PrincipalId::new(&cfg.jurisdiction)?,
        local_rules: cfg.local_rules.clone(),
        signer,
        hook: cfg.on_promote.is_some(),
        staging_quota: cfg.mirror.staging_quota_mib.saturating_mul(1 << 20),
        checkpoint_every: Duration::from_secs(cfg.audit_checkpoint_secs.max(1)),
        replan_every: REPLAN_EVERY,
        max_staleness: cfg.max_staleness_secs.map(Duration::from_secs),
    };
    let mut svc = Service::new(
        replica,
        store,
        accord_service::Config {
            anti_entropy: Duration::from_secs(cfg.anti_entropy_secs.max(1)),
            announce_every: ANNOUNCE_EVERY,
            compact_after: crate::cmd::catalogue::COMPACT_AFTER,
            // A lost announcement is repeated once a minute; a peer that subscribes is told
            // directly (`Io::SendBlobs`), so a restarted node does not wait for the repeat.
            blob_refresh: BLOB_REFRESH,
            budget: cfg.limits.budget(),
            policy: cfg.limits.discipline(),
            root_expiry_warning: Duration::from_secs(
                cfg.root_expiry_warning_days.saturating_mul(86_400),
            ),
        },
        Box::new(|key: &accord_trust::PublicKey| accord_net::peer_id(&key.raw()).ok()),
        now(),
    )
    .with_promotion(promotion, state, now());
    svc.set_pause(crate::testpoint::pause);
    let names = svc.listed().clone();
    let allowed: Vec<PeerId> = names.keys().copied().collect();

    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(64);
    let (internal_tx, mut internal_rx) = tokio::sync::mpsc::channel(16);
    let blobs_listen: std::net::SocketAddr =
        cfg.blobs_listen.parse().context("blobs_listen address")?;
    let mut mirror = Mirror::start(&cfg.data_dir, seed, blobs_listen, &cfg.mirror, done_tx).await?;
    mirror.set_peers(&names);
    let mut svc = svc
        .with_mirror(accord_service::MirrorConfig {
            limits: cfg.mirror.limits(),
            salt: mirror.salt(),
            jurisdiction: cfg.jurisdiction.clone(),
        })
        .with_provenance_checks();
    let sigstore = crate::provenance::SigstorePolicy::load(cfg.sigstore.as_ref(), &cfg.data_dir)?;
    if let Some(path) = sigstore.root_path() {
        info!(trusted_root = %path.display(), "verifying upstream provenance");
    }
    svc.set_blob_addrs(mirror.addrs());
    dir.secure()?;
    // The API: loopback only, a token for writes, its address recorded for the CLI.
    let token = api_token(&cfg.data_dir)?;
    let api_addr: std::net::SocketAddr = cfg.api.parse().context("api address")?;
    let listener = tokio::net::TcpListener::bind(api_addr)
        .await
        .with_context(|| format!("cannot listen for the API on {api_addr}"))?;
    let (api_tx, mut api_rx) = tokio::sync::mpsc::channel(64);
    let bound = listener.local_addr().context("api address")?;
    let router = crate::api::router(
        api_tx,
        token,
        accord_trust::SecretKey::from_seed(&seed)?,
        bound,
        mirror.store.clone(),
        cfg.data_dir.clone(),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            warn!(error = %e, "API server stopped");
        }
    });
    crate::files::write_atomic(
        &cfg.data_dir.join("api.addr"),
        bound.to_string().as_bytes(),
        false,
    )?;
    let mut swarm = accord_net::build(
        accord_net::keypair(seed)?,
        &allowed,
        accord_net::Options { mdns: cfg.mdns },
    )?;
    let _ = std::fs::remove_file(cfg.data_dir.join("listen.addrs"));
    for a in &cfg.listen {
        let addr: Multiaddr = a.parse().with_context(|| format!("listen address {a}"))?;
        swarm
            .listen_on(addr)
            .with_context(|| format!("cannot listen on {a}"))?;
    }
    for b in &cfg.bootstrap {
        let addr: Multiaddr = b
            .parse()
            .with_context(|| format!("bootstrap address {b}"))?;
        if let Err(e) = swarm.dial(addr) {
            warn!(address = %b, error = %e, "cannot dial bootstrap peer (will retry)");
        }
    }
    info!(peer_id = %me, jurisdiction = %cfg.jurisdiction, root = root.version(), "node started");
    println!("accord node {} ({}) ready", cfg.jurisdiction, me);

    let mut node = Node {
        jurisdiction: cfg.jurisdiction.clone(),
        me,
        data_dir: cfg.data_dir.clone(),
        dir: dir.clone(),
        listening: Vec::new(),
        svc,
        responses: HashMap::new(),
        next_token: 0,
        swarm,
        topic: IdentTopic::new(HEADS_TOPIC),
        blobs_topic: IdentTopic::new(BLOBS_TOPIC),
        mirror,
        store_io: Vec::new(),
        internal: internal_tx,
        on_promote: cfg.on_promote.clone(),
        sigstore,
        sigstore_cfg: cfg.sigstore.clone(),
        node_key: accord_trust::SecretKey::from_seed(&seed)?,
    };
    // What the catalogue lacks of this node's standing: its roots and its acknowledgement
    // (after `accord init` under a newer root, or an offline `accord root apply`).
    node.svc.settle_owed(now());
    node.drain();
    // The core's rounds (sync, fetch retries, hooks, audit checkpoints, the timed plan)
    // come from its `next_wakeup`.
    // Reconnect to missing bootstrap peers with exponential backoff (1 s doubling to 60 s),
    // reset whenever every bootstrap peer is connected.
    let mut backoff = Duration::from_secs(1);
    let mut next_redial = tokio::time::Instant::now() + backoff;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            ev = node.swarm.select_next_some() => node.handle(ev),
            Some(req) = api_rx.recv() => node.handle_api(req),
            Some(done) = done_rx.recv() => node.fetch_done(done),
            Some(msg) = internal_rx.recv() => node.internal(msg),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(node.svc.next_wakeup())) => {
                node.svc.handle_timeout(now());
            }
            _ = tokio::time::sleep_until(next_redial) => {
                if node.swarm.connected_peers().count() < cfg.bootstrap.len() {
                    for b in &cfg.bootstrap {
                        if let Ok(addr) = b.parse::<Multiaddr>() {
                            let _ = node.swarm.dial(addr);
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                } else {
                    backoff = Duration::from_secs(1);
                }
                next_redial = tokio::time::Instant::now() + backoff;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
        node.drain();
        node.store_io().await;
        if node.svc.is_retired() {
            break;
        }
    }
    // Peer sync states are committed, so the next start resumes where this one stopped.
    let peers: Vec<PeerId> = node.svc.connected().copied().collect();
    for p in peers {
        node.svc.peer_disconnected(&p);
    }
    node.svc.checkpoint_audit(true, now());
    node.svc.flush_freshness(now());
    node.drain();
    let _ = std::fs::remove_file(cfg.data_dir.join("api.addr"));
    let _ = std::fs::remove_file(cfg.data_dir.join("listen.addrs"));
    if let Err(e) = node.mirror.shutdown().await {
        warn!(error = %e, "blob store did not close cleanly");
    }
    info!("node stopped; state committed");
    if node.svc.is_retired() {
        bail!(
            "root v{} no longer lists this node's key: this node is retired",
            node.svc.replica().root().version()
        );
    }
    Ok(())
}

/// `root.json` is for people; node.redb's chain is what the node trusts. A newer
/// `root.json` (dropped in by an operator) is adopted if it follows the chain; an older or
/// different one — a restored backup — stops the node rather than be silently ignored.
fn reconcile_root_file(
    dir: &DataDir,
    replica: &mut Replica,
    db: &accord_store::NodeDb,
) -> Result<()> {
    let path = dir.path.join("root.json");
    let Ok(bytes) = crate::files::read_limited(&path, accord_protocol::limits::MAX_ROOT_BYTES)
    else {
        return Ok(());
    };
    let file = TrustedRoot::inspect(&bytes)
        .with_context(|| format!("{} is not a root document", path.display()))?;
    let current = replica.root().clone();
    if file.version() > current.version() {
        let delta = replica
            .adopt_root(&bytes, Timestamp::now().unix())
            .with_context(|| {
                format!(
                    "{} is root v{} but does not follow the installed v{}",
                    path.display(),
                    file.version(),
                    current.version()
                )
            })?;
        db.apply(&delta)?;
        info!(root = file.version(), "adopted the newer root.json");
    } else if file.version() < current.version()
        || file.envelope().payload != current.envelope().payload
    {
        bail!(
            "{} is root v{}, but this node has applied root v{} (node.redb): a restored backup? Put back root v{} or delete root.json; a node never rolls its root back",
            path.display(),
            file.version(),
            current.version(),
            current.version()
        );
    }
    Ok(())
}

/// The IP address in a multiaddr (`/ip4/…` or `/ip6/…`), if any.
fn ip_of(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    use accord_net::libp2p::multiaddr::Protocol;
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    })
}

/// Shortest API token a node accepts: a short or empty one would switch authentication off
/// in all but name.
pub const MIN_TOKEN_LEN: usize = 32;

/// The API token: created once (random, 0600) in the data directory, read after that. A
/// token file that is empty or short stops the node.
fn api_token(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("api.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if t.len() < MIN_TOKEN_LEN {
            bail!(
                "{} holds a token of {} characters; at least {MIN_TOKEN_LEN} are needed (delete the file and a new one is made)",
                path.display(),
                t.len()
            );
        }
        return Ok(t);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the API token: {e}"))?;
    let token = hex::encode(bytes);
    crate::files::write_atomic(&path, token.as_bytes(), true)?;
    Ok(token)
}
