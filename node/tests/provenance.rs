//! Upstream provenance checked by every node (issue 17), with four real node processes on
//! loopback: a release carries a real Sigstore bundle (the sigstore-conformance suite's
//! Rekor v2 happy path, with its RFC 3161 timestamp) for its artifact; every node verifies
//! it itself against its own Sigstore trusted root and identity policy. With a policy that
//! names another identity, the fully signed release is held at every node with the reason;
//! a node whose policy names the real signer verifies it, shows who signed the artifact
//! and promotes.

mod common;

use std::path::Path;

use common::cluster::{cluster, eventually};
use common::releases::*;
use common::{J, accord, ok};

const KEY: &str = "CAP-B01@2.0.0";
const VECTOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/provenance/tests/data/sigstore-conformance/bundle-verify"
);
/// The signer of the conformance suite's bundles, and its issuer.
const SIGNER: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WRONG: &str =
    "https://github.com/someone-else/app/.github/workflows/release.yml@refs/heads/main";

fn copy(from: &str, to: &Path) {
    std::fs::copy(Path::new(VECTOR).join(from), to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
}

fn sigstore_config(identity: &str) -> String {
    format!(
        "[sigstore]\ntrusted_root = \"sigstore_root.json\"\n[[sigstore.signers]]\ncapability = \"CAP-B*\"\nidentity = \"{identity}\"\nissuer = \"{ISSUER}\"\n"
    )
}

/// The artifact and its bundle in `release/`, the vector's trusted root as
/// `full_root.json`, and every node's config naming `identity` as CAP-B's signer.
fn setup(d: &Path, identity: &str) {
    std::fs::create_dir_all(d.join("release")).expect("mkdir");
    copy("a.txt", &d.join("release/a.txt"));
    copy(
        "rekor2-happy-path/bundle.sigstore.json",
        &d.join("release/a.txt.sigstore.json"),
    );
    copy(
        "rekor2-happy-path/trusted_root.json",
        &d.join("full_root.json"),
    );
    for j in J {
        add_config(d, j, &sigstore_config(identity));
    }
}

/// EU proposes CAP-B01 2.0.0 with a.txt and its bundle, checked first for the real signer
/// against `full_root.json`.
fn propose_with_bundle(d: &Path, provenance: &str) -> common::Run {
    ok(accord(
        d,
        &[
            "release",
            "propose",
            "CAP-B01",
            "2.0.0",
            "release/a.txt",
            "--provenance",
            provenance,
            "--trusted-root",
            "full_root.json",
            "--certificate-identity",
            SIGNER,
            "--certificate-oidc-issuer",
            ISSUER,
            "--data-dir",
            "eu-data",
        ],
    ))
}

#[test]
fn a_wrong_identity_is_held_at_every_node_and_the_right_one_promotes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    setup(d, WRONG);
    std::fs::copy(d.join("full_root.json"), d.join("sigstore_root.json")).expect("copy");
    start_all(&mut c, d, &[0, 1, 2, 3]);

    // The proposer checks the bundle for the real signer before proposing; the bundle
    // travels as an artifact of its own, bound to a.txt by the statement.
    let r = propose_with_bundle(d, "a.txt=release/a.txt.sigstore.json");
    assert!(
        r.stdout
            .contains("provenance of a.txt: sigstore-bundle a.txt.sigstore.json"),
        "{}",
        r.stdout
    );
    assert!(
        eventually(60, || (0..4).all(|i| mirrored(d, i, KEY))),
        "the release and its bundle were not mirrored everywhere"
    );
    for signer in ["uk/lead", "eu/lead", "ca/lead", "au/lead", "uk/security"] {
        ok(sign(d, KEY, signer, "uk"));
    }
    assert!(
        eventually(30, || {
            (0..4).all(|i| {
                release_view(d, i, KEY).is_some_and(|v| v["signatures"].as_u64() == Some(5))
            })
        }),
        "the signatures did not replicate"
    );

    // Fully signed, but every node's policy names another signer: held everywhere, and
    // each node says why.
    let held = |i: usize| {
        release_view(d, i, KEY).is_some_and(|v| {
            v["provenance"]["state"] == "refused"
                && v["provenance"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(SIGNER) && r.contains(WRONG))
        }) && state(d, i, KEY) == "waiting"
            && reasons(d, i, KEY).contains("provenance refused here")
    };
    assert!(
        eventually(30, || (0..4).all(held)),
        "not held everywhere: {:?}",
        (0..4).map(|i| reasons(d, i, KEY)).collect::<Vec<_>>()
    );
    let status = ok(accord(
        d,
        &["release", "status", KEY, "--data-dir", "ca-data"],
    ));
    assert!(
        status.stdout.contains("provenance REFUSED by this node")
            && status.stdout.contains(&format!("expected {WRONG}")),
        "{}",
        status.stdout
    );

    // Nor does a node's staging channel serve it.
    let r = common::refused(accord(
        d,
        &["fetch", KEY, "--out", "ca-out", "--data-dir", "ca-data"],
    ));
    assert!(r.stderr.contains("provenance refused here"), "{}", r.stderr);
    assert!(!d.join("ca-out/a.txt").exists());

    // UK's policy names the real signer: it verifies the bundle itself and promotes; the
    // others still hold it.
    c.stop(0, false);
    let cfg = std::fs::read_to_string(d.join("uk.toml")).expect("cfg");
    std::fs::write(d.join("uk.toml"), cfg.replace(WRONG, SIGNER)).expect("cfg");
    c.start(0);
    common::cluster::wait_up(d, "uk");
    assert!(
        eventually(60, || state(d, 0, KEY) == "live"),
        "UK did not promote: {}",
        reasons(d, 0, KEY)
    );
    let view = release_view(d, 0, KEY).expect("view");
    assert_eq!(view["provenance"]["state"], "verified", "{view}");
    assert_eq!(view["provenance"]["artifacts"][0]["artifact"], "a.txt");
    assert_eq!(view["provenance"]["artifacts"][0]["identity"], SIGNER);
    let status = ok(accord(
        d,
        &["release", "status", KEY, "--data-dir", "uk-data"],
    ));
    assert!(
        status.stdout.lines().any(|l| {
            l.trim_start().starts_with("a.txt ")
                && l.contains(&format!(
                    "signed by {SIGNER} ({ISSUER}) at 2025-06-12T12:02:20Z"
                ))
        }),
        "{}",
        status.stdout
    );
    ok(accord(
        d,
        &["fetch", KEY, "--out", "uk-out", "--data-dir", "uk-data"],
    ));
    assert_eq!(
        std::fs::read(d.join("uk-out/a.txt")).expect("fetched"),
        std::fs::read(d.join("release/a.txt")).expect("original")
    );
    for (i, j) in J.iter().enumerate().skip(1) {
        assert_eq!(state(d, i, KEY), "waiting", "{j}");
    }
}

/// The running nodes' Sigstore trusted root lacks the timestamp authority the Rekor v2
/// bundle relies on, so every node holds the release. The steering committee signs an
/// update carrying the full root: one signature is refused, a majority's is applied at each
/// running node, which verifies the release again and promotes; the same update replayed
/// is refused.
#[test]
fn a_steering_majority_updates_the_sigstore_trusted_root() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    setup(d, SIGNER);
    let mut without_tsa: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("full_root.json")).expect("read"))
            .expect("json");
    without_tsa
        .as_object_mut()
        .expect("object")
        .remove("timestampAuthorities");
    std::fs::write(
        d.join("sigstore_root.json"),
        serde_json::to_vec_pretty(&without_tsa).expect("json"),
    )
    .expect("write");
    start_all(&mut c, d, &[0, 1, 2, 3]);
    propose_with_bundle(d, "release/a.txt.sigstore.json");
    for signer in ["uk/lead", "eu/lead", "ca/lead", "au/lead", "uk/security"] {
        ok(sign(d, KEY, signer, "eu"));
    }
    let refused_for_time = |i: usize| {
        release_view(d, i, KEY).is_some_and(|v| {
            v["provenance"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no verified time of signing"))
        })
    };
    assert!(
        eventually(60, || (0..4).all(refused_for_time)),
        "not held for want of a timestamp authority: {:?}",
        (0..4).map(|i| reasons(d, i, KEY)).collect::<Vec<_>>()
    );

    ok(accord(
        d,
        &[
            "sigstore-root",
            "propose",
            "full_root.json",
            "--from",
            "sigstore_root.json",
            "--sequence",
            "1",
            "--out",
            "update.json",
        ],
    ));
    ok(accord(
        d,
        &[
            "sigstore-root",
            "sign",
            "update.json",
            "--key",
            "uk/steering.key",
        ],
    ));
    let apply = |j: &str| {
        accord(
            d,
            &[
                "sigstore-root",
                "apply",
                "update.json",
                "--data-dir",
                &format!("{j}-data"),
            ],
        )
    };
    let r = common::refused(apply("uk"));
    assert!(r.stderr.contains("root rule"), "{}", r.stderr);
    for j in ["eu", "ca"] {
        ok(accord(
            d,
            &[
                "sigstore-root",
                "sign",
                "update.json",
                "--key",
                &format!("{j}/steering.key"),
            ],
        ));
    }
    for j in J {
        let r = ok(apply(j));
        assert!(r.stdout.contains("update 1"), "{}", r.stdout);
    }
    assert!(
        eventually(60, || (0..4).all(|i| state(d, i, KEY) == "live")),
        "not promoted after the update: {:?}",
        (0..4).map(|i| reasons(d, i, KEY)).collect::<Vec<_>>()
    );
    let r = common::refused(apply("uk"));
    assert!(r.stderr.contains("rollback"), "{}", r.stderr);
}
