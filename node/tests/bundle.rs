//! An air-gapped site (issue 16): AU's node never runs while the others do. A bundle
//! exported from the cooperative is verified with nothing but the pinned root, a damaged
//! copy is refused without touching AU's node, and the real one, imported, lets AU promote
//! the release on its own and serve it from production.

mod common;

use std::path::Path;

use common::cluster::{cluster, eventually};
use common::releases::*;
use common::{PASS, accord, binary, ok, refused};

/// Runs `accord bundle import FILE` into AU's data dir, pausing at `point`, and kills it
/// there with SIGKILL once it has reached it.
fn kill_import_at(d: &Path, file: &str, point: &str) {
    let paused = d.join(format!("paused-{point}"));
    let mut child = std::process::Command::new(binary())
        .current_dir(d)
        .args(["bundle", "import", file, "--data-dir", "au-data"])
        .env("ACCORD_PASSPHRASE", PASS)
        .env("ACCORD_TEST_PAUSE", point)
        .env("ACCORD_TEST_PAUSE_FILE", &paused)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let reached = eventually(60, || paused.exists());
    let _ = child.kill();
    let _ = child.wait();
    assert!(reached, "the import never reached {point}");
}

const KEY: &str = "CAP-B01@1.4.0";

/// UK, EU and CA run; EU proposes CAP-B01 at `version`; it is mirrored at the three, every
/// lead signs (AU's lead at UK's node) and security too, and it goes live at the three.
fn release_without_au(c: &mut common::cluster::Cluster, d: &Path, version: &str) {
    start_all(c, d, &[0, 1, 2]);
    propose(d, version);
    let key = format!("CAP-B01@{version}");
    assert!(
        eventually(60, || (0..3).all(|i| mirrored(d, i, &key))),
        "{key} not mirrored"
    );
    for (s, at) in [
        ("uk/lead", "uk"),
        ("eu/lead", "eu"),
        ("ca/lead", "ca"),
        ("au/lead", "uk"),
        ("uk/security", "uk"),
    ] {
        ok(sign(d, &key, s, at));
    }
    assert!(
        eventually(30, || (0..3).all(|i| state(d, i, &key) == "live")),
        "{key} not live at UK, EU and CA"
    );
}

/// AU's catalogue as `catalogue list --json` prints it (to see it unchanged).
fn au_catalogue(d: &Path) -> String {
    ok(accord(
        d,
        &["catalogue", "list", "--data-dir", "au-data", "--json"],
    ))
    .stdout
}

#[test]
fn an_air_gapped_site_promotes_and_serves_a_release_from_a_bundle_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    // UK, EU and CA run; AU's node is the site with no link to them.
    release_without_au(&mut c, d, "1.4.0");
    c.stop_all();

    let r = ok(accord(
        d,
        &[
            "bundle",
            "export",
            "--out",
            "site.bundle",
            "--data-dir",
            "uk-data",
        ],
    ));
    assert!(r.stdout.contains("CAP-B01@1.4.0"), "{}", r.stdout);

    // Nothing but the pinned root: it says what AU may promote.
    let r = ok(accord(
        d,
        &[
            "bundle",
            "verify",
            "site.bundle",
            "--root",
            "root.json",
            "--jurisdiction",
            "au",
            "--report",
            "report.json",
            "--sign-with",
            "au/node.key",
        ],
    ));
    assert!(
        r.stdout.contains("in au: PROMOTABLE") && r.stdout.contains("SHA-256 and BLAKE3"),
        "{}",
        r.stdout
    );
    // A signed report (DSSE) the site keeps: its payload says what was verified.
    let report = accord_protocol::Envelope::from_json(
        &std::fs::read(d.join("report.json")).expect("report"),
    )
    .expect("a DSSE envelope");
    assert_eq!(
        report.payload_type,
        "application/vnd.accord.bundle-verification+json"
    );
    assert_eq!(report.signatures.len(), 1);
    let body = String::from_utf8(report.payload).expect("utf8");
    assert!(
        body.contains("PROMOTABLE") && body.contains("artifact_bytes_checked"),
        "{body}"
    );

    // Split for small media: parts cut between artifacts, their list signed by UK's node
    // key; verified from the list, and a damaged part is named.
    let r = ok(accord(
        d,
        &[
            "bundle",
            "export",
            "--out",
            "split.bundle",
            "--max-part-size",
            "1M",
            "--data-dir",
            "uk-data",
        ],
    ));
    assert!(r.stdout.contains("split into 2 part(s)"), "{}", r.stdout);
    let r = ok(accord(
        d,
        &[
            "bundle",
            "verify",
            "split.bundle.parts",
            "--root",
            "root.json",
        ],
    ));
    assert!(
        r.stdout.contains("part list signed by uk") && r.stdout.contains("PROMOTABLE"),
        "{}",
        r.stdout
    );
    // Each part checks on its own against the list (on the media it came on).
    let r = ok(accord(
        d,
        &[
            "bundle",
            "check-part",
            "split.bundle.001",
            "--list",
            "split.bundle.parts",
        ],
    ));
    assert!(r.stdout.contains("part 1 of 2"), "{}", r.stdout);
    let mut part = std::fs::read(d.join("split.bundle.002")).expect("part 2");
    part[1000] ^= 1;
    std::fs::write(d.join("split.bundle.002"), &part).expect("write");
    let r = refused(accord(
        d,
        &[
            "bundle",
            "verify",
            "split.bundle.parts",
            "--root",
            "root.json",
        ],
    ));
    let r2 = refused(accord(
        d,
        &[
            "bundle",
            "check-part",
            "split.bundle.002",
            "--list",
            "split.bundle.parts",
        ],
    ));
    assert!(
        r2.stderr.contains("part 2") && r2.stderr.contains("not the part"),
        "{}",
        r2.stderr
    );
    // The changed byte is inside the image: its digests catch it before the part ends.
    assert!(
        r.stderr
            .contains("image-1.4.0.tar does not match its digests")
            || r.stderr.contains("part 2"),
        "{}",
        r.stderr
    );

    // A damaged copy (one byte in the image) is refused, and AU's node is unchanged.
    let mut bytes = std::fs::read(d.join("site.bundle")).expect("bundle");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(d.join("damaged.bundle"), &bytes).expect("write");
    let before = au_catalogue(d);
    let r = refused(accord(
        d,
        &[
            "bundle",
            "import",
            "damaged.bundle",
            "--data-dir",
            "au-data",
        ],
    ));
    assert!(
        r.stderr.contains("does not match") && r.stderr.contains("nothing was imported"),
        "{}",
        r.stderr
    );
    let r = refused(accord(
        d,
        &["release", "status", KEY, "--data-dir", "au-data"],
    ));
    assert!(!r.stderr.is_empty());
    assert_eq!(au_catalogue(d), before);

    // A copy whose export time was moved to the far future (it would switch AU's staleness
    // check off for EU for good) is refused: the exporting node signed its time.
    let mut bytes = std::fs::read(d.join("site.bundle")).expect("bundle");
    let key = b"\"dev.accord.exported-at\":\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the export time annotation")
        + key.len();
    bytes[at..at + 10].copy_from_slice(b"9999999999");
    std::fs::write(d.join("forged.bundle"), &bytes).expect("write");
    let r = refused(accord(
        d,
        &["bundle", "verify", "forged.bundle", "--root", "root.json"],
    ));
    assert!(
        r.stderr.contains("signature does not verify"),
        "{}",
        r.stderr
    );
    let r = refused(accord(
        d,
        &["bundle", "import", "forged.bundle", "--data-dir", "au-data"],
    ));
    assert!(
        r.stderr.contains("signature does not verify") && r.stderr.contains("nothing was imported"),
        "{}",
        r.stderr
    );
    assert_eq!(au_catalogue(d), before);

    // Killed (SIGKILL) before the catalogue is committed: AU is as it was.
    for point in ["bundle-verified", "bundle-artifacts-in"] {
        kill_import_at(d, "site.bundle", point);
        assert_eq!(au_catalogue(d), before, "killed at {point}");
        refused(accord(
            d,
            &["release", "status", KEY, "--data-dir", "au-data"],
        ));
    }
    // Killed after it: AU holds the release; importing again finishes (pins, receipt).
    kill_import_at(d, "site.bundle", "bundle-committed");
    ok(accord(
        d,
        &["release", "status", KEY, "--data-dir", "au-data"],
    ));
    let r = ok(accord(
        d,
        &["bundle", "import", "site.bundle", "--data-dir", "au-data"],
    ));
    assert!(r.stdout.contains("2 artifact(s) verified"), "{}", r.stdout);
    let leftovers: Vec<_> = std::fs::read_dir(d.join("au-data"))
        .expect("dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".bundle-import-")
        })
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    assert!(d.join("au-data/bundle-receipt.json").exists());

    // AU starts alone: no other node runs. It promotes on its own and serves production.
    c.start(3);
    assert!(
        eventually(30, || state(d, "au", KEY) == "live"),
        "AU did not promote from the bundle: {}",
        reasons(d, "au", KEY)
    );
    ok(accord(
        d,
        &[
            "fetch",
            KEY,
            "--out",
            "au-prod",
            "--channel",
            "production",
            "--data-dir",
            "au-data",
        ],
    ));
    for f in ["chart-1.4.0.tgz", "image-1.4.0.tar"] {
        assert_eq!(
            std::fs::read(d.join("au-prod").join(f)).expect("fetched"),
            std::fs::read(d.join("release").join(f)).expect("original"),
            "{f}"
        );
    }
    c.stop_all();

    // The next release, carried incrementally: AU's receipt goes back across the gap, and
    // the next bundle holds only what AU lacks.
    let next = "CAP-B01@1.4.1";
    release_without_au(&mut c, d, "1.4.1");
    std::fs::copy(
        d.join("au-data/bundle-receipt.json"),
        d.join("receipt.json"),
    )
    .expect("copy");
    // Exported from UK's running node: it plans and serves the verified blobs, the CLI
    // writes the bundle.
    let r = ok(accord(
        d,
        &[
            "bundle",
            "export",
            "--out",
            "next.bundle",
            "--since",
            "receipt.json",
            "--data-dir",
            "uk-data",
        ],
    ));
    assert!(
        r.stdout.contains("CAP-B01@1.4.1") && !r.stdout.contains("CAP-B01@1.4.0#"),
        "{}",
        r.stdout
    );
    c.stop_all();
    ok(accord(
        d,
        &[
            "bundle",
            "export",
            "--out",
            "full.bundle",
            "--data-dir",
            "uk-data",
        ],
    ));
    let size = |f: &str| std::fs::metadata(d.join(f)).expect("size").len();
    let (incremental, full) = (size("next.bundle"), size("full.bundle"));
    eprintln!("bundle after 1.4.1: incremental {incremental} bytes, full {full} bytes");
    assert!(incremental * 10 < full * 6, "{incremental} vs {full}");
    // This time AU's node runs (alone) and the bundle goes into it through its API.
    // Killed (SIGKILL) while the artifacts are in its store but before its core took the
    // catalogue: after a restart AU knows nothing of 1.4.1.
    let paused = d.join("paused-node-bundle-artifacts-in");
    c.start_env(
        3,
        &[
            ("ACCORD_TEST_PAUSE", "bundle-artifacts-in"),
            ("ACCORD_TEST_PAUSE_FILE", paused.to_str().expect("utf-8")),
        ],
    );
    let mut import = std::process::Command::new(binary())
        .current_dir(d)
        .args(["bundle", "import", "next.bundle", "--data-dir", "au-data"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let reached = eventually(60, || paused.exists());
    c.stop(3, true);
    let _ = import.kill();
    let _ = import.wait();
    assert!(
        reached,
        "the running node's import never reached bundle-artifacts-in"
    );
    c.start(3);
    assert_eq!(
        state(d, "au", next),
        "unknown",
        "AU holds 1.4.1 after the kill"
    );
    // A damaged copy is refused by the running node, which stays as it was.
    let mut bytes = std::fs::read(d.join("next.bundle")).expect("bundle");
    let at = bytes.len() - 4096;
    bytes[at] ^= 0x01;
    std::fs::write(d.join("damaged-next.bundle"), &bytes).expect("write");
    let r = refused(accord(
        d,
        &[
            "bundle",
            "import",
            "damaged-next.bundle",
            "--data-dir",
            "au-data",
        ],
    ));
    assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    assert_eq!(state(d, "au", next), "unknown");
    // The real one: the running node verifies and commits it, and promotes on its own.
    let r = ok(accord(
        d,
        &["bundle", "import", "next.bundle", "--data-dir", "au-data"],
    ));
    assert!(r.stdout.contains("into the running node"), "{}", r.stdout);
    let receipt: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join("au-data/bundle-receipt.json")).expect("receipt"),
    )
    .expect("json");
    assert_eq!(receipt["artifacts"].as_array().map(Vec::len), Some(4));
    assert!(
        eventually(30, || state(d, "au", next) == "live"),
        "AU did not promote 1.4.1: {}",
        reasons(d, "au", next)
    );
    c.stop_all();
}

/// A listed node's key writes a change the authority rules forbid (it deletes a
/// capability's status), properly signed, into an otherwise valid bundle; and a bundle is
/// checked against a root that is not the cooperative's first. Both are refused with the
/// reason, and an import changes nothing.
#[test]
fn a_bundle_with_a_forbidden_change_or_the_wrong_root_is_refused() {
    use accord_testsupport::forge::{self, Forger};
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;

    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let _c = cluster(d);
    ok(accord(
        d,
        &[
            "catalogue",
            "edit",
            "CAP-B01",
            "--set",
            "status=staging",
            "--data-dir",
            "uk-data",
        ],
    ));
    ok(accord(
        d,
        &[
            "bundle",
            "export",
            "--out",
            "good.bundle",
            "--data-dir",
            "uk-data",
        ],
    ));
    ok(accord(
        d,
        &["bundle", "verify", "good.bundle", "--root", "root.json"],
    ));

    // The forged bundle: the same roots, a change by UK's node key that deletes a field.
    let good = std::fs::read(d.join("good.bundle")).expect("bundle");
    let contents = accord_bundle::Reader::read(good.as_slice(), |_, _| Ok(())).expect("valid");
    ok(accord(
        d,
        &[
            "catalogue",
            "export",
            "--data-dir",
            "uk-data",
            "--out",
            "uk.automerge",
        ],
    ));
    let base = automerge::Automerge::load(&std::fs::read(d.join("uk.automerge")).expect("doc"))
        .expect("load");
    let key = accord_trust::SecretKey::read(&d.join("uk/node.key"), common::PASS).expect("key");
    let forger = Forger::new(key);
    let forged = forger.change(&base, 1_800_000_000, |tx| {
        let caps = forge::top(tx, "capabilities");
        match tx.get(&caps, "CAP-B01")? {
            Some((_, obj)) => tx.delete(&obj, "status"),
            None => Ok(()),
        }
    });
    let message = forger.message(vec![forged.hash()], &[forged]);
    let w =
        accord_bundle::Writer::begin(Vec::new(), &contents.roots, &message, &[], &contents.export)
            .expect("begin");
    assert!(w.pending().is_empty());
    std::fs::write(d.join("forged.bundle"), w.finish().expect("finish")).expect("write");
    let r = refused(accord(
        d,
        &["bundle", "verify", "forged.bundle", "--root", "root.json"],
    ));
    assert!(
        r.stderr.contains("catalogue changes were refused"),
        "{}",
        r.stderr
    );
    let before = au_catalogue(d);
    let r = refused(accord(
        d,
        &["bundle", "import", "forged.bundle", "--data-dir", "au-data"],
    ));
    assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
    assert_eq!(au_catalogue(d), before);

    // The good bundle against a root that is not the cooperative's first.
    common::successor_root(d, "ca/lead.key", "ca/lead2.key", &["uk", "eu", "ca"]);
    let r = refused(accord(
        d,
        &["bundle", "verify", "good.bundle", "--root", "root2.json"],
    ));
    assert!(r.stderr.contains("not the pinned root"), "{}", r.stderr);
}
