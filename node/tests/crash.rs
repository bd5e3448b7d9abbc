//! SIGKILL at the steps that matter, each reached and seen before the kill (test pause
//! points, `node/src/testpoint.rs`): nothing the node committed is lost, nothing half-done
//! is visible, and what it still owes (a hook) runs after the restart. No kill depends on a
//! guessed delay.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::cluster::*;
use common::releases::*;
use common::*;

const KEY: &str = "CAP-B01@1.4.0";

/// Where the process paused, and the env that makes it pause at `point`.
fn pause_at(d: &Path, point: &str) -> (PathBuf, Vec<(String, String)>) {
    let file = d.join(format!("paused-{point}"));
    let _ = std::fs::remove_file(&file);
    (
        file.clone(),
        vec![
            ("ACCORD_TEST_PAUSE".into(), point.into()),
            ("ACCORD_TEST_PAUSE_FILE".into(), file.display().to_string()),
        ],
    )
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Starts node `i` so that it pauses at `point`; returns the file that appears there.
fn start_pausing(c: &mut Cluster, d: &Path, i: usize, point: &str) -> PathBuf {
    let (file, env) = pause_at(d, point);
    c.start_env(i, &env_refs(&env));
    file
}

/// Node `i`'s catalogue heads, from its API.
fn heads(d: &Path, i: usize) -> serde_json::Value {
    agent()
        .get(format!("{}/health", api(d, i)))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
        .map(|h| h["heads"].clone())
        .unwrap_or_default()
}

fn paused(file: &Path) -> bool {
    eventually(60, || file.exists())
}

/// A CLI command run in the background (it will pause or hang on a paused node).
fn spawn_accord(d: &Path, args: &[&str], env: &[(String, String)]) -> Child {
    Command::new(binary())
        .current_dir(d)
        .args(args)
        .env("ACCORD_PASSPHRASE", PASS)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// An offline edit killed before its commit leaves nothing; killed right after, it is all
/// there (both fields of the one change), and the data dir keeps working.
#[test]
fn an_edit_killed_before_or_after_its_commit_is_all_or_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let _c = cluster(d);
    for (i, point) in ["edit-before-commit", "edit-committed"].iter().enumerate() {
        let (file, env) = pause_at(d, point);
        let child = spawn_accord(
            d,
            &[
                "catalogue",
                "edit",
                "CAP-B01",
                "--data-dir",
                "uk-data",
                "--set",
                &format!("effort=attempt {i}"),
                "--add-deliverable",
                &format!("deliverable {i}"),
            ],
            &env,
        );
        assert!(paused(&file), "never reached {point}");
        kill(child);
        let c = show_json(d, "uk-data", "CAP-B01");
        let has_effort = c["effort"] == format!("attempt {i}");
        let has_deliverable = c["deliverables"]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v == &format!("deliverable {i}")));
        assert_eq!(
            has_effort, has_deliverable,
            "half an edit after a kill at {point}"
        );
        assert_eq!(has_effort, *point == "edit-committed", "{point}: {c}");
    }
    edit(d, "uk", "CAP-B01", "effort=after the crashes");
    assert_eq!(field(d, "uk", "CAP-B01", "effort"), "after the crashes");
}

/// An edit the node's API answered 200 for is durable: SIGKILL right after, and it is there
/// after the restart.
#[test]
fn an_api_write_answered_200_survives_sigkill() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    c.start(0);
    for n in 0..5 {
        edit(d, "uk", "CAP-B01", &format!("effort=answered {n}"));
        c.stop(0, true);
        assert_eq!(field(d, "uk", "CAP-B01", "effort"), format!("answered {n}"));
        c.start(0);
    }
}

/// EU is killed after accepting UK's changes, before committing them: nothing of EU's own
/// is lost, and the changes come again from UK after the restart.
#[test]
fn a_kill_during_a_peers_sync_apply_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    edit(d, "eu", "CAP-A02", "effort=EU's own");
    // First let the two exchange what nodes write when they start (their root
    // acknowledgements), so the pause below can only be UK's edit arriving.
    c.start(0);
    c.start(1);
    assert!(
        eventually(30, || {
            let h = heads(d, 0);
            !h.is_null() && heads(d, 1) == h
        }),
        "UK and EU did not converge"
    );
    c.stop(1, false);
    let file = start_pausing(&mut c, d, 1, "sync-apply");
    edit(d, "uk", "CAP-B01", "effort=from UK");
    assert!(paused(&file), "EU never applied UK's changes");
    c.stop(1, true);
    c.start(1);
    assert!(
        eventually(30, || field(d, "eu", "CAP-B01", "effort") == "from UK"),
        "UK's change did not come again"
    );
    assert_eq!(field(d, "eu", "CAP-A02", "effort"), "EU's own");
    assert_eq!(field(d, "uk", "CAP-A02", "effort"), "EU's own");
}

/// Killed while folding its stored changes into a snapshot, the node restarts with every
/// change it had committed.
#[test]
fn a_kill_during_compaction_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    let file = start_pausing(&mut c, d, 0, "compaction");
    let url = api(d, 0);
    let token = std::fs::read_to_string(d.join("uk-data/api.token")).expect("token");
    let agent = agent();
    let mut n: u32 = 0;
    // Through the API: each answer means a committed change; the 256th stored change starts
    // a compaction, where the node pauses (and stops answering).
    while !file.exists() && n < 400 {
        let body = format!(r#"{{"set":[["effort","edit {n}"]]}}"#);
        let answered = agent
            .post(format!("{url}/v1/catalogue/CAP-B01"))
            .header("Authorization", &format!("Bearer {}", token.trim()))
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .is_ok_and(|r| r.status().is_success());
        if !answered {
            break;
        }
        n += 1;
    }
    assert!(paused(&file), "no compaction after {n} edits");
    c.stop(0, true);
    // The edit that triggered the compaction was committed before it.
    let last = n.saturating_sub(1);
    c.start(0);
    let effort = field(d, "uk", "CAP-B01", "effort");
    let at: u32 = effort
        .strip_prefix("edit ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("effort {effort:?}"));
    assert!(at >= last, "committed edit {last} lost: {effort}");
    c.stop(0, false);
    ok(accord(d, &["audit", "verify", "--data-dir", "uk-data"]));
}

/// Killed as it commits a promotion, the node promotes on restart and runs the hook; killed
/// after the commit but before the hook ran, the hook it still owes runs after the restart.
#[test]
fn a_kill_around_a_promotion_commit_still_runs_the_hook() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    let hook_log = d.join("hook.log");
    add_config(
        d,
        "uk",
        &format!(
            "on_promote = \"echo $ACCORD_RELEASE_ID >> {}\"\n",
            hook_log.display()
        ),
    );
    c.start(0);
    write(d, "chart.tgz", 50_000, 7);
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
    c.stop(0, false);
    let file = start_pausing(&mut c, d, 0, "commit-promotion");
    for s in ["uk/lead", "eu/lead", "ca/lead", "au/lead", "uk/security"] {
        ok(sign(d, KEY, s, "uk"));
    }
    assert!(paused(&file), "never reached the promotion commit");
    c.stop(0, true);
    assert!(!hook_log.exists(), "the hook ran before the commit");
    // On restart the promotion happens at once: pause before the hook this time.
    let (file, env) = pause_at(d, "promoted-before-hook");
    c.launch(0, &env_refs(&env));
    assert!(paused(&file), "did not promote again after the restart");
    c.stop(0, true);
    assert!(!hook_log.exists(), "the hook ran before the pause");
    c.start(0);
    assert!(
        eventually(30, || std::fs::read_to_string(&hook_log)
            .is_ok_and(|l| l.lines().count() == 1)),
        "the hook owed from before the kill did not run"
    );
    assert_eq!(state(d, 0, KEY), "live");
    c.stop(0, false);
    let r = ok(accord(d, &["audit", "list", "--data-dir", "uk-data"]));
    assert_eq!(
        r.stdout.matches("promoted statement").count(),
        1,
        "{}",
        r.stdout
    );
    ok(accord(d, &["audit", "verify", "--data-dir", "uk-data"]));
}

/// Killed while a proposal's artifacts stream in, the node holds no half proposal: the
/// release is not in the catalogue, and proposing again works.
#[test]
fn a_kill_during_a_proposal_import_leaves_no_half_release() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    write(d, "chart.tgz", 300_000, 3);
    write(d, "image.tar", 1_000_000, 4);
    let file = start_pausing(&mut c, d, 0, "propose-import");
    let args = [
        "release",
        "propose",
        "CAP-B01",
        "1.4.0",
        "release/chart.tgz",
        "release/image.tar",
        "--data-dir",
        "uk-data",
    ];
    let cli = spawn_accord(d, &args, &[]);
    assert!(paused(&file), "the import never started");
    c.stop(0, true);
    kill(cli);
    c.start(0);
    assert!(
        statements(d, 0, KEY).is_empty(),
        "a half proposal is visible"
    );
    ok(accord(d, &args));
    assert_eq!(statements(d, 0, KEY).len(), 1);
}

/// `accord fetch` killed after writing an artifact but before renaming it into place: no
/// file exists under the artifact's name, and fetching again works.
#[test]
fn a_fetch_killed_before_its_rename_leaves_no_file_under_the_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);
    c.start(0);
    write(d, "chart.tgz", 300_000, 5);
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
    let (file, env) = pause_at(d, "fetch-rename");
    let args = ["fetch", KEY, "--out", "out", "--data-dir", "uk-data"];
    let cli = spawn_accord(d, &args, &env);
    assert!(paused(&file), "the fetch never reached its rename");
    kill(cli);
    assert!(
        !d.join("out/chart.tgz").exists(),
        "a file appeared before its rename"
    );
    ok(accord(d, &args));
    assert_eq!(
        std::fs::read(d.join("out/chart.tgz")).expect("fetched"),
        std::fs::read(d.join("release/chart.tgz")).expect("original")
    );
}
