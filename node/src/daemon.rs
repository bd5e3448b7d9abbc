//! `accord node run`: the daemon. A thin shell that moves bytes between the libp2p swarm
//! (`accord-net`), the catalogue replica (`accord-catalogue`) and the node database
//! (`accord-store`). Every decision about content is the replica's.

use std::collections::HashSet;
use std::time::Duration;

use accord_catalogue::Replica;
use accord_net::libp2p::gossipsub::{self, IdentTopic};
use accord_net::libp2p::request_response::{self, Message};
use accord_net::libp2p::swarm::SwarmEvent;
use accord_net::libp2p::{Multiaddr, PeerId, Swarm};
use accord_net::{Behaviour, BehaviourEvent, HEADS_TOPIC, SyncMessage, SyncReply};
use accord_protocol::Role;
use accord_store::NodeDb;
use accord_trust::TrustedRoot;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use tracing::{info, warn};

use accord_protocol::Timestamp;

use crate::api::{ApiRequest, CatalogueView, Metrics, NodeView, PeerView};
use crate::config::NodeConfig;
use crate::datadir::DataDir;

/// PeerIds of every node key in the root except ours: who may connect.
pub fn allowed_peers(root: &TrustedRoot, me: &PeerId) -> Result<Vec<PeerId>> {
    let mut out = Vec::new();
    for p in root.body().principals.values() {
        if let Some(rk) = p.roles.get(&Role::Node) {
            for id in &rk.keys {
                if let Some(k) = root.key(id) {
                    let peer = accord_net::peer_id(&k.raw())?;
                    if &peer != me {
                        out.push(peer);
                    }
                }
            }
        }
    }
    Ok(out)
}

struct Node {
    jurisdiction: String,
    me: PeerId,
    /// PeerId -> jurisdiction, for the peers the root lists.
    names: std::collections::HashMap<PeerId, String>,
    metrics: Metrics,
    swarm: Swarm<Behaviour>,
    replica: Replica,
    db: NodeDb,
    topic: IdentTopic,
    /// Peers with a sync request of ours in flight (one at a time per peer).
    in_flight: HashSet<PeerId>,
}

impl Node {
    fn persist(&mut self, delta: &accord_catalogue::Delta) {
        if let Err(e) = self.db.apply(delta) {
            warn!(error = %e, "could not persist catalogue changes");
        }
    }

    /// Sends our next sync message to `peer`, if we have one and none is in flight.
    fn sync_with(&mut self, peer: PeerId) {
        if self.in_flight.contains(&peer) {
            return;
        }
        if let Some(m) = self.replica.generate_message(&peer.to_string()) {
            self.swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, SyncMessage(m));
            self.in_flight.insert(peer);
        }
    }

    /// Applies a peer's message; a bad one disconnects that peer (others are unaffected).
    fn receive(&mut self, peer: PeerId, bytes: &[u8]) -> bool {
        self.metrics.sync_messages_in += 1;
        self.metrics.sync_bytes_in += bytes.len() as u64;
        match self.replica.receive_message(&peer.to_string(), bytes) {
            Ok(delta) => {
                let changed = !delta.changes.is_empty();
                if changed {
                    self.metrics.changes_applied += delta.changes.len() as u64;
                    self.metrics.last_change_unix = Timestamp::now().unix();
                }
                self.persist(&delta);
                if changed {
                    info!(%peer, changes = delta.changes.len(), "catalogue updated from peer");
                    self.announce();
                }
                true
            }
            Err(e) => {
                self.metrics.rejected_messages += 1;
                warn!(%peer, error = %e, "refused a sync message; disconnecting the peer");
                let _ = self.swarm.disconnect_peer_id(peer);
                false
            }
        }
    }

    /// Tells the others that our catalogue changed.
    fn announce(&mut self) {
        let heads: Vec<u8> = self.replica.heads().iter().flat_map(|h| h.0).collect();
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), heads)
        {
            tracing::debug!(error = %e, "no peer to announce to");
        }
    }

    fn handle(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                info!(peer = %peer_id, "peer connected");
                self.replica.connect(&peer_id.to_string());
                self.sync_with(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                info!(peer = %peer_id, "peer disconnected");
                self.in_flight.remove(&peer_id);
                let delta = self.replica.disconnect(&peer_id.to_string());
                self.persist(&delta);
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
                ..
            })) => self.sync_with(propagation_source),
            _ => {}
        }
    }

    fn handle_api(&mut self, req: ApiRequest) {
        match req {
            ApiRequest::View(reply) => {
                let (catalogue, problems) = accord_catalogue::schema::read(self.replica.doc());
                let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
                let mut peers: Vec<PeerView> = self
                    .names
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
                    root_version: self.replica.root().version(),
                    heads: self
                        .replica
                        .heads()
                        .iter()
                        .map(|h| hex::encode(h.0))
                        .collect(),
                    view: CatalogueView {
                        catalogue,
                        problems,
                    },
                    peers,
                    metrics: self.metrics.clone(),
                });
            }
            ApiRequest::Edit { id, spec, reply } => {
                let result = self
                    .replica
                    .edit(Timestamp::now().unix(), &spec.summary(&id), |tx| {
                        spec.apply(tx, &id)
                    });
                let answer = match result {
                    Ok(delta) => {
                        self.persist(&delta);
                        match delta.changes.first() {
                            Some(c) => {
                                self.metrics.changes_applied += 1;
                                self.metrics.last_change_unix = Timestamp::now().unix();
                                info!(capability = %id, "local edit committed");
                                self.announce();
                                let peers: Vec<PeerId> =
                                    self.swarm.connected_peers().copied().collect();
                                for p in peers {
                                    self.sync_with(p);
                                }
                                Ok(hex::encode(&c.hash[..8]))
                            }
                            None => Ok("(no change)".to_owned()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn handle_sync(&mut self, ev: request_response::Event<SyncMessage, SyncReply>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => {
                    if self.receive(peer, &request.0) {
                        let reply = self
                            .replica
                            .generate_message(&peer.to_string())
                            .map(SyncMessage);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, SyncReply(reply));
                    }
                }
                Message::Response { response, .. } => {
                    self.in_flight.remove(&peer);
                    let ok = match response.0 {
                        Some(m) => self.receive(peer, &m.0),
                        None => true,
                    };
                    if ok {
                        self.sync_with(peer);
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                self.in_flight.remove(&peer);
                tracing::debug!(%peer, %error, "sync request failed");
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
    let (replica, db) = dir.replica_with(key)?;
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
    let allowed = allowed_peers(&root, &me)?;
    let mut names = std::collections::HashMap::new();
    for (pid, p) in &root.body().principals {
        if let Some(rk) = p.roles.get(&Role::Node) {
            for id in &rk.keys {
                if let Some(k) = root.key(id) {
                    names.insert(accord_net::peer_id(&k.raw())?, pid.to_string());
                }
            }
        }
    }
    names.remove(&me);

    // The API: loopback only, a token for writes, its address recorded for the CLI.
    let token = api_token(&cfg.data_dir)?;
    let api_addr: std::net::SocketAddr = cfg.api.parse().context("api address")?;
    let listener = tokio::net::TcpListener::bind(api_addr)
        .await
        .with_context(|| format!("cannot listen for the API on {api_addr}"))?;
    let (api_tx, mut api_rx) = tokio::sync::mpsc::channel(64);
    let router = crate::api::router(api_tx, token);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            warn!(error = %e, "API server stopped");
        }
    });
    crate::files::write_atomic(
        &cfg.data_dir.join("api.addr"),
        api_addr.to_string().as_bytes(),
        false,
    )?;
    let mut swarm = accord_net::build(accord_net::keypair(seed)?, &allowed)?;
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
        names,
        metrics: Metrics::default(),
        swarm,
        replica,
        db,
        topic: IdentTopic::new(HEADS_TOPIC),
        in_flight: HashSet::new(),
    };
    let mut anti_entropy = tokio::time::interval(Duration::from_secs(cfg.anti_entropy_secs));
    // Reconnect to missing bootstrap peers with exponential backoff (1 s doubling to 60 s),
    // reset whenever every bootstrap peer is connected.
    let mut backoff = Duration::from_secs(1);
    let mut next_redial = tokio::time::Instant::now() + backoff;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            ev = node.swarm.select_next_some() => node.handle(ev),
            Some(req) = api_rx.recv() => node.handle_api(req),
            _ = anti_entropy.tick() => {
                let peers: Vec<PeerId> = node.swarm.connected_peers().copied().collect();
                for p in peers {
                    node.sync_with(p);
                }
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
    }
    let peers: Vec<PeerId> = node.swarm.connected_peers().copied().collect();
    for p in peers {
        let delta = node.replica.disconnect(&p.to_string());
        node.persist(&delta);
    }
    let _ = std::fs::remove_file(cfg.data_dir.join("api.addr"));
    info!("node stopped; state committed");
    Ok(())
}

/// The API token: created once (random, 0600) in the data directory, read after that.
fn api_token(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("api.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the API token: {e}"))?;
    let token = hex::encode(bytes);
    crate::files::write_atomic(&path, token.as_bytes(), true)?;
    Ok(token)
}
