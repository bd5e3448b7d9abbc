//! Production is bound to the bytes the leads signed (ADR 0005), tried with real node
//! processes as an attacker would: a listed node re-proposes a live release with other
//! bytes during a partition; a hostile program holding a listed node key sends forbidden
//! changes; a node key is replaced by a new root; a second node of a jurisdiction, holding
//! nothing, must not promote on its peer's word.

mod common;

use std::path::Path;
use std::time::Duration;

use accord_testsupport::forge::{self, Forger};
use accord_testsupport::peer::{HostilePeer, Outcome};
use common::cluster::{
    Cluster, cluster, eventually, extra_node, field, metric, nodes, tcp_port, wait_up,
};
use common::releases::*;
use common::{PASS, accord, cooperative, ok, refused, signed_root, successor_root};

const KEY: &str = "CAP-B01@1.4.0";
const ALL_SIGNERS: [&str; 5] = ["uk/lead", "eu/lead", "ca/lead", "au/lead", "uk/security"];

fn hook_config(d: &Path, j: &str) -> String {
    format!(
        "on_promote = \"env | sort > {}\"\n",
        d.join(format!("{j}-hook.env")).display()
    )
}

fn release_files(d: &Path, dir: &str, seed: u8) -> Vec<String> {
    std::fs::create_dir_all(d.join(dir)).expect("mkdir");
    let mut out = Vec::new();
    for (name, size) in [("chart.tgz", 200_000usize), ("image.tar", 1_500_000)] {
        let data: Vec<u8> = (0..size)
            .map(|i| (i as u8).wrapping_mul(13) ^ seed)
            .collect();
        std::fs::write(d.join(dir).join(name), data).expect("write");
        out.push(format!("{dir}/{name}"));
    }
    out
}

fn propose_at(d: &Path, at: &str, files: &[String]) {
    let mut args = vec!["release", "propose", "CAP-B01", "1.4.0"];
    args.extend(files.iter().map(String::as_str));
    let data = format!("{at}-data");
    args.extend(["--data-dir", &data]);
    ok(accord(d, &args));
}

/// UK promotes CAP-B01@1.4.0 signed by all four leads and security. EU, partitioned (its
/// node was never running), proposes other bytes under the same name and reconnects. Both
/// statements are kept and the conflict is shown, counted and audited; UK's production,
/// its hook and its fetch keep serving exactly the approved bytes; EU's statement is
/// promoted nowhere.
#[test]
fn a_re_proposal_during_a_partition_never_reaches_production() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    add_config(d, "uk", &hook_config(d, "uk"));
    start_all(&mut c, d, &[0, 2, 3]);
    let approved = release_files(d, "approved", 1);
    propose_at(d, "uk", &approved);
    assert!(
        eventually(60, || [0, 2, 3].iter().all(|&i| mirrored(d, i, KEY))),
        "not mirrored"
    );
    for s in ALL_SIGNERS {
        ok(sign(d, KEY, s, "uk"));
    }
    assert!(
        eventually(30, || [0, 2, 3].iter().all(|&i| state(d, i, KEY) == "live")),
        "not promoted: {}",
        reasons(d, 0, KEY)
    );
    let approved_id = statements(d, 0, KEY)[0].0.clone();

    // EU, cut off, proposes other bytes as the same CAP@VER, then comes back.
    let other = release_files(d, "other", 99);
    propose_at(d, "eu", &other);
    c.start(1);
    wait_up(d, 1);
    assert!(
        eventually(30, || metric(d, 0, "accord_release_equivocations") == 1.0),
        "UK never saw the second statement"
    );
    let both = statements(d, 0, KEY);
    assert_eq!(both.len(), 2, "{both:?}");
    let rival_id = both
        .iter()
        .find(|(id, _)| *id != approved_id)
        .expect("rival")
        .0
        .clone();
    assert!(both.iter().any(|(_, by)| by.contains("eu")), "{both:?}");
    assert!(both.iter().any(|(_, by)| by.contains("uk")), "{both:?}");

    // Status names both, with their proposers and the conflict.
    let r = ok(accord(
        d,
        &["release", "status", KEY, "--data-dir", "uk-data"],
    ));
    assert!(r.stdout.contains("CONFLICT"), "{}", r.stdout);
    assert!(r.stdout.contains(&approved_id[..12]) && r.stdout.contains(&rival_id[..12]));

    // Production on UK serves exactly the approved bytes.
    ok(accord(
        d,
        &[
            "fetch",
            KEY,
            "--channel",
            "production",
            "--out",
            "prod",
            "--data-dir",
            "uk-data",
        ],
    ));
    for f in &approved {
        let name = Path::new(f).file_name().expect("name");
        assert_eq!(
            std::fs::read(d.join("prod").join(name)).expect("served"),
            std::fs::read(d.join(f)).expect("approved"),
            "production served other bytes than the approved ones"
        );
    }
    // The staging channel refuses the ambiguous name, and serves each statement by its id.
    let r = refused(accord(
        d,
        &["fetch", KEY, "--out", "staging", "--data-dir", "uk-data"],
    ));
    assert!(r.stderr.contains("conflicting statements"), "{}", r.stderr);
    // The hook ran for the approved statement with its pinned digests.
    let env = std::fs::read_to_string(d.join("uk-hook.env")).expect("hook ran");
    assert!(
        env.contains(&format!("ACCORD_RELEASE_ID={approved_id}")),
        "{env}"
    );
    // Nothing of the node's environment but PATH: no passphrase, no HOME, no USER.
    assert!(!env.contains("ACCORD_PASSPHRASE"), "{env}");
    for inherited in ["HOME=", "USER=", "LOGNAME=", "ACCORD_LOG="] {
        assert!(!env.lines().any(|l| l.starts_with(inherited)), "{env}");
    }
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");

    // EU's statement is promoted nowhere; EU itself promotes the approved one.
    let rival = format!("{KEY}#{}", &rival_id[..12]);
    assert!(
        eventually(30, || state(
            d,
            1,
            KEY.to_owned() + "#" + &approved_id[..12]
        ) == "live"),
        "EU did not promote the approved statement"
    );
    for i in 0..4 {
        assert!(
            eventually(10, || state(d, i, &rival) == "conflict"),
            "node {i}: {}",
            reasons(d, i, &rival)
        );
    }
    let r = ok(accord(d, &["audit", "list", "--data-dir", "uk-data"]));
    assert!(r.stdout.contains("equivocation"), "{}", r.stdout);
    c.stop_all();
    // Offline, the same answers from the data dir alone.
    ok(accord(
        d,
        &[
            "fetch",
            KEY,
            "--channel",
            "production",
            "--out",
            "prod2",
            "--data-dir",
            "uk-data",
        ],
    ));
    assert_eq!(
        std::fs::read(d.join("prod2/chart.tgz")).expect("served"),
        std::fs::read(d.join("approved/chart.tgz")).expect("approved")
    );
}

fn state<S: AsRef<str>>(d: &Path, i: usize, key: S) -> String {
    common::releases::state(d, i, key.as_ref())
}

/// AU's node key in a hostile program's hands: it syncs honestly with UK, then sends every
/// forbidden write it can forge (delete a recall, delete an approval, replace a release
/// statement, overwrite UK's promotion note, …), each properly signed with AU's key. UK
/// refuses each, hangs up, counts it, and nothing changes; honest nodes keep converging.
#[test]
fn a_hostile_listed_node_is_refused_and_honest_nodes_keep_converging() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    // No ban here, so that every forbidden write is tried (bans: node/tests/hardening.rs).
    add_config(d, "uk", "[limits]\nstrikes_before_ban = 1000\n");
    start_all(&mut c, d, &[0, 1, 2]);
    let files = release_files(d, "release", 3);
    propose_at(d, "eu", &files);
    assert!(eventually(60, || [0, 1, 2]
        .iter()
        .all(|&i| mirrored(d, i, KEY))));
    for s in ALL_SIGNERS {
        ok(sign(d, KEY, s, "eu"));
    }
    assert!(eventually(30, || (0..3).all(|i| state(d, i, KEY) == "live")));
    // A recall, signed by one lead only (below its threshold): it is history all the same.
    ok(accord(
        d,
        &[
            "release",
            "recall",
            KEY,
            "--reason",
            "suspected CVE",
            "--key",
            "uk/lead.key",
            "--yes",
            "--data-dir",
            "uk-data",
        ],
    ));
    let before = |i: usize| {
        release_view(d, i, KEY).map(|v| {
            (
                v["statements"].as_array().map(Vec::len),
                v["signatures"].clone(),
                v["promoted_on"].clone(),
            )
        })
    };
    assert!(eventually(20, || before(0).is_some_and(|b| b.0 == Some(1))));
    let snapshot = before(0);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let au_key = accord_trust::SecretKey::read(&d.join("au/node.key"), PASS).expect("au key");
    let uk_pub = accord_trust::PublicKey::read(&d.join("uk/node.key.pub")).expect("uk pub");
    let chain = accord_trust::RootChain::anchor(&std::fs::read(d.join("root.json")).expect("root"))
        .expect("chain");
    let seed = accord_catalogue::Seed::parse(
        include_str!("../../config/catalogue.toml"),
        "catalogue.toml",
    )
    .expect("seed");
    let addr: accord_net::libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", tcp_port(d, 0))
        .parse()
        .expect("addr");
    let cases = forge::forbidden_writes();
    for (n, (what, _, f)) in cases.iter().enumerate() {
        let rejected_before = metric(d, 0, "accord_sync_rejected_messages_total");
        let outcome = rt.block_on(async {
            let mut peer = HostilePeer::connect(
                accord_trust::SecretKey::from_seed(&au_key.seed_bytes()).expect("key"),
                &seed,
                chain.clone(),
                &uk_pub.raw(),
                addr.clone(),
                Duration::from_secs(20),
            )
            .await
            .expect("connect");
            peer.sync(Duration::from_secs(30))
                .await
                .expect("honest sync");
            let doc = peer.replica.doc().clone();
            let forger =
                Forger::new(accord_trust::SecretKey::from_seed(&au_key.seed_bytes()).expect("key"));
            let change = forger.change(&doc, 1_800_000_000 + n as i64, |tx| f(&doc, tx));
            let m = forger.message(vec![change.hash()], &[change]);
            peer.send(m, Duration::from_secs(20))
                .await
                .expect("outcome")
        });
        assert_eq!(outcome, Outcome::Disconnected, "{what}: UK did not hang up");
        assert!(
            eventually(10, || metric(d, 0, "accord_sync_rejected_messages_total")
                > rejected_before),
            "{what}: not counted"
        );
    }
    assert_eq!(before(0), snapshot, "the hostile node changed UK's history");

    // Honest nodes keep converging.
    common::cluster::edit(d, "eu", "CAP-H01", "effort=after the attack");
    assert!(
        eventually(20, || ["uk", "ca"]
            .iter()
            .all(|j| field(d, j, "CAP-H01", "effort") == "after the attack")),
        "honest edits stopped flowing"
    );
}

/// Root v2 replaces UK's node key. Applied at EU, it reaches CA and AU through the
/// catalogue, and every node drops the old key at once; the old UK node is cut off and
/// refuses to install a root that retires it; a new UK node, initialised under the chain
/// v1→v2 with the new key, syncs the whole history including what the old key wrote
/// before; the old key can no longer connect anywhere.
#[test]
fn a_replaced_node_key_keeps_its_history_and_loses_the_network() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    start_all(&mut c, d, &[0, 1, 2, 3]);
    common::cluster::edit(d, "uk", "CAP-E02", "effort=written by the old uk key");
    assert!(eventually(20, || (1..4).all(|i| field(
        d,
        common::J[i],
        "CAP-E02",
        "effort"
    ) == "written by the old uk key")));

    successor_root(d, "uk/node.key", "uk/node2.key", &["uk", "eu", "ca"]);
    ok(accord(
        d,
        &["root", "apply", "root2.json", "--data-dir", "eu-data"],
    ));
    assert!(
        eventually(30, || (1..4)
            .all(|i| metric(d, i, "accord_root_version") == 2.0)),
        "v2 did not reach every node"
    );
    assert!(
        eventually(30, || common::cluster::connected(d, 0).is_empty()),
        "a node still talks to the replaced key"
    );
    let r = refused(accord(
        d,
        &["root", "apply", "root2.json", "--data-dir", "uk-data"],
    ));
    assert!(
        r.stderr.contains("no longer lists this node's key"),
        "{}",
        r.stderr
    );
    c.stop(0, false);

    extra_node(
        d,
        "uk2",
        "uk",
        "uk/node2.key",
        &["root.json", "root2.json"],
        "",
    );
    let uk2 = c.add("uk2");
    c.start(uk2);
    wait_up(d, "uk2");
    assert!(
        eventually(30, || field(d, "uk2", "CAP-E02", "effort")
            == "written by the old uk key"),
        "the new UK node did not sync the old key's history"
    );
    // Attributable: the history names the old key, retired since.
    let h = ok(accord(
        d,
        &["catalogue", "history", "CAP-E02", "--data-dir", "uk2-data"],
    ));
    assert!(h.stdout.contains("since retired"), "{}", h.stdout);
    common::cluster::edit(d, "uk2", "CAP-E03", "effort=written by the new uk key");
    assert!(eventually(20, || (1..4).all(|i| field(
        d,
        common::J[i],
        "CAP-E03",
        "effort"
    ) == "written by the new uk key")));

    // The old key is off every allow-list.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let old = accord_trust::SecretKey::read(&d.join("uk/node.key"), PASS).expect("old key");
    let eu_pub = accord_trust::PublicKey::read(&d.join("eu/node.key.pub")).expect("eu pub");
    let chain = accord_trust::RootChain::anchor(&std::fs::read(d.join("root.json")).expect("root"))
        .expect("chain");
    let seed = accord_catalogue::Seed::parse(
        include_str!("../../config/catalogue.toml"),
        "catalogue.toml",
    )
    .expect("seed");
    let addr: accord_net::libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", tcp_port(d, 1))
        .parse()
        .expect("addr");
    let synced = rt.block_on(async {
        match HostilePeer::connect(
            old,
            &seed,
            chain,
            &eu_pub.raw(),
            addr,
            Duration::from_secs(10),
        )
        .await
        {
            Ok(mut p) => p.sync(Duration::from_secs(10)).await.is_ok(),
            Err(_) => false,
        }
    });
    assert!(!synced, "EU still syncs with the replaced key");
}

/// The root lists two UK node keys. The second UK node mirrors nothing (its artifact cap
/// is 0). The first UK node holds every artifact and promotes; the second sees every
/// signature and UK's note, yet stays waiting on its own missing bytes and serves nothing
/// from production.
#[test]
fn a_node_promotes_only_what_its_own_store_holds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    cooperative(d);
    ok(accord(d, &["keys", "generate", "--out", "uk/node2.key"]));
    let spec = std::fs::read_to_string(d.join("root.toml"))
        .expect("spec")
        .replace(
            "node = { keys = [\"uk/node.key.pub\"] }",
            "node = { keys = [\"uk/node.key.pub\", \"uk/node2.key.pub\"] }",
        );
    assert!(spec.contains("uk/node2.key.pub"));
    std::fs::write(d.join("root.toml"), spec).expect("spec");
    signed_root(d);
    let mut c: Cluster = nodes(d);
    extra_node(
        d,
        "uk2",
        "uk",
        "uk/node2.key",
        &["root.json"],
        "[mirror]\nmax_artifact_mib = 0\n",
    );
    let uk2 = c.add("uk2");
    start_all(&mut c, d, &[0, 1, 2, 3, uk2]);
    propose(d, "1.4.0");
    // Each lead signs at its own node: wait until every node holds the statement.
    assert!(
        eventually(30, || (0..4).all(|i| !statements(d, i, KEY).is_empty())),
        "the statement did not reach every node"
    );
    for (s, at) in [
        ("uk/lead", "uk"),
        ("eu/lead", "eu"),
        ("ca/lead", "ca"),
        ("au/lead", "au"),
        ("uk/security", "uk"),
    ] {
        ok(sign(d, KEY, s, at));
    }
    assert!(
        eventually(60, || (0..4).all(|i| state(d, i, KEY) == "live")),
        "the four main nodes did not promote"
    );
    // UK2 has every signature and knows UK promoted; it still holds nothing itself.
    assert!(
        eventually(30, || {
            let r = common::releases::reasons(d, "uk2", KEY);
            r.contains("0% mirrored") && !r.contains("missing lead")
        }),
        "{}",
        common::releases::reasons(d, "uk2", KEY)
    );
    assert_eq!(common::releases::state(d, "uk2", KEY), "waiting");
    assert_eq!(metric(d, "uk2", "accord_promotions_total"), 0.0);
    let r = refused(accord(
        d,
        &[
            "fetch",
            KEY,
            "--channel",
            "production",
            "--out",
            "prod",
            "--data-dir",
            "uk2-data",
        ],
    ));
    assert!(r.stderr.contains("not promoted"), "{}", r.stderr);
}
