//! A hostile listed node over the real network: it holds a node key the root lists, syncs
//! like an honest node (so it knows what the target holds), then sends whatever forged
//! message a test gives it through the same libp2p request-response protocol nodes use.

use std::time::Duration;

use accord_catalogue::{Replica, Seed, Stored, genesis};
use accord_net::libp2p::request_response::{self, Message};
use accord_net::libp2p::swarm::SwarmEvent;
use accord_net::libp2p::{Multiaddr, PeerId, Swarm};
use accord_net::{Behaviour, BehaviourEvent, SyncMessage, SyncReply};
use accord_trust::{RootChain, SecretKey};
use futures::StreamExt;

/// What became of a forged message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The target answered (it applied the message).
    Answered,
    /// The target closed the connection instead of answering.
    Disconnected,
}

pub struct HostilePeer {
    swarm: Swarm<Behaviour>,
    target: PeerId,
    pub replica: Replica,
}

impl std::fmt::Debug for HostilePeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostilePeer")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl HostilePeer {
    /// Connects to the node at `addr` with `key` (a node key the root lists).
    pub async fn connect(
        key: SecretKey,
        seed: &Seed,
        chain: RootChain,
        target_key: &[u8; 32],
        addr: Multiaddr,
        deadline: Duration,
    ) -> Result<HostilePeer, String> {
        let target = accord_net::peer_id(target_key).map_err(|e| e.to_string())?;
        let mut swarm = accord_net::build(
            accord_net::keypair(key.seed_bytes()).map_err(|e| e.to_string())?,
            &[target],
            accord_net::Options::default(),
        )
        .map_err(|e| e.to_string())?;
        let anchor = hex::encode(chain.anchor_digest());
        let (doc, hash) = genesis::build(seed, &anchor).map_err(|e| e.to_string())?;
        let stored = Stored {
            snapshot: Some(doc.save()),
            ..Stored::default()
        };
        let replica = Replica::open(hash, stored, key, chain).map_err(|e| e.to_string())?;
        swarm.dial(addr).map_err(|e| e.to_string())?;
        let mut me = HostilePeer {
            swarm,
            target,
            replica,
        };
        tokio::time::timeout(deadline, async {
            loop {
                match me.swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == me.target => {
                        return Ok(());
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(format!("the target refused the connection: {error}"));
                    }
                    SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == me.target => {
                        return Err("the target closed the connection".to_owned());
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| "the target never accepted the connection".to_owned())??;
        Ok(me)
    }

    /// Syncs honestly until neither side has anything to say.
    pub async fn sync(&mut self, deadline: Duration) -> Result<(), String> {
        let peer = self.target.to_string();
        tokio::time::timeout(deadline, async {
            for _ in 0..100 {
                let Some(m) = self.replica.generate_message(&peer) else {
                    return Ok(());
                };
                if let Some(reply) = self.request(m).await? {
                    match self.replica.receive_message(&peer, &reply, 1_800_000_000) {
                        Ok(_) => {}
                        // As a node does (`accord_service`): a message that cannot be
                        // verified yet (a Bloom filter hid a dependency) is no violation;
                        // the next message asks for what is missing.
                        Err(e) if !e.is_violation() => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
            Err("sync did not go quiet".to_owned())
        })
        .await
        .map_err(|_| "sync timed out".to_owned())?
    }

    /// Sends one (forged) message and reports whether the target answered or hung up.
    pub async fn send(&mut self, bytes: Vec<u8>, deadline: Duration) -> Result<Outcome, String> {
        tokio::time::timeout(deadline, async {
            match self.request(bytes).await {
                Ok(_) => Ok(Outcome::Answered),
                Err(e) if e == "disconnected" => Ok(Outcome::Disconnected),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|_| "no answer and no disconnect".to_owned())?
    }

    /// Whether the target still lets this key connect.
    pub async fn redial(&mut self, addr: Multiaddr, deadline: Duration) -> bool {
        if self.swarm.dial(addr).is_err() {
            return false;
        }
        tokio::time::timeout(deadline, async {
            loop {
                match self.swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == self.target => {
                        // A refused key is closed right after the handshake: wait to see.
                        match tokio::time::timeout(Duration::from_secs(2), self.closed()).await {
                            Ok(()) => return false,
                            Err(_) => return true,
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { .. } => return false,
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    async fn closed(&mut self) {
        loop {
            if let SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } = self.swarm.select_next_some().await
                && peer_id == self.target
            {
                return;
            }
        }
    }

    /// One request; `Ok(reply)` when answered, `Err("disconnected")` when the target hung up.
    async fn request(&mut self, bytes: Vec<u8>) -> Result<Option<Vec<u8>>, String> {
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&self.target, SyncMessage(bytes));
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response: SyncReply(reply),
                        },
                    ..
                })) if request_id == id => return Ok(reply.map(|m| m.0)),
                SwarmEvent::Behaviour(BehaviourEvent::Sync(
                    request_response::Event::OutboundFailure { request_id, .. },
                )) if request_id == id => return Err("disconnected".into()),
                SwarmEvent::ConnectionClosed {
                    peer_id,
                    num_established: 0,
                    ..
                } if peer_id == self.target => return Err("disconnected".into()),
                // Answer the target's own sync requests honestly, so it keeps talking.
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    peer,
                    message:
                        Message::Request {
                            request, channel, ..
                        },
                    ..
                })) => {
                    let p = peer.to_string();
                    let _ = self.replica.receive_message(&p, &request.0, 1_800_000_000);
                    let reply = self.replica.generate_message(&p).map(SyncMessage);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, SyncReply(reply));
                }
                _ => {}
            }
        }
    }
}
