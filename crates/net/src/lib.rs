//! Accord's network shell: a libp2p swarm (QUIC and TCP+Noise+Yamux, identify, ping,
//! gossipsub for announcements, request-response for catalogue sync) that only lets in
//! the node keys of the current root.
//!
//! Architecture invariant: this crate moves bytes and enforces who may connect; it makes no
//! decision about their content. Catalogue messages are opaque here and are judged by
//! `accord_catalogue::Replica`.

use std::time::Duration;

pub use libp2p;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    PeerId, StreamProtocol, Swarm, SwarmBuilder, allow_block_list, connection_limits, gossipsub,
    identify, identity, mdns, noise, ping, request_response, swarm::behaviour::toggle::Toggle, tcp,
    yamux,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The request-response protocol carrying catalogue sync messages.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/accord/catalogue-sync/1");
/// Gossip topic for "my catalogue changed" announcements.
pub const HEADS_TOPIC: &str = "accord/catalogue-heads/1";
/// Gossip topic for "these are the blobs I hold, and where my blob endpoint listens".
pub const BLOBS_TOPIC: &str = "accord/blobs/1";
/// The request-response protocol carrying one node's blob announcement straight to a peer
/// that just subscribed to `BLOBS_TOPIC` (gossipsub may not have grafted it into any mesh
/// yet, so a published announcement can miss it).
pub const BLOBS_PROTOCOL: StreamProtocol = StreamProtocol::new("/accord/blobs-announce/1");
/// Largest blob announcement carried directly (the mirror bounds it again before parsing).
pub const MAX_ANNOUNCE_BYTES: usize = 64 * 1024;
/// Identify protocol version string.
pub const PROTOCOL_VERSION: &str = "/accord/1.0.0";
/// Largest sync message carried (matches the catalogue's own limit).
pub const MAX_SYNC_BYTES: usize = 8 << 20;

#[derive(Debug, Error)]
pub enum NetError {
    #[error("invalid node key for the network identity: {0}")]
    Identity(String),
    #[error("cannot build the network stack: {0}")]
    Build(String),
}

/// One catalogue sync message (the bytes `Replica::generate_message` produced), or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// The reply: the responder's own next message, if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReply(pub Option<SyncMessage>);

/// One blob announcement, sent to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobsAnnounce(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// The answer: the responder's own announcement (a node that just restarted learns from
/// it who holds what, over its own fresh connection), or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobsAck(pub Option<BlobsAnnounce>);

/// libp2p's derive does not provide `Debug` for the behaviour or its events.
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First, so strangers are closed before any other protocol sees them.
    pub allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub limits: connection_limits::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<SyncMessage, SyncReply>,
    pub blobs: request_response::cbor::Behaviour<BlobsAnnounce, BlobsAck>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    /// LAN discovery, off unless the config asks for it: it multicasts, and discovered peers
    /// still have to pass the allow-list.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Choices of the node config that shape the swarm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Announce and discover peers on the local network with mDNS.
    pub mdns: bool,
}

/// The libp2p identity of a node key (same key as everywhere else in Accord).
pub fn keypair(seed: [u8; 32]) -> Result<identity::Keypair, NetError> {
    let mut seed = seed;
    identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| NetError::Identity(e.to_string()))
}

/// The PeerId of a 32-byte Ed25519 public key.
pub fn peer_id(public: &[u8; 32]) -> Result<PeerId, NetError> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(public)
        .map_err(|e| NetError::Identity(e.to_string()))?;
    Ok(PeerId::from_public_key(&identity::PublicKey::from(pk)))
}

/// Builds the swarm for `key`, letting in only `allowed` peers.
pub fn build(
    key: identity::Keypair,
    allowed: &[PeerId],
    options: Options,
) -> Result<Swarm<Behaviour>, NetError> {
    let build_err = |e: &dyn std::fmt::Display| NetError::Build(e.to_string());
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| build_err(&e))?
        .with_quic()
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(gossipsub::ValidationMode::Strict)
                // A cooperative is a handful of nodes: a mesh of up to 3 peers each.
                .mesh_n(3)
                .mesh_n_low(1)
                .mesh_n_high(6)
                .mesh_outbound_min(1)
                .max_transmit_size(64 * 1024)
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            let sync = request_response::cbor::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(MAX_SYNC_BYTES as u64 + 1024)
                    .set_response_size_maximum(MAX_SYNC_BYTES as u64 + 1024),
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
            );
            let blobs = request_response::cbor::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(MAX_ANNOUNCE_BYTES as u64 + 1024)
                    .set_response_size_maximum(MAX_ANNOUNCE_BYTES as u64 + 1024),
                [(BLOBS_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
            );
            Ok(Behaviour {
                allow: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established_per_peer(Some(2))
                        .with_max_established_incoming(Some(64))
                        .with_max_pending_incoming(Some(32)),
                ),
                gossipsub,
                sync,
                blobs,
                identify: identify::Behaviour::new(identify::Config::new(
                    PROTOCOL_VERSION.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                mdns: Toggle::from(if options.mdns {
                    Some(mdns::tokio::Behaviour::new(
                        mdns::Config::default(),
                        key.public().to_peer_id(),
                    )?)
                } else {
                    None
                }),
            })
        })
        .map_err(|e| build_err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    set_allowed(&mut swarm, allowed);
    for t in [HEADS_TOPIC, BLOBS_TOPIC] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&gossipsub::IdentTopic::new(t))
            .map_err(|e| build_err(&e))?;
    }
    Ok(swarm)
}

/// Replaces the allow-list (after a root change). Peers no longer allowed are disconnected.
pub fn set_allowed(swarm: &mut Swarm<Behaviour>, allowed: &[PeerId]) {
    let current: Vec<PeerId> = swarm
        .behaviour()
        .allow
        .allowed_peers()
        .iter()
        .copied()
        .collect();
    for p in current {
        if !allowed.contains(&p) {
            swarm.behaviour_mut().allow.disallow_peer(p);
        }
    }
    for p in allowed {
        swarm.behaviour_mut().allow.allow_peer(*p);
    }
}
