//! Co-signing and promotion with four real node processes on loopback: leads sign at
//! different nodes and one offline; no node promotes on 3 of 4 lead signatures; after the
//! fourth every node promotes on its own; a node offline during signing promotes when it is
//! back; a local rule holds one node back; an older version is never promoted over a newer
//! one; a recall demotes everywhere; the hook is retried; the audit log verifies.

mod common;

use std::time::Instant;

use common::cluster::{cluster, eventually, metric, wait_up};
use common::releases::*;
use common::{J, accord, ok, refused, successor_root};

const KEY: &str = "CAP-B01@1.4.0";

#[test]
fn leads_co_sign_and_every_node_promotes_on_its_own() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    // AU's own rule: its security lead must sign too.
    add_config(
        d,
        "au",
        "local_rules = [{ role = \"security\", threshold = 1, principals = [\"au\"] }]\n",
    );
    // UK's deploy hook fails once, then succeeds: it must be retried, never un-promote.
    let hook_log = d.join("uk-hook.log");
    let marker = d.join("uk-hook.failed-once");
    add_config(
        d,
        "uk",
        &format!(
            "on_promote = \"if [ -e {m} ]; then echo $ACCORD_RELEASE $ACCORD_JURISDICTION $ACCORD_ARTIFACTS >> {l}; else touch {m}; exit 3; fi\"\n",
            m = marker.display(),
            l = hook_log.display()
        ),
    );
    start_all(&mut c, d, &[0, 1, 2, 3]);
    propose(d, "1.4.0");
    assert!(
        eventually(60, || (0..4).all(|i| mirrored(d, i, KEY))),
        "the release was not mirrored everywhere"
    );

    // CA goes offline for the whole signing.
    c.stop(2, false);
    ok(sign(d, KEY, "uk/lead", "uk"));
    ok(sign(d, KEY, "eu/lead", "eu"));
    ok(sign(d, KEY, "au/lead", "au"));
    ok(sign(d, KEY, "uk/security", "uk"));
    // A signature that does not count is refused with the reason, and changes nothing.
    let r = refused(sign(d, KEY, "uk/node", "uk"));
    assert!(r.stderr.contains("node key"), "{}", r.stderr);
    let r = refused(sign(d, KEY, "uk/lead", "eu"));
    assert!(
        r.stderr.contains("already signed") || r.stderr.contains("already recorded"),
        "{}",
        r.stderr
    );

    // Three of four leads: nobody promotes, and each says what is missing.
    assert!(
        eventually(20, || {
            [0, 1, 3].iter().all(|&i| {
                release_view(d, i, KEY).is_some_and(|v| v["signatures"].as_u64() == Some(4))
            })
        }),
        "the signatures did not replicate"
    );
    // The engine runs after each change, before the next API request is answered: what
    // the API shows now is the decision on all four signatures.
    for i in [0, 1, 3] {
        assert_eq!(state(d, i, KEY), "waiting", "{}", J[i]);
        assert!(
            reasons(d, i, KEY).contains("ca"),
            "{}: {}",
            J[i],
            reasons(d, i, KEY)
        );
    }

    // CA's lead signs offline: statement exported at EU, signed with no node, imported at UK.
    ok(accord(
        d,
        &[
            "release",
            "export-statement",
            KEY,
            "--out",
            "stmt.json",
            "--data-dir",
            "eu-data",
        ],
    ));
    ok(accord(
        d,
        &[
            "release",
            "sign",
            "stmt.json",
            "--key",
            "ca/lead.key",
            "--out",
            "ca-sig.json",
            "--yes",
        ],
    ));
    let t0 = Instant::now();
    let r = ok(accord(
        d,
        &[
            "release",
            "import-signature",
            "ca-sig.json",
            "--data-dir",
            "uk-data",
        ],
    ));
    assert!(r.stdout.contains("lead of ca"), "{}", r.stdout);
    assert!(
        eventually(20, || state(d, 0, KEY) == "live"
            && state(d, 1, KEY) == "live"),
        "UK and EU did not promote: {} / {}",
        reasons(d, 0, KEY),
        reasons(d, 1, KEY)
    );
    println!("last signature -> UK and EU promoted: {:?}", t0.elapsed());
    // AU's local rule holds it back, with the reason (AU has every signature UK and EU had).
    assert!(
        eventually(20, || release_view(d, 3, KEY)
            .is_some_and(|v| v["signatures"].as_u64() == Some(5))),
        "the last signature did not reach AU"
    );
    assert_eq!(state(d, 3, KEY), "waiting");
    assert!(reasons(d, 3, KEY).contains("au"), "{}", reasons(d, 3, KEY));

    // CA comes back and promotes on its own.
    c.start(2);
    wait_up(d, 2);
    assert!(
        eventually(30, || state(d, 2, KEY) == "live"),
        "CA did not promote after reconnecting: {}",
        reasons(d, 2, KEY)
    );
    ok(sign(d, KEY, "au/security", "au"));
    assert!(
        eventually(20, || state(d, 3, KEY) == "live"),
        "AU: {}",
        reasons(d, 3, KEY)
    );
    // Every node shows where the release is live, from the signed notes.
    assert!(
        eventually(20, || (0..4).all(|i| release_view(d, i, KEY).is_some_and(
            |v| v["promoted_on"].as_array().is_some_and(|a| a.len() == 4)
        ))),
        "promotion notes did not replicate"
    );

    // The hook failed once and was retried until it succeeded.
    assert!(
        eventually(20, || std::fs::read_to_string(&hook_log).is_ok_and(
            |l| l.contains("CAP-B01@1.4.0 uk chart-1.4.0.tgz image-1.4.0.tar")
        )),
        "the on_promote hook was not retried to success"
    );
    let r = ok(accord(d, &["audit", "list", "--data-dir", "uk-data"]));
    for needle in [
        "signature",
        "promoted",
        "on_promote failed (attempt 1)",
        "on_promote succeeded",
        "chain intact",
    ] {
        assert!(
            r.stdout.contains(needle),
            "audit lacks {needle}: {}",
            r.stdout
        );
    }
    let r = ok(accord(d, &["audit", "list", "--data-dir", "eu-data"]));
    assert!(r.stdout.contains("proposed"), "{}", r.stdout);
    ok(accord(d, &["audit", "verify", "--data-dir", "eu-data"]));

    // The production channel serves it.
    ok(accord(
        d,
        &[
            "fetch",
            KEY,
            "--out",
            "prod",
            "--channel",
            "production",
            "--data-dir",
            "ca-data",
        ],
    ));
    assert_eq!(
        std::fs::read(d.join("prod/image-1.4.0.tar")).expect("fetched"),
        std::fs::read(d.join("release/image-1.4.0.tar")).expect("original")
    );

    // An older version, fully signed, is never promoted over the newer one.
    propose(d, "1.3.0");
    let old = "CAP-B01@1.3.0";
    assert!(
        eventually(60, || (0..4).all(|i| !statements(d, i, old).is_empty())),
        "1.3.0 did not reach every node"
    );
    for (s, at) in [
        ("uk/lead", "uk"),
        ("eu/lead", "eu"),
        ("ca/lead", "ca"),
        ("au/lead", "au"),
        ("uk/security", "uk"),
        ("au/security", "au"),
    ] {
        ok(sign(d, old, s, at));
    }
    for (i, j) in J.iter().enumerate() {
        assert!(
            eventually(20, || state(d, i, old) == "superseded"),
            "{j}: {}",
            reasons(d, i, old)
        );
        assert!(
            reasons(d, i, old).contains("rollback protection"),
            "{}",
            reasons(d, i, old)
        );
    }

    // A recall, signed like a release, demotes it everywhere.
    ok(accord(
        d,
        &[
            "release",
            "recall",
            KEY,
            "--reason",
            "CVE-2026-0001 in the chart",
            "--key",
            "uk/lead.key",
            "--yes",
            "--data-dir",
            "uk-data",
        ],
    ));
    for (s, at, i) in [
        ("eu/lead", "eu", 1),
        ("ca/lead", "ca", 2),
        ("au/lead", "au", 3),
        ("au/security", "au", 3),
    ] {
        // Each signer signs the recall pending at their own node, once it has arrived there.
        assert!(
            eventually(20, || release_view(d, i, KEY).is_some_and(|v| {
                v["statements"].as_array().is_some_and(|a| !a.is_empty())
            })),
            "the recall never reached {at}"
        );
        ok(accord(
            d,
            &[
                "release",
                "recall",
                KEY,
                "--key",
                &format!("{s}.key"),
                "--yes",
                "--data-dir",
                &format!("{at}-data"),
            ],
        ));
    }
    assert!(
        eventually(20, || (0..4).all(|i| state(d, i, KEY) == "recalled")),
        "the recall did not demote everywhere: {:?}",
        (0..4).map(|i| state(d, i, KEY)).collect::<Vec<_>>()
    );
    let r = refused(accord(
        d,
        &[
            "fetch",
            KEY,
            "--out",
            "prod2",
            "--channel",
            "production",
            "--data-dir",
            "uk-data",
        ],
    ));
    assert!(r.stderr.contains("not promoted"), "{}", r.stderr);
    let r = ok(accord(d, &["audit", "list", "--data-dir", "au-data"]));
    assert!(r.stdout.contains("recalled: CVE-2026-0001"), "{}", r.stdout);

    // Explained the same with every node stopped.
    c.stop_all();
    let r = ok(accord(
        d,
        &["release", "status", KEY, "--data-dir", "ca-data"],
    ));
    assert!(r.stdout.contains("recalled"), "{}", r.stdout);
    ok(accord(d, &["audit", "verify", "--data-dir", "ca-data"]));

    // The recalled release is retired and the superseded one was never mirrored here: gc
    // collects 1.4.0's blobs and nothing is left.
    let r = ok(accord(d, &["gc", "--data-dir", "uk-data"]));
    assert!(
        r.stdout.contains("2 blob(s) deleted, 0 kept"),
        "{}",
        r.stdout
    );
    let r = refused(accord(
        d,
        &["fetch", KEY, "--out", "gone", "--data-dir", "uk-data"],
    ));
    assert!(r.stderr.contains("mirrored"), "{}", r.stderr);
    // The superseded release was never fetched here (nobody will promote it here).
    let r = refused(accord(
        d,
        &["fetch", old, "--out", "kept", "--data-dir", "uk-data"],
    ));
    assert!(r.stderr.contains("0% mirrored"), "{}", r.stderr);
    // Its proposer still holds it.
    ok(accord(
        d,
        &["fetch", old, "--out", "kept", "--data-dir", "eu-data"],
    ));
}

/// UK installs root v2, which replaces CA's lead key. A signature by CA's old lead key
/// still counts on the nodes with v1 (they promote), no longer on UK (it waits and says
/// whose signature is missing) until CA's new lead key signs.
/// A root applied at one node reaches every node through the catalogue (each verifies it
/// against its own root by the TUF rules and acknowledges it). Under v2, which replaces CA's
/// lead key, the old key's signature is refused at every node; the new key's counts.
#[test]
fn a_new_root_reaches_every_node_and_a_rotated_lead_key_stops_counting() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    start_all(&mut c, d, &[0, 1, 2, 3]);
    propose(d, "1.4.0");
    assert!(
        eventually(60, || (0..4).all(|i| mirrored(d, i, KEY))),
        "not mirrored"
    );

    successor_root(d, "ca/lead.key", "ca/lead2.key", &["uk", "eu", "ca"]);
    ok(accord(
        d,
        &["root", "apply", "root2.json", "--data-dir", "uk-data"],
    ));
    assert!(
        eventually(30, || (0..4)
            .all(|i| metric(d, i, "accord_root_version") == 2.0)),
        "root v2 did not reach every node"
    );

    for (s, at) in [
        ("uk/lead", "uk"),
        ("eu/lead", "eu"),
        ("au/lead", "au"),
        ("uk/security", "uk"),
    ] {
        ok(sign(d, KEY, s, at));
    }
    // CA's old lead key is no key of v2, at CA's own node as anywhere.
    let r = refused(sign(d, KEY, "ca/lead", "ca"));
    assert!(r.stderr.contains("not in root v2"), "{}", r.stderr);
    assert_eq!(state(d, 2, KEY), "waiting");
    assert!(reasons(d, 2, KEY).contains("ca"), "{}", reasons(d, 2, KEY));

    ok(sign(d, KEY, "ca/lead2", "ca"));
    assert!(
        eventually(30, || (0..4).all(|i| state(d, i, KEY) == "live")),
        "the nodes did not promote with CA's new lead key: {}",
        reasons(d, 2, KEY)
    );
    // CA audited the refused signature.
    let r = ok(accord(d, &["audit", "list", "--data-dir", "ca-data"]));
    assert!(r.stdout.contains("rejected"), "{}", r.stdout);
    assert!(r.stdout.contains("root v2"), "{}", r.stdout);
}
