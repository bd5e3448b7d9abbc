//! Four real `accord node run` processes on 127.0.0.1: catalogue edits made on each node
//! while it was offline reach all four once they run, and survive SIGTERM, SIGKILL and
//! restarts.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Cluster {
    dir: std::path::PathBuf,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn start(&mut self, i: usize) {
        let j = J[i];
        let child = Command::new(env!("CARGO_BIN_EXE_accord"))
            .current_dir(&self.dir)
            .args(["node", "run", "--config", &format!("{j}.toml")])
            .env("ACCORD_PASSPHRASE", PASS)
            .env("ACCORD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join(format!("{j}.log"))).expect("log"),
            ))
            .spawn()
            .expect("spawn node");
        self.children[i] = Some(child);
    }

    /// SIGTERM (graceful) or SIGKILL, then wait for the process to end.
    fn stop(&mut self, i: usize, kill: bool) {
        if let Some(mut c) = self.children[i].take() {
            let sig = if kill { "-KILL" } else { "-TERM" };
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    fn stop_all(&mut self) {
        for i in 0..4 {
            self.stop(i, false);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn field(d: &Path, j: &str, cap: &str, name: &str) -> String {
    show_json(d, &format!("{j}-data"), cap)[name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn edit(d: &Path, j: &str, cap: &str, set: &str) {
    ok(accord(
        d,
        &[
            "catalogue",
            "edit",
            cap,
            "--data-dir",
            &format!("{j}-data"),
            "--set",
            set,
        ],
    ));
}

/// Runs the given nodes, stops them gracefully, and checks `expect` on every data dir;
/// retries a few times (bounded) while the nodes are still exchanging.
fn converge(c: &mut Cluster, run: &[usize], expect: &[(&str, &str, &str)]) {
    for attempt in 0..6 {
        for &i in run {
            c.start(i);
        }
        std::thread::sleep(Duration::from_secs(2 + attempt));
        c.stop_all();
        let done = run.iter().all(|&i| {
            expect
                .iter()
                .all(|(cap, name, value)| field(&c.dir, J[i], cap, name) == *value)
        });
        if done {
            return;
        }
    }
    let logs: Vec<String> = run
        .iter()
        .map(|&i| std::fs::read_to_string(c.dir.join(format!("{}.log", J[i]))).unwrap_or_default())
        .collect();
    panic!("nodes did not converge; logs:\n{}", logs.join("\n----\n"));
}

/// The API base URL of node `i`, from its config.
fn api(d: &Path, i: usize) -> String {
    let cfg = std::fs::read_to_string(d.join(format!("{}.toml", J[i]))).expect("cfg");
    let line = cfg
        .lines()
        .find(|l| l.starts_with("api = "))
        .expect("api line");
    format!(
        "http://{}",
        line.trim_start_matches("api = ").trim_matches('"')
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn wait_up(d: &Path, i: usize) {
    let agent = agent();
    for _ in 0..100 {
        if agent.get(format!("{}/health", api(d, i))).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("node {} API never came up", J[i]);
}

fn metric(d: &Path, i: usize, name: &str) -> f64 {
    let mut resp = agent()
        .get(format!("{}/metrics", api(d, i)))
        .call()
        .expect("metrics");
    let text = resp.body_mut().read_to_string().expect("text");
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

/// Keys, root, four data dirs and configs (TCP on free loopback ports, full-mesh bootstrap).
fn cluster(d: &Path) -> Cluster {
    cooperative(d);
    signed_root(d);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    for (i, j) in J.iter().enumerate() {
        ok(accord(
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
        ));
        // Every node listens on TCP and QUIC; odd nodes dial their peers over QUIC.
        let bootstrap: Vec<String> = (0..4)
            .filter(|k| *k != i)
            .map(|k| {
                if i % 2 == 1 {
                    format!("\"/ip4/127.0.0.1/udp/{}/quic-v1\"", ports[k])
                } else {
                    format!("\"/ip4/127.0.0.1/tcp/{}\"", ports[k])
                }
            })
            .collect();
        let cfg = format!(
            "jurisdiction = \"{j}\"\ndata_dir = \"{j}-data\"\nlisten = [\"/ip4/127.0.0.1/tcp/{p}\", \"/ip4/127.0.0.1/udp/{p}/quic-v1\"]\nbootstrap = [{}]\napi = \"127.0.0.1:{}\"\nanti_entropy_secs = 1\n",
            bootstrap.join(", "),
            free_port(),
            p = ports[i],
        );
        std::fs::write(d.join(format!("{j}.toml")), cfg).expect("config");
    }
    Cluster {
        dir: d.to_owned(),
        children: (0..4).map(|_| None).collect(),
    }
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
    converge(&mut c, &[0, 1, 2, 3], &first);

    // AU is away while UK and CA edit; EU is killed with SIGKILL mid-run; all converge later.
    edit(d, "uk", "CAP-E02", "effort=UK, 6 weeks");
    edit(d, "au", "CAP-E03", "effort=AU, 4 weeks");
    for i in [0, 1, 2] {
        c.start(i);
    }
    std::thread::sleep(Duration::from_millis(1500));
    c.stop(1, true);
    c.stop_all();
    let second = [
        ("CAP-B01", "status", "staging"),
        ("CAP-E02", "effort", "UK, 6 weeks"),
        ("CAP-E03", "effort", "AU, 4 weeks"),
    ];
    converge(&mut c, &[0, 1, 2, 3], &second);

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
    let mut seen = false;
    for _ in 0..150 {
        seen = (0..4).all(|i| {
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
        });
        if seen {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let uk_port: u16 = {
        let cfg = std::fs::read_to_string(d.join("uk.toml")).expect("cfg");
        let l = cfg
            .lines()
            .find(|l| l.starts_with("listen"))
            .expect("listen");
        l.split("/tcp/")
            .nth(1)
            .and_then(|p| p.split('"').next())
            .and_then(|p| p.parse().ok())
            .expect("port")
    };
    let eu_key = accord_trust::SecretKey::read(&d.join("eu/node.key"), PASS).expect("eu key");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let uk_pub = accord_trust::PublicKey::read(&d.join("uk/node.key.pub")).expect("uk pub");
    let uk_peer = accord_net::peer_id(&uk_pub.raw()).expect("uk peer");
    let closed = rt.block_on(hostile_peer(eu_key.seed_bytes(), uk_peer, uk_port));
    assert!(closed, "UK did not drop the peer that sent garbage");
    assert!(metric(d, 0, "accord_sync_rejected_messages_total") >= 1.0);

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
    let mut seen = false;
    for _ in 0..150 {
        let mut r = agent
            .get(format!("{}/v1/catalogue/CAP-H01", api(d, 2)))
            .call()
            .expect("get");
        let v: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
        if v["effort"] == "after the attack" {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen, "CA stopped syncing with UK after the attack");

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
        format!("jurisdiction = \"x\"\ndata_dir = \"x-data\"\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]\nbootstrap = [\"/ip4/127.0.0.1/tcp/{uk_port}\"]\napi = \"127.0.0.1:{}\"\n", free_port(), free_port()),
    )
    .expect("cfg");
    let mut stranger = Command::new(env!("CARGO_BIN_EXE_accord"))
        .current_dir(&other)
        .args(["node", "run", "--config", "x.toml"])
        .env("ACCORD_PASSPHRASE", PASS)
        .env("ACCORD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stranger");
    std::thread::sleep(Duration::from_secs(3));
    let _ = stranger.kill();
    let _ = stranger.wait();
    // UK saw only CA (the one listed peer running), never the stranger.
    let mut r = agent
        .get(format!("{}/v1/peers", api(d, 0)))
        .call()
        .expect("peers");
    let peers: serde_json::Value = r.body_mut().read_json().expect("json");
    let connected: Vec<&str> = peers
        .as_array()
        .expect("list")
        .iter()
        .filter(|p| p["connected"] == true)
        .filter_map(|p| p["jurisdiction"].as_str())
        .collect();
    assert_eq!(connected, vec!["ca"], "{peers}");
    c.stop_all();
    let log = std::fs::read_to_string(d.join("uk.log")).expect("log");
    assert!(log.contains("refused an incoming connection"), "{log}");
}

/// Connects to UK with a listed key, sends garbage as a sync message, and reports whether
/// UK closed the connection.
async fn hostile_peer(seed: [u8; 32], uk: accord_net::libp2p::PeerId, uk_port: u16) -> bool {
    use accord_net::libp2p::futures::StreamExt;
    use accord_net::libp2p::swarm::SwarmEvent;
    let kp = accord_net::keypair(seed).expect("keypair");
    let mut swarm = accord_net::build(kp, &[uk]).expect("swarm");
    let addr: accord_net::libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{uk_port}")
        .parse()
        .expect("addr");
    swarm.dial(addr).expect("dial");
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
