//! `accord init` and `accord catalogue …` on a real data directory: a real redb file, real
//! signed Automerge changes, the export read by JavaScript Automerge, and SIGKILL mid-write.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn fails(r: Run, needle: &str) {
    one_line_error(&r, needle);
}

/// Keys for four jurisdictions, a root signed by a steering majority, and UK's data dir.
fn cooperative_with_node(d: &Path) {
    cooperative(d);
    signed_root(d);
    ok(accord(
        d,
        &[
            "init",
            "--data-dir",
            "uk-data",
            "--root",
            "root.json",
            "--node-key",
            "uk/node.key",
        ],
    ));
}

#[test]
fn init_list_show_edit_export() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    cooperative_with_node(d);

    // Only a node key of the root may hold a data dir; a second init is refused.
    fails(
        accord(
            d,
            &[
                "init",
                "--data-dir",
                "x",
                "--root",
                "root.json",
                "--node-key",
                "uk/lead.key",
            ],
        ),
        "not a node key",
    );
    assert!(!d.join("x").exists());
    fails(
        accord(
            d,
            &[
                "init",
                "--data-dir",
                "uk-data",
                "--root",
                "root.json",
                "--node-key",
                "uk/node.key",
            ],
        ),
        "already initialised",
    );

    let r = ok(accord(
        d,
        &["catalogue", "list", "--data-dir", "uk-data", "--json"],
    ));
    let caps: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(caps.as_array().expect("array").len(), 36);
    let r = ok(accord(
        d,
        &[
            "catalogue",
            "list",
            "--data-dir",
            "uk-data",
            "--domain",
            "E",
        ],
    ));
    assert!(
        r.stdout.contains("CAP-E02") && r.stdout.contains("CAP-E03"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("CAP-B01"));

    ok(accord(
        d,
        &[
            "catalogue",
            "edit",
            "CAP-B01",
            "--data-dir",
            "uk-data",
            "--set",
            "status=staging",
            "--set",
            "effort=4 people, 10 weeks",
            "--add-requirement",
            "Object lock (WORM)",
            "--add-dependency",
            "CAP-D01",
        ],
    ));
    let c = show_json(d, "uk-data", "CAP-B01");
    assert_eq!(c["status"], "staging");
    assert_eq!(c["effort"], "4 people, 10 weeks");
    assert!(
        c["functional_requirements"]
            .as_array()
            .expect("list")
            .iter()
            .any(|v| v == "Object lock (WORM)")
    );
    assert!(
        c["dependencies"]
            .as_array()
            .expect("list")
            .iter()
            .any(|v| v == "CAP-D01")
    );

    // Clear errors for unknown ids and invalid values; nothing is written.
    fails(
        accord(
            d,
            &["catalogue", "show", "CAP-Z99", "--data-dir", "uk-data"],
        ),
        "unknown capability CAP-Z99",
    );
    fails(
        accord(
            d,
            &[
                "catalogue",
                "edit",
                "CAP-Z99",
                "--data-dir",
                "uk-data",
                "--set",
                "status=staging",
            ],
        ),
        "unknown capability CAP-Z99",
    );
    fails(
        accord(
            d,
            &[
                "catalogue",
                "edit",
                "CAP-B01",
                "--data-dir",
                "uk-data",
                "--set",
                "status=shipped",
            ],
        ),
        "not one of proposed",
    );
    fails(
        accord(
            d,
            &[
                "catalogue",
                "edit",
                "CAP-B01",
                "--data-dir",
                "uk-data",
                "--set",
                "colour=blue",
            ],
        ),
        "unknown field",
    );
    fails(
        accord(
            d,
            &[
                "catalogue",
                "edit",
                "CAP-B01",
                "--data-dir",
                "uk-data",
                "--set",
                "lead_jurisdiction=fr",
            ],
        ),
        "not in jurisdictions",
    );
    fails(
        accord(d, &["catalogue", "list", "--data-dir", "nowhere"]),
        "not an Accord data directory",
    );
    assert_eq!(show_json(d, "uk-data", "CAP-B01")["status"], "staging");

    // Export in Automerge's binary format; the Rust implementation reads it back…
    ok(accord(
        d,
        &[
            "catalogue",
            "export",
            "--data-dir",
            "uk-data",
            "--out",
            "catalogue.automerge",
        ],
    ));
    let bytes = std::fs::read(d.join("catalogue.automerge")).expect("export");
    let doc = automerge::Automerge::load(&bytes).expect("loads");
    let rust_view = serde_json::to_value(automerge::AutoSerde::from(&doc)).expect("json");
    assert_eq!(rust_view["capabilities"]["CAP-B01"]["status"], "staging");

    // …and so does the JavaScript implementation, with the same content.
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop-node");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/automerge_load.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(d.join("catalogue.automerge"))
        .env("AUTOMERGE_PREFIX", &prefix)
        .output()
        .expect("node (scripts/test installs @automerge/automerge into target/interop-node)");
    assert!(
        out.status.success(),
        "JavaScript Automerge could not load the export (run scripts/test to install it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let js_view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("js json");
    assert_eq!(js_view, rust_view);
}
