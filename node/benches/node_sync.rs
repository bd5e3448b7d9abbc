//! Whole-process benchmark of four `accord node run` processes on 127.0.0.1: node start to
//! ready, time from an edit on one node to visibility on the other three, time from a
//! release's last signature to promotion on all four, and idle RSS.
//!
//! The cooperative, the nodes and their configs come from the same harness the process
//! tests use (`accord-testsupport`): every node binds port 0 and reports its addresses.
//!
//! Run: `cargo bench -p accord-node --bench node_sync` (release build; prints Markdown).

use std::time::{Duration, Instant};

use accord_testsupport::cli::*;
use accord_testsupport::cluster::*;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn json(url: &str) -> serde_json::Value {
    agent()
        .get(url)
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_json().ok())
        .unwrap_or_default()
}

fn main() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut c = cluster(d);

    // Start to ready: process spawn until it has reported its addresses and answers on its
    // API (each node dials the ones already running).
    let mut ready_ms = Vec::new();
    for i in 0..4 {
        let t = Instant::now();
        c.start(i);
        ready_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let base: Vec<String> = (0..4).map(|i| api(d, i)).collect();
    assert!(
        eventually(30, || (0..4).all(|i| connected(d, i).len() == 3)),
        "mesh did not form"
    );

    // Edit on one node (through its API), until visible on the other three.
    let tokens: Vec<String> = J
        .iter()
        .map(|j| {
            std::fs::read_to_string(d.join(format!("{j}-data/api.token")))
                .expect("token")
                .trim()
                .to_owned()
        })
        .collect();
    let a = agent();
    let mut latencies = Vec::new();
    for n in 0..40usize {
        let i = n % 4;
        let value = format!("bench {n}");
        let t = Instant::now();
        let r = a
            .post(format!("{}/v1/catalogue/CAP-B01", base[i]))
            .header("Authorization", &format!("Bearer {}", tokens[i]))
            .send_json(serde_json::json!({ "set": [["effort", value]] }))
            .expect("edit");
        assert!(r.status().is_success());
        for k in (0..4).filter(|k| *k != i) {
            while json(&format!("{}/v1/catalogue/CAP-B01", base[k]))["effort"] != value.as_str() {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "edit {n} never arrived"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    ready_ms.sort_by(f64::total_cmp);

    // Last signature -> promoted on all four, artifacts already mirrored: 10 releases, each
    // proposed at EU, mirrored, signed by 3 leads and a security lead through the CLI; then
    // AU's lead signature is POSTed and the clock runs until every node reports it live.
    let au_lead = accord_trust::SecretKey::read(&d.join("au/lead.key"), PASS).expect("au lead key");
    std::fs::write(d.join("artifact.bin"), vec![7u8; 1 << 20]).expect("artifact");
    let mut promote_ms = Vec::new();
    for n in 0..10u32 {
        let version = format!("2.{n}.0");
        let key = format!("CAP-B01@{version}");
        ok(accord(
            d,
            &[
                "release",
                "propose",
                "CAP-B01",
                &version,
                "artifact.bin",
                "--data-dir",
                "eu-data",
            ],
        ));
        let view = |k: usize| json(&format!("{}/v1/releases/{key}", base[k]));
        let t = Instant::now();
        while !(0..4).all(|k| view(k)["artifacts"][0]["held"][J[k]] == serde_json::json!(1 << 20)) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{key} not mirrored: {:#}",
                serde_json::Value::Array((0..4).map(view).collect())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for (signer, at) in [
            ("uk/lead", "uk"),
            ("eu/lead", "eu"),
            ("ca/lead", "ca"),
            ("uk/security", "uk"),
        ] {
            ok(accord(
                d,
                &[
                    "release",
                    "sign",
                    &key,
                    "--key",
                    &format!("{signer}.key"),
                    "--yes",
                    "--data-dir",
                    &format!("{at}-data"),
                ],
            ));
        }
        let stmt: serde_json::Value = a
            .get(format!("{}/v1/releases/{key}/statement", base[3]))
            .call()
            .expect("statement")
            .body_mut()
            .read_json()
            .expect("json");
        let mut env =
            accord_protocol::Envelope::from_json(&serde_json::to_vec(&stmt).expect("json"))
                .expect("envelope");
        env.signatures.clear();
        accord_trust::sign_envelope(&mut env, &au_lead);
        let t = Instant::now();
        let r = a
            .post(format!("{}/v1/signatures", base[3]))
            .header("Authorization", &format!("Bearer {}", tokens[3]))
            .header("Content-Type", "application/json")
            .send(&env.to_json()[..])
            .expect("signature");
        assert!(r.status().is_success());
        let live = |k: usize| {
            view(k)["jurisdictions"].as_array().is_some_and(|js| {
                js.iter()
                    .any(|j| j["jurisdiction"] == J[k] && j["state"] == "live")
            })
        };
        while !(0..4).all(live) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{key} not promoted everywhere: {:#}",
                serde_json::Value::Array((0..4).map(view).collect())
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        promote_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    promote_ms.sort_by(f64::total_cmp);

    // Idle RSS after the traffic stops.
    std::thread::sleep(Duration::from_secs(5));
    let rss: Vec<f64> = (0..4).filter_map(|i| c.pid(i)).map(rss_mib).collect();
    let max_rss = rss.iter().copied().fold(0.0, f64::max);

    c.stop_all();

    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| edit on one node -> visible on the other three (40 edits, API to API) | median {:.1} ms, p90 {:.1} ms, max {:.1} ms | median < 250 ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies[latencies.len() - 1]
    );
    println!(
        "| idle RSS per node (max of 4) | {max_rss:.1} MiB ({}) | < 60 MiB |",
        rss.iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| last signature -> live on all four nodes (10 releases, artifacts mirrored) | median {:.0} ms, p90 {:.0} ms, max {:.0} ms | median < 1 s |",
        percentile(&promote_ms, 0.5),
        percentile(&promote_ms, 0.9),
        promote_ms[promote_ms.len() - 1]
    );
    println!(
        "| node start to ready (spawn to 'ready', 4 nodes) | median {:.0} ms, max {:.0} ms | < 500 ms |",
        percentile(&ready_ms, 0.5),
        ready_ms[ready_ms.len() - 1]
    );
}
