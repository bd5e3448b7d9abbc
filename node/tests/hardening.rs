//! The node holds against a hostile listed peer and a careless operator (issue 12), each
//! test written as the attack it stops: a web page's request under another Host name, an
//! empty token, a program listening on a crashed node's port, a restored old root.json, a
//! peer that keeps sending refused messages, a truncated audit log, proposals nobody
//! approved filling every node's disk, and a proposal whose statement lies about its bytes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use accord_testsupport::forge::{self, Forger};
use accord_testsupport::peer::{HostilePeer, Outcome};
use common::cluster::{agent, api, cluster, eventually, metric, tcp_port, wait_up};
use common::releases::*;
use common::{PASS, accord, ok, refused};

const KEY: &str = "CAP-B01@1.4.0";

/// Runs `accord node run` for `j` and waits (bounded) for it to exit by itself.
fn node_run_exits(d: &Path, j: &str) -> Option<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_accord"))
        .current_dir(d)
        .args(["node", "run", "--config", &format!("{j}.toml")])
        .env("ACCORD_PASSPHRASE", PASS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    for _ in 0..300 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err);
            return Some((status.code().unwrap_or(-1), err));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A web page the operator opens can make the browser send requests to 127.0.0.1 under
/// the page's own host name (DNS rebinding): refused. A token file that is empty or short
/// stops the node instead of switching authentication off.
#[test]
fn the_api_refuses_other_hosts_and_short_tokens() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    c.start(0);
    wait_up(d, 0);
    let url = api(d, 0);
    let r = agent()
        .get(format!("{url}/v1/audit"))
        .header("Host", "evil.example:7200")
        .call()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 421);
    let r = agent()
        .get(format!("{url}/v1/audit"))
        .call()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    c.stop(0, false);

    for short in ["", "abc", "0123456789"] {
        std::fs::write(d.join("uk-data/api.token"), short).expect("token");
        let (code, err) = node_run_exits(d, "uk").expect("the node kept running");
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("at least 32"), "{err}");
    }
}

/// After a crash, `api.addr` names a port anyone may now listen on. The CLI asks whoever
/// answers there to prove it holds the node key; an impostor never sees the token, and the
/// command works on the data directory instead.
#[test]
fn the_cli_sends_no_token_to_an_impostor_on_a_stale_port() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    c.start(0);
    wait_up(d, 0);
    c.stop(0, true);
    let addr = std::fs::read_to_string(d.join("uk-data/api.addr")).expect("api.addr stays");
    let token = std::fs::read_to_string(d.join("uk-data/api.token")).expect("token");
    let listener = std::net::TcpListener::bind(addr.trim()).expect("the port is free now");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                log.lock().expect("log").push_str(&line);
                line.clear();
            }
            let body = r#"{"status":"ok","keyid":"00","signature":"00"}"#;
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let r = ok(accord(
        d,
        &[
            "catalogue",
            "edit",
            "CAP-B01",
            "--set",
            "effort=offline edit",
            "--data-dir",
            "uk-data",
        ],
    ));
    assert!(
        r.stderr.contains("not this data directory's node"),
        "{}",
        r.stderr
    );
    let seen = seen.lock().expect("log").clone();
    assert!(
        seen.contains("/v1/identity"),
        "the impostor was not even asked: {seen}"
    );
    assert!(
        !seen.contains(token.trim()),
        "the token reached the impostor:\n{seen}"
    );
    assert!(
        !seen.to_ascii_lowercase().contains("authorization"),
        "{seen}"
    );
    assert_eq!(
        common::cluster::field(d, "uk", "CAP-B01", "effort"),
        "offline edit"
    );
}

#[cfg(unix)]
#[test]
fn a_node_keeps_its_files_to_itself() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    let mode = |p: &str| {
        std::fs::metadata(d.join(p))
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("uk-data"), 0o700);
    assert_eq!(mode("uk-data/node.redb"), 0o600);
    assert_eq!(mode("uk-data/node.key"), 0o600);
    // A backup restored with loose modes is tightened at the next start.
    std::fs::set_permissions(d.join("uk-data"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    c.start(0);
    wait_up(d, 0);
    assert_eq!(mode("uk-data"), 0o700);
    assert_eq!(mode("uk-data/blobs"), 0o700);
    assert_eq!(mode("uk-data/api.token"), 0o600);
}

/// A node that applied root v2 never runs on v1 again: a backup that brings back the old
/// root.json stops it with the reason.
#[test]
fn a_restored_old_root_json_does_not_roll_the_node_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let _c = cluster(d);
    common::successor_root(d, "ca/node.key", "ca/node2.key", &["uk", "eu", "ca"]);
    ok(accord(
        d,
        &["root", "apply", "root2.json", "--data-dir", "uk-data"],
    ));
    std::fs::copy(d.join("root.json"), d.join("uk-data/root.json")).expect("restore v1");
    let (code, err) = node_run_exits(d, "uk").expect("the node kept running");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("never rolls its root back"), "{err}");
}

/// A listed peer that keeps sending refused messages is banned (its reconnects get no
/// fresh start), the refusals are audited as one row per interval, not one per message.
#[test]
fn a_peer_that_keeps_breaking_the_rules_is_banned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    c.start(0);
    wait_up(d, 0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let au = accord_trust::SecretKey::read(&d.join("au/node.key"), PASS).expect("au key");
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
    let key = || accord_trust::SecretKey::from_seed(&au.seed_bytes()).expect("key");
    let attack = |n: i64| -> Result<Outcome, String> {
        rt.block_on(async {
            let mut peer = HostilePeer::connect(
                key(),
                &seed,
                chain.clone(),
                &uk_pub.raw(),
                addr.clone(),
                Duration::from_secs(20),
            )
            .await?;
            peer.sync(Duration::from_secs(30)).await?;
            let doc = peer.replica.doc().clone();
            let c = Forger::new(key()).change(&doc, 1_800_000_000 + n, |tx| {
                let caps = forge::top(tx, "capabilities");
                let b01 = automerge::ReadDoc::get(tx, &caps, "CAP-B01")?
                    .expect("b01")
                    .1;
                automerge::transaction::Transactable::delete(tx, &b01, "status")
            });
            let m = Forger::new(key()).message(vec![c.hash()], &[c]);
            peer.send(m, Duration::from_secs(20)).await
        })
    };
    for n in 0..3 {
        assert_eq!(attack(n), Ok(Outcome::Disconnected));
    }
    assert!(eventually(10, || metric(d, 0, "accord_peer_bans_total") == 1.0));
    // Banned: it does not even get to sync now.
    assert!(attack(3).is_err(), "a banned peer got back in");
    // One aggregated row for the refusals, plus the ban.
    assert!(
        eventually(10, || {
            let r = ok(accord(d, &["audit", "list", "--data-dir", "uk-data"]));
            r.stdout.contains("sync message(s) refused") && r.stdout.contains("banned for")
        }),
        "the refusals were not audited"
    );
    let r = ok(accord(d, &["audit", "list", "--data-dir", "uk-data"]));
    assert!(
        r.stdout.matches("sync message refused").count() == 0,
        "one row per message:\n{}",
        r.stdout
    );
}

/// Rows removed from the end of UK's audit log (a careless restore, or someone covering
/// tracks) no longer match the signed checkpoint every peer holds.
#[test]
fn a_truncated_audit_log_is_caught_by_the_checkpoints_peers_hold() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    add_config(d, "uk", "audit_checkpoint_secs = 1\n");
    start_all(&mut c, d, &[0, 1]);
    // Audited work at UK: a proposal.
    write(d, "chart.tgz", 10_000, 1);
    ok(accord(
        d,
        &[
            "release",
            "propose",
            "CAP-B01",
            "1.4.0",
            "release/chart.tgz",
            "--data-dir",
            "uk-data",
        ],
    ));
    let uk_rows = || {
        let r = ok(accord(
            d,
            &["audit", "list", "--data-dir", "uk-data", "--json"],
        ));
        serde_json::from_str::<serde_json::Value>(&r.stdout)
            .expect("json")
            .as_array()
            .map(Vec::len)
            .unwrap_or(0) as u64
    };
    let rows = uk_rows();
    assert!(rows >= 1);
    // EU holds UK's checkpoint of the whole log.
    assert!(
        eventually(30, || {
            let Ok(mut r) = agent().get(format!("{}/v1/catalogue", api(d, 1))).call() else {
                return false;
            };
            let v: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
            v["catalogue"]["checkpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["value"].as_array())
                .map(|bytes| {
                    bytes
                        .iter()
                        .filter_map(|b| b.as_u64().map(|b| b as u8))
                        .collect::<Vec<u8>>()
                })
                .filter_map(|b| accord_protocol::AuditCheckpoint::parse(&b).ok())
                .any(|(_, cp)| cp.jurisdiction.as_str() == "uk" && cp.seq >= rows)
        }),
        "EU never received UK's checkpoint"
    );
    c.stop_all();
    ok(accord(d, &["audit", "verify", "--data-dir", "uk-data"]));
    // Remove UK's newest audit row.
    {
        let db = redb::Database::open(d.join("uk-data/node.redb")).expect("redb");
        let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit_log");
        let tx = db.begin_write().expect("tx");
        {
            let mut t = tx.open_table(table).expect("table");
            let last = redb::ReadableTable::last(&t)
                .expect("last")
                .map(|(k, _)| k.value())
                .expect("a row");
            t.remove(last).expect("remove");
        }
        tx.commit().expect("commit");
    }
    for args in [
        vec!["audit", "verify", "--data-dir", "uk-data"],
        vec![
            "audit",
            "verify",
            "--data-dir",
            "uk-data",
            "--against",
            "eu-data",
        ],
    ] {
        let r = refused(accord(d, &args));
        assert!(r.stderr.contains("truncated"), "{args:?}: {}", r.stderr);
    }
}

/// Proposals nobody approved are mirrored only up to a quota per proposing jurisdiction;
/// beyond it they wait, visibly, until the leads sign.
#[test]
fn unapproved_proposals_are_mirrored_only_up_to_a_quota_per_proposer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    add_config(d, "uk", "[mirror]\nstaging_quota_mib = 1\n");
    start_all(&mut c, d, &[0, 1]);
    propose(d, "1.4.0"); // 2.3 MB at EU: over UK's 1 MiB quota for EU's proposals
    assert!(
        eventually(30, || release_view(d, 0, KEY).is_some_and(|v| {
            v["not_mirrored"]
                .as_str()
                .is_some_and(|r| r.contains("quota"))
        })),
        "{:?}",
        release_view(d, 0, KEY)
    );
    assert_eq!(metric(d, 0, "accord_mirror_held_back_releases"), 1.0);
    assert!(
        reasons(d, 0, KEY).contains("quota"),
        "{}",
        reasons(d, 0, KEY)
    );
    for s in ["uk/lead", "eu/lead", "ca/lead", "au/lead", "uk/security"] {
        ok(sign(d, KEY, s, "eu"));
    }
    assert!(
        eventually(60, || mirrored(d, 0, KEY)),
        "approved, still not mirrored: {:?}",
        release_view(d, 0, KEY)
    );
    assert_eq!(metric(d, 0, "accord_mirror_held_back_releases"), 0.0);
}

/// The other side of bans: honest nodes are never punished for being busy. A script
/// pushes 200 edits through the four APIs as fast as they are answered; every node
/// converges, and none counts a peer over budget, refuses it or bans it.
#[test]
fn a_burst_of_honest_edits_runs_no_peer_over_its_budget() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    for i in 0..4 {
        c.start(i);
    }
    assert!(eventually(60, || (0..4)
        .all(|i| common::cluster::connected(d, i).len() == 3)));
    let tokens: Vec<String> = ["uk", "eu", "ca", "au"]
        .iter()
        .map(|j| {
            std::fs::read_to_string(d.join(format!("{j}-data/api.token")))
                .expect("token")
                .trim()
                .to_owned()
        })
        .collect();
    let caps = ["CAP-B01", "CAP-E02", "CAP-E03", "CAP-A01"];
    for n in 0..200usize {
        let i = n % 4;
        let r = agent()
            .post(format!("{}/v1/catalogue/{}", api(d, i), caps[n % 3]))
            .header("Authorization", &format!("Bearer {}", tokens[i]))
            .send_json(serde_json::json!({ "set": [["effort", format!("burst {n}")]] }))
            .expect("edit");
        assert!(r.status().is_success(), "edit {n}: {}", r.status());
    }
    let heads = |i: usize| -> serde_json::Value {
        agent()
            .get(format!("{}/health", api(d, i)))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
            .map(|h| h["heads"].clone())
            .unwrap_or_default()
    };
    assert!(
        eventually(60, || {
            let h = heads(0);
            h.as_array().is_some_and(|a| !a.is_empty()) && (1..4).all(|i| heads(i) == h)
        }),
        "the four nodes did not converge"
    );
    for i in 0..4 {
        for m in [
            "accord_sync_rate_limited_total",
            "accord_peer_bans_total",
            "accord_sync_rejected_messages_total",
        ] {
            assert_eq!(metric(d, i, m), 0.0, "node {i}: {m}");
        }
        assert_eq!(metric(d, i, "accord_peers_connected"), 3.0, "node {i}");
    }
}

/// A client of the API (a stolen token, a compromised supplier CI) sends a proposal whose
/// statement gives one artifact the right BLAKE3 and size but another SHA-256: the leads
/// would sign a digest that is not the bytes'. The node hashes both as the bytes stream in
/// and refuses it with the reason; nothing enters the catalogue.
#[test]
fn a_proposal_whose_sha256_is_not_its_bytes_is_refused() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    start_all(&mut c, d, &[0]);
    write(d, "chart.tgz", 50_000, 7);
    ok(accord(
        d,
        &[
            "release",
            "statement",
            "CAP-B01",
            "1.4.0",
            "release/chart.tgz",
            "--root",
            "root.json",
            "--out",
            "stmt.json",
        ],
    ));
    let mut env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("stmt.json")).expect("stmt")).expect("json");
    let payload = STANDARD
        .decode(env["payload"].as_str().expect("payload"))
        .expect("base64");
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).expect("statement");
    statement["subject"][0]["digest"]["sha256"] = "ab".repeat(32).into();
    env["payload"] = STANDARD
        .encode(serde_json::to_vec(&statement).expect("json"))
        .into();
    let header = serde_json::to_vec(&serde_json::json!({ "envelope": env })).expect("json");
    let mut body = (header.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&header);
    body.extend_from_slice(&std::fs::read(d.join("release/chart.tgz")).expect("chart"));
    let token = std::fs::read_to_string(d.join("uk-data/api.token")).expect("token");
    let mut r = agent()
        .post(format!("{}/v1/releases", api(d, 0)))
        .header("Authorization", &format!("Bearer {}", token.trim()))
        .header("Content-Type", "application/vnd.accord.proposal")
        .send(&body[..])
        .expect("the node answers");
    assert_eq!(r.status(), 400);
    let text = r.body_mut().read_to_string().expect("body");
    assert!(
        text.contains("SHA-256") && text.contains(&"ab".repeat(32)),
        "{text}"
    );
    assert!(
        release_view(d, 0, KEY).is_none(),
        "the lie entered the catalogue"
    );
}
