//! Three real swarms on 127.0.0.1: two cooperative nodes that allow each other, and a
//! stranger. The nodes connect and carry a sync request and its reply; the stranger is
//! refused in both directions before any application data is exchanged.

use std::time::Duration;

use accord_net::{Behaviour, BehaviourEvent, SyncMessage, SyncReply, build, keypair, peer_id};
use futures::StreamExt;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};

type Ev = SwarmEvent<BehaviourEvent>;
type Swarms = [Swarm<Behaviour>; 3];

fn node(label: &str, allowed: &[PeerId]) -> (Swarm<Behaviour>, PeerId) {
    let k = accord_trust::testkit::key(label, 0);
    let id = peer_id(&k.public().raw()).expect("peer id");
    let swarm = build(
        keypair(k.seed_bytes()).expect("keypair"),
        allowed,
        Default::default(),
    )
    .expect("swarm");
    assert_eq!(
        *swarm.local_peer_id(),
        id,
        "PeerId derives from the node key"
    );
    (swarm, id)
}

fn id_of(label: &str) -> PeerId {
    peer_id(&accord_trust::testkit::key(label, 0).public().raw()).expect("peer id")
}

/// Drives all three swarms, handing each event to `on` until it returns true or time is up.
async fn pump(
    swarms: &mut Swarms,
    secs: u64,
    mut on: impl FnMut(usize, Ev, &mut Swarms) -> bool,
) -> bool {
    let deadline = tokio::time::sleep(Duration::from_secs(secs));
    tokio::pin!(deadline);
    loop {
        let (i, ev) = {
            let [a, b, c] = &mut *swarms;
            tokio::select! {
                ev = a.select_next_some() => (0, ev),
                ev = b.select_next_some() => (1, ev),
                ev = c.select_next_some() => (2, ev),
                _ = &mut deadline => return false,
            }
        };
        if on(i, ev, swarms) {
            return true;
        }
    }
}

async fn listen(swarms: &mut Swarms, i: usize) -> Multiaddr {
    swarms[i]
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
        .expect("listen");
    let mut addr = None;
    pump(swarms, 10, |j, ev, _| match (j == i, ev) {
        (true, SwarmEvent::NewListenAddr { address, .. }) => {
            addr = Some(address);
            true
        }
        _ => false,
    })
    .await;
    addr.expect("listening")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_nodes_sync_and_strangers_are_refused() {
    let (uk, uk_id) = node("uk.node.0", &[id_of("eu.node.0")]);
    let (eu, eu_id) = node("eu.node.0", &[id_of("uk.node.0")]);
    // The stranger would let anyone in; it is the cooperative's nodes that refuse it.
    let (stranger, stranger_id) = node("outsider", &[uk_id, eu_id]);
    let mut swarms = [uk, eu, stranger];
    let uk_addr = listen(&mut swarms, 0).await;
    let stranger_addr = listen(&mut swarms, 2).await;

    // EU dials UK and sends a sync request; UK answers with its own message.
    swarms[1].dial(uk_addr.clone()).expect("dial");
    let replied = pump(&mut swarms, 20, |i, ev, s| {
        match (i, ev) {
            (1, SwarmEvent::ConnectionEstablished { peer_id, .. }) if peer_id == uk_id => {
                s[1].behaviour_mut()
                    .sync
                    .send_request(&uk_id, SyncMessage(b"hello from eu".to_vec()));
            }
            (
                0,
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    peer,
                    message:
                        Message::Request {
                            request, channel, ..
                        },
                    ..
                })),
            ) => {
                assert_eq!(peer, eu_id);
                assert_eq!(request.0, b"hello from eu");
                s[0].behaviour_mut()
                    .sync
                    .send_response(
                        channel,
                        SyncReply(Some(SyncMessage(b"hello from uk".to_vec()))),
                    )
                    .expect("respond");
            }
            (
                1,
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: Message::Response { response, .. },
                    ..
                })),
            ) => {
                assert_eq!(
                    response,
                    SyncReply(Some(SyncMessage(b"hello from uk".to_vec())))
                );
                return true;
            }
            _ => {}
        }
        false
    })
    .await;
    assert!(replied, "allowed nodes did not complete a sync exchange");

    // The stranger dials UK: UK refuses it after the handshake; no request gets through.
    swarms[2].dial(uk_addr).expect("dial");
    let mut uk_denied = false;
    let mut stranger_closed = false;
    pump(&mut swarms, 20, |i, ev, s| {
        match (i, ev) {
            (0, SwarmEvent::IncomingConnectionError { .. }) => uk_denied = true,
            (0, SwarmEvent::ConnectionEstablished { peer_id, .. }) if peer_id == stranger_id => {
                panic!("UK kept a connection with a stranger")
            }
            (2, SwarmEvent::ConnectionEstablished { peer_id, .. }) if peer_id == uk_id => {
                s[2].behaviour_mut()
                    .sync
                    .send_request(&uk_id, SyncMessage(b"let me in".to_vec()));
            }
            (2, SwarmEvent::ConnectionClosed { peer_id, .. }) if peer_id == uk_id => {
                stranger_closed = true
            }
            (
                0,
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    ..
                })),
            ) => {
                panic!("a stranger's request reached UK")
            }
            _ => {}
        }
        uk_denied && stranger_closed
    })
    .await;
    assert!(uk_denied, "UK did not refuse the stranger");
    assert!(stranger_closed, "the stranger's connection was not closed");

    // And UK refuses to dial the stranger.
    assert!(
        swarms[0].dial(stranger_addr).is_err() || {
            let mut denied = false;
            pump(&mut swarms, 10, |i, ev, _| {
                if let (0, SwarmEvent::OutgoingConnectionError { .. }) = (i, ev) {
                    denied = true;
                }
                denied
            })
            .await;
            denied
        }
    );
    assert!(!swarms[0].is_connected(&stranger_id));
}
