//! Whole-process benchmark of four `accord node run` processes on 127.0.0.1: node start to
//! ready, time from an edit on one node to visibility on the other three, time from a
//! release's last signature to promotion on all four, and idle RSS.
//!
//! Run: `cargo bench -p accord-node --bench node_sync` (release build; prints Markdown).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "bench passphrase";
const J: [&str; 4] = ["uk", "eu", "ca", "au"];
const ROLES: [&str; 4] = ["lead", "security", "steering", "node"];

fn accord(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_accord"))
        .current_dir(dir)
        .args(args)
        .env("ACCORD_PASSPHRASE", PASS)
        .output()
        .expect("run accord");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

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

fn main() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let mut spec = String::from("version = 1\nexpires = \"2099-01-01T00:00:00Z\"\n");
    for j in J {
        std::fs::create_dir_all(d.join(j)).expect("mkdir");
        spec.push_str(&format!("[principals.{j}]\nname = \"{j}\"\n"));
        for role in ROLES {
            accord(
                d,
                &["keys", "generate", "--out", &format!("{j}/{role}.key")],
            );
            spec.push_str(&format!("{role} = {{ keys = [\"{j}/{role}.key.pub\"] }}\n"));
        }
    }
    std::fs::write(d.join("root.toml"), spec).expect("spec");
    accord(
        d,
        &["root", "new", "--spec", "root.toml", "--out", "root.json"],
    );
    for j in ["uk", "eu", "ca"] {
        accord(
            d,
            &[
                "root",
                "sign",
                "root.json",
                "--key",
                &format!("{j}/steering.key"),
            ],
        );
    }
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let apis: Vec<u16> = (0..4).map(|_| free_port()).collect();
    for (i, j) in J.iter().enumerate() {
        accord(
            d,
            &[
                "init",
                "--data-dir",
                &format!("{j}-data"),
                "--root",
                "root.json",
                "--node-key",
                &format!("{j}/node.key"),
            ],
        );
        let boot: Vec<String> = (0..4)
            .filter(|k| *k != i)
            .map(|k| format!("\"/ip4/127.0.0.1/tcp/{}\"", ports[k]))
            .collect();
        std::fs::write(
            d.join(format!("{j}.toml")),
            format!(
                "jurisdiction = \"{j}\"\ndata_dir = \"{j}-data\"\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]\nbootstrap = [{}]\napi = \"127.0.0.1:{}\"\nblobs_listen = \"127.0.0.1:{}\"\n",
                ports[i],
                boot.join(", "),
                apis[i],
                std::net::UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .map(|a| a.port())
                    .expect("udp port")
            ),
        )
        .expect("config");
    }

    // Start to ready: process spawn until it prints its "ready" line (listening, API bound).
    let mut children: Vec<Child> = Vec::new();
    let mut ready_ms = Vec::new();
    for j in J {
        let t = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_accord"))
            .current_dir(d)
            .args(["node", "run", "--config", &format!("{j}.toml")])
            .env("ACCORD_PASSPHRASE", PASS)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.contains("ready"), "{line}");
        ready_ms.push(t.elapsed().as_secs_f64() * 1e3);
        children.push(child);
    }

    let a = agent();
    let base = |i: usize| format!("http://127.0.0.1:{}", apis[i]);
    // Wait for the full mesh.
    let t = Instant::now();
    loop {
        let all = (0..4).all(|i| {
            a.get(format!("{}/health", base(i)))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
                .is_some_and(|v| v["peers_connected"] == 3)
        });
        if all {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "mesh did not form");
        std::thread::sleep(Duration::from_millis(20));
    }

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
    let mut latencies = Vec::new();
    for n in 0..40usize {
        let i = n % 4;
        let value = format!("bench {n}");
        let t = Instant::now();
        let r = a
            .post(format!("{}/v1/catalogue/CAP-B01", base(i)))
            .header("Authorization", &format!("Bearer {}", tokens[i]))
            .send_json(serde_json::json!({ "set": [["effort", value]] }))
            .expect("edit");
        assert!(r.status().is_success());
        for k in (0..4).filter(|k| *k != i) {
            loop {
                let v: serde_json::Value = a
                    .get(format!("{}/v1/catalogue/CAP-B01", base(k)))
                    .call()
                    .expect("get")
                    .body_mut()
                    .read_json()
                    .expect("json");
                if v["effort"] == value.as_str() {
                    break;
                }
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
        accord(
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
        );
        let view = |k: usize| -> serde_json::Value {
            a.get(format!("{}/v1/releases/{key}", base(k)))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json().ok())
                .unwrap_or_default()
        };
        let t = Instant::now();
        while !(0..4).all(|k| view(k)["artifacts"][0]["held"][J[k]] == serde_json::json!(1 << 20)) {
            assert!(t.elapsed() < Duration::from_secs(60), "{key} not mirrored");
            std::thread::sleep(Duration::from_millis(20));
        }
        for (signer, at) in [
            ("uk/lead", "uk"),
            ("eu/lead", "eu"),
            ("ca/lead", "ca"),
            ("uk/security", "uk"),
        ] {
            accord(
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
            );
        }
        let stmt: serde_json::Value = a
            .get(format!("{}/v1/releases/{key}/statement", base(3)))
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
            .post(format!("{}/v1/signatures", base(3)))
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
                "{key} not promoted everywhere"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        promote_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    promote_ms.sort_by(f64::total_cmp);

    // Idle RSS after the traffic stops.
    std::thread::sleep(Duration::from_secs(5));
    let rss: Vec<f64> = children.iter().map(|c| rss_mib(c.id())).collect();
    let max_rss = rss.iter().copied().fold(0.0, f64::max);

    for mut c in children {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let _ = c.wait();
    }

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
