//! Four real `accord node run` processes on 127.0.0.1: catalogue edits made on each node
//! while it was offline reach all four once they run, and survive SIGTERM, SIGKILL and
//! restarts.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::*;
use common::*;

/// Whether every node in `which` shows every (capability, field, value).
fn holds(d: &Path, which: &[usize], expect: &[(&str, &str, &str)]) -> bool {
    which.iter().all(|&i| {
        expect
            .iter()
            .all(|(cap, name, value)| field(d, J[i], cap, name) == *value)
    })
}

#[test]
fn four_nodes_converge_across_restarts_and_sigkill() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);

    // Each jurisdiction edits its own capability while offline.
    edit(d, "uk", "CAP-B01", "status=staging");
    edit(d, "eu", "CAP-A02", "effort=EU team, 8 weeks");
    edit(d, "ca", "CAP-F01", "status=tendered");
    edit(d, "au", "CAP-G01", "priority=High");
    let first = [
        ("CAP-B01", "status", "staging"),
        ("CAP-A02", "effort", "EU team, 8 weeks"),
        ("CAP-F01", "status", "tendered"),
        ("CAP-G01", "priority", "High"),
    ];
    for i in 0..4 {
        c.start(i);
    }
    assert!(
        eventually(30, || holds(d, &[0, 1, 2, 3], &first)),
        "the offline edits did not reach all four nodes"
    );
    c.stop_all();

    // AU is away while UK and CA edit; EU is killed with SIGKILL once it holds UK's edit
    // (it committed it: the kill comes after, at a point the test sees); all converge later.
    edit(d, "uk", "CAP-E02", "effort=UK, 6 weeks");
    edit(d, "au", "CAP-E03", "effort=AU, 4 weeks");
    for i in [0, 1, 2] {
        c.start(i);
    }
    assert!(
        eventually(30, || holds(
            d,
            &[1],
            &[("CAP-E02", "effort", "UK, 6 weeks")]
        )),
        "EU never received UK's edit"
    );
    c.stop(1, true);
    c.stop_all();
    let second = [
        ("CAP-B01", "status", "staging"),
        ("CAP-E02", "effort", "UK, 6 weeks"),
        ("CAP-E03", "effort", "AU, 4 weeks"),
    ];
    for i in 0..4 {
        c.start(i);
    }
    assert!(
        eventually(30, || holds(d, &[0, 1, 2, 3], &second)),
        "the nodes did not converge after the SIGKILL"
    );
    c.stop_all();

    // While all four run: an edit on each node, made through its API by the CLI, becomes
    // visible on all four through theirs.
    for i in 0..4 {
        c.start(i);
    }
    let agent = agent();
    for i in 0..4 {
        wait_up(d, i);
    }
    let live = [
        ("CAP-C01", "uk"),
        ("CAP-C02", "eu"),
        ("CAP-C03", "ca"),
        ("CAP-D02", "au"),
    ];
    for (cap, j) in live {
        let r = ok(accord(
            d,
            &[
                "catalogue",
                "edit",
                cap,
                "--data-dir",
                &format!("{j}-data"),
                "--set",
                &format!("effort=live edit by {j}"),
            ],
        ));
        assert!(
            r.stdout.contains("through the running node"),
            "{}",
            r.stdout
        );
    }
    let seen = eventually(15, || {
        (0..4).all(|i| {
            live.iter().all(|(cap, j)| {
                let mut resp = match agent
                    .get(format!("{}/v1/catalogue/{cap}", api(d, i)))
                    .call()
                {
                    Ok(r) => r,
                    Err(_) => return false,
                };
                let v: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
                v["effort"] == format!("live edit by {j}")
            })
        })
    });
    assert!(seen, "live edits did not reach all four nodes within 15 s");
    // `accord node status` reads the running node's health, peers and counters.
    let r = ok(accord(d, &["node", "status", "--data-dir", "uk-data"]));
    assert!(
        r.stdout.contains("node uk") && r.stdout.contains("connected"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("accord_peers_connected"), "{}", r.stdout);

    // Writes need the token; metrics are Prometheus text.
    let resp = agent
        .post(format!("{}/v1/catalogue/CAP-B01", api(d, 0)))
        .send_json(serde_json::json!({ "set": [["status", "retired"]] }))
        .expect("post");
    assert_eq!(resp.status(), 401);
    let mut resp = agent
        .get(format!("{}/metrics", api(d, 1)))
        .call()
        .expect("metrics");
    let text = resp.body_mut().read_to_string().expect("text");
    for name in [
        "accord_peers_connected",
        "accord_sync_bytes_received_total",
        "accord_sync_rejected_messages_total",
        "accord_catalogue_heads_age_seconds",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    c.stop_all();

    // With the node stopped, status says so and the CLI falls back to the data dir.
    one_line_error(
        &accord(d, &["node", "status", "--data-dir", "uk-data"]),
        "no node is running",
    );
    assert_eq!(field(d, "uk", "CAP-C02", "effort"), "live edit by eu");

    // Invalid configs are refused at start with one line per problem.
    std::fs::write(d.join("bad.toml"), "jurisdiction = \"UK\"\ndata_dir = \"nowhere\"\nlisten = [\"not-an-addr\"]\napi = \"0.0.0.0:80\"\n").expect("bad");
    let r = accord(d, &["node", "run", "--config", "bad.toml"]);
    assert_eq!(r.code, 1);
    for needle in [
        "jurisdiction \"UK\"",
        "not initialised",
        "not a multiaddr",
        "not a loopback address",
    ] {
        assert!(
            r.stderr.contains(needle),
            "{needle:?} missing from:\n{}",
            r.stderr
        );
    }
}

/// The shipped example configs are valid except that their data directories do not exist
/// yet (they are made by `accord init`).
#[test]
fn example_configs_only_lack_their_data_dirs() {
    let tmp = tempfile::tempdir().expect("tmp");
    for j in J {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../config/{j}.toml"));
        let r = accord(
            tmp.path(),
            &["node", "run", "--config", cfg.to_str().expect("path")],
        );
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.contains("has 1 problem(s)") && r.stderr.contains("not initialised"),
            "{j}: {}",
            r.stderr
        );
    }
}

/// A listed peer that sends garbage is disconnected and counted, and the honest nodes keep
/// syncing; a node whose key is not in the root never gets a connection.
#[test]
fn hostile_and_unlisted_peers_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    // UK and CA run; EU's key is used by a hostile program instead of EU's node.
    c.start(0);
    c.start(2);
    wait_up(d, 0);
    wait_up(d, 2);
    let uk_port = tcp_port(d, 0);
    let eu_key = accord_trust::SecretKey::read(&d.join("eu/node.key"), PASS).expect("eu key");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let uk_pub = accord_trust::PublicKey::read(&d.join("uk/node.key.pub")).expect("uk pub");
    let uk_peer = accord_net::peer_id(&uk_pub.raw()).expect("uk peer");
    let closed = rt.block_on(hostile_peer(eu_key.seed_bytes(), uk_peer, uk_port));
    assert!(closed, "UK did not drop the peer that sent garbage");
    assert!(metric(d, 0, "accord_sync_rejected_messages_total") >= 1.0);

    // The same listed peer syncs honestly, but forges the signature of a change it sends:
    // framed correctly, refused all the same, and nothing of it lands on UK.
    let forged = rt.block_on(forging_peer(d, eu_key, uk_peer, uk_port));
    assert!(forged, "UK did not drop the peer that sent a forged change");
    assert!(metric(d, 0, "accord_sync_rejected_messages_total") >= 2.0);
    assert_ne!(
        field(d, "uk", "CAP-H01", "effort"),
        "forged effort",
        "the forged change reached UK"
    );

    // UK and CA still sync: an edit on UK reaches CA.
    ok(accord(
        d,
        &[
            "catalogue",
            "edit",
            "CAP-H01",
            "--data-dir",
            "uk-data",
            "--set",
            "effort=after the attack",
        ],
    ));
    let agent = agent();
    assert!(
        eventually(15, || field(d, "ca", "CAP-H01", "effort")
            == "after the attack"),
        "CA stopped syncing with UK after the attack"
    );

    // A node of another cooperative (its key is not in our root) dials UK: refused.
    let other = d.join("other");
    std::fs::create_dir_all(other.join("x")).expect("mkdir");
    let mut spec = String::from(
        "version = 1\nexpires = \"2099-01-01T00:00:00Z\"\n[principals.x]\nname = \"x\"\n",
    );
    for role in ROLES {
        ok(accord(
            &other,
            &["keys", "generate", "--out", &format!("x/{role}.key")],
        ));
        spec.push_str(&format!("{role} = {{ keys = [\"x/{role}.key.pub\"] }}\n"));
    }
    spec.push_str("[rules]\npromote = [{ role = \"lead\", threshold = 1 }]\nrecall = [{ role = \"lead\", threshold = 1 }]\nconditional = [{ role = \"steering\", threshold = 1 }]\nroot = [{ role = \"steering\", threshold = 1 }]\n");
    std::fs::write(other.join("root.toml"), spec).expect("spec");
    ok(accord(
        &other,
        &["root", "new", "--spec", "root.toml", "--out", "root.json"],
    ));
    ok(accord(
        &other,
        &["root", "sign", "root.json", "--key", "x/steering.key"],
    ));
    ok(accord(
        &other,
        &[
            "init",
            "--data-dir",
            "x-data",
            "--root",
            "root.json",
            "--node-key",
            "x/node.key",
        ],
    ));
    std::fs::write(
        other.join("x.toml"),
        format!("jurisdiction = \"x\"\ndata_dir = \"x-data\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nbootstrap = [\"/ip4/127.0.0.1/tcp/{uk_port}\"]\napi = \"127.0.0.1:0\"\nblobs_listen = \"127.0.0.1:0\"\n"),
    )
    .expect("cfg");
    let refusals = || {
        std::fs::read_to_string(d.join("uk.log"))
            .unwrap_or_default()
            .matches("refused an incoming connection")
            .count()
    };
    let before = refusals();
    let mut stranger = Command::new(env!("CARGO_BIN_EXE_accord"))
        .current_dir(&other)
        .args(["node", "run", "--config", "x.toml"])
        .env("ACCORD_PASSPHRASE", PASS)
        .env("ACCORD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stranger");
    assert!(
        eventually(30, || refusals() > before),
        "UK never saw the stranger's connection to refuse it"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
    // UK saw only CA (the one listed peer running), never the stranger.
    let mut r = agent
        .get(format!("{}/v1/peers", api(d, 0)))
        .call()
        .expect("peers");
    let peers: serde_json::Value = r.body_mut().read_json().expect("json");
    assert_eq!(connected(d, 0), vec!["ca"], "{peers}");
    c.stop_all();
    let log = std::fs::read_to_string(d.join("uk.log")).expect("log");
    assert!(log.contains("refused an incoming connection"), "{log}");
}

/// A swarm with node key `seed` that lets in only UK, dialling UK's TCP port.
fn dial_uk(
    seed: [u8; 32],
    uk: accord_net::libp2p::PeerId,
    uk_port: u16,
) -> accord_net::libp2p::Swarm<accord_net::Behaviour> {
    let kp = accord_net::keypair(seed).expect("keypair");
    let mut swarm = accord_net::build(kp, &[uk], Default::default()).expect("swarm");
    let addr: accord_net::libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{uk_port}")
        .parse()
        .expect("addr");
    swarm.dial(addr).expect("dial");
    swarm
}

/// Connects to UK with a listed key, sends garbage as a sync message, and reports whether
/// UK closed the connection.
async fn hostile_peer(seed: [u8; 32], uk: accord_net::libp2p::PeerId, uk_port: u16) -> bool {
    use accord_net::libp2p::futures::StreamExt;
    use accord_net::libp2p::swarm::SwarmEvent;
    let mut swarm = dial_uk(seed, uk, uk_port);
    let deadline = tokio::time::sleep(Duration::from_secs(15));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm.behaviour_mut().sync.send_request(&peer_id, accord_net::SyncMessage(vec![0xA1, 0x05, 1, 2, 3, 4, 5, 0]));
                }
                SwarmEvent::ConnectionClosed { .. } => return true,
                _ => {}
            },
            _ = &mut deadline => return false,
        }
    }
}

/// Connects to UK with a listed key and syncs honestly from a replica of EU's data dir that
/// holds a local edit, except that the first signature it sends is forged (one bit flipped).
/// Reports whether UK closed the connection.
async fn forging_peer(
    d: &Path,
    key: accord_trust::SecretKey,
    uk: accord_net::libp2p::PeerId,
    uk_port: u16,
) -> bool {
    use accord_catalogue::wire::WireMessage;
    use accord_net::libp2p::futures::StreamExt;
    use accord_net::libp2p::request_response::{Event, Message};
    use accord_net::libp2p::swarm::SwarmEvent;
    use accord_net::{BehaviourEvent, SyncMessage};

    let seed = key.seed_bytes();
    let db = accord_store::NodeDb::open(&d.join("eu-data/node.redb")).expect("eu db");
    let genesis: [u8; 32] = db
        .get_meta("genesis")
        .expect("meta")
        .expect("genesis")
        .as_slice()
        .try_into()
        .expect("32 bytes");
    let root = accord_trust::RootChain::anchor(&std::fs::read(d.join("root.json")).expect("root"))
        .expect("root");
    let mut replica = accord_catalogue::Replica::open(
        automerge::ChangeHash(genesis),
        db.load_catalogue().expect("stored"),
        key,
        root,
    )
    .expect("replica");
    let spec = accord_catalogue::edit::EditSpec {
        set: vec![("effort".into(), "forged effort".into())],
        ..Default::default()
    };
    replica
        .edit(1_800_000_000, "forged", |tx| spec.apply(tx, "CAP-H01"))
        .expect("edit");
    let peer = uk.to_string();
    replica.connect(&peer);
    // Our next message, with its first signature forged if it carries one.
    let forged_once = std::cell::Cell::new(false);
    let outgoing = |replica: &mut accord_catalogue::Replica| -> Option<SyncMessage> {
        let bytes = replica.generate_message(&peer)?;
        let mut w = WireMessage::decode(&bytes, "me").expect("own message");
        if let Some(sig) = w.signatures.first_mut() {
            sig[10] ^= 1;
            forged_once.set(true);
        }
        Some(SyncMessage(w.encode()))
    };

    let mut swarm = dial_uk(seed, uk, uk_port);
    let deadline = tokio::time::sleep(Duration::from_secs(15));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    if let Some(m) = outgoing(&mut replica) {
                        swarm.behaviour_mut().sync.send_request(&peer_id, m);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(Event::Message { peer: p, message, .. })) => {
                    let incoming = match message {
                        Message::Response { response, .. } => response.0,
                        Message::Request { request, .. } => Some(request),
                    };
                    if let Some(m) = incoming {
                        replica.receive_message(&peer, &m.0, 1_800_000_000).expect("UK's messages are honest");
                    }
                    if let Some(m) = outgoing(&mut replica) {
                        swarm.behaviour_mut().sync.send_request(&p, m);
                    }
                }
                SwarmEvent::ConnectionClosed { .. } => return forged_once.get(),
                _ => {}
            },
            _ = &mut deadline => return false,
        }
    }
}

/// A successor root that replaces CA's node key is installed on running UK with
/// `accord root apply`: UK drops CA at once and keeps refusing it; a root that is not a
/// valid successor is refused with the reason.
#[test]
fn a_new_root_changes_who_may_connect_at_runtime() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    c.start(0);
    c.start(2);
    wait_up(d, 0);
    wait_up(d, 2);
    assert!(
        eventually(20, || connected(d, 0) == ["ca"]),
        "UK and CA never connected"
    );

    successor_root(d, "ca/node.key", "ca/node2.key", &["uk", "eu", "ca"]);
    // Re-applying v1 is not a successor: refused, nothing changes.
    let r = refused(accord(
        d,
        &["root", "apply", "root.json", "--data-dir", "uk-data"],
    ));
    assert!(r.stderr.contains("already installed"), "{}", r.stderr);
    assert_eq!(metric(d, 0, "accord_root_version"), 1.0);

    let r = ok(accord(
        d,
        &["root", "apply", "root2.json", "--data-dir", "uk-data"],
    ));
    assert!(r.stdout.contains("root v2"), "{}", r.stdout);
    assert_eq!(metric(d, 0, "accord_root_version"), 2.0);
    assert!(
        eventually(10, || connected(d, 0).is_empty()),
        "UK kept CA's old key connected"
    );
    // CA keeps redialling; UK keeps refusing (seen in its log, not waited for blindly).
    let refusals = || {
        std::fs::read_to_string(d.join("uk.log"))
            .unwrap_or_default()
            .matches("refused an incoming connection")
            .count()
    };
    let before = refusals();
    assert!(
        eventually(60, || refusals() > before),
        "CA's redial was never refused"
    );
    assert!(connected(d, 0).is_empty());
    c.stop_all();
    // The new root is what UK trusts after a restart, too.
    let shown = ok(accord(d, &["root", "show", "uk-data/root.json", "--json"]));
    assert!(shown.stdout.contains("\"version\": 2"), "{}", shown.stdout);
}
