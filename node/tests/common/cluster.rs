//! A cooperative of real `accord node run` processes on 127.0.0.1, for the end-to-end tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

/// A UDP port free on loopback now (for the blob endpoint).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Names a node of a test cluster: an index into J (0 = uk …) or a config name ("uk2").
pub trait NodeName {
    fn name(&self) -> String;
}

impl NodeName for usize {
    fn name(&self) -> String {
        J[*self].to_owned()
    }
}

impl NodeName for &str {
    fn name(&self) -> String {
        (*self).to_owned()
    }
}

pub struct Cluster {
    pub dir: std::path::PathBuf,
    /// Config names (`uk` reads `uk.toml`), the first four in J's order.
    pub names: Vec<String>,
    pub children: Vec<Option<Child>>,
}

impl Cluster {
    /// Starts node `i` (its index in `names`).
    pub fn start(&mut self, i: usize) {
        let j = self.names[i].clone();
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
    pub fn stop(&mut self, i: usize, kill: bool) {
        if let Some(mut c) = self.children[i].take() {
            let sig = if kill { "-KILL" } else { "-TERM" };
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    pub fn stop_all(&mut self) {
        for i in 0..self.children.len() {
            self.stop(i, false);
        }
    }

    /// Registers one more node whose `name.toml` exists; returns its index.
    pub fn add(&mut self, name: &str) -> usize {
        self.names.push(name.to_owned());
        self.children.push(None);
        self.names.len() - 1
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

pub fn field(d: &Path, j: &str, cap: &str, name: &str) -> String {
    show_json(d, &format!("{j}-data"), cap)[name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn edit(d: &Path, j: &str, cap: &str, set: &str) {
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
pub fn converge(c: &mut Cluster, run: &[usize], expect: &[(&str, &str, &str)]) {
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
pub fn api(d: &Path, i: impl NodeName) -> String {
    let cfg = std::fs::read_to_string(d.join(format!("{}.toml", i.name()))).expect("cfg");
    let line = cfg
        .lines()
        .find(|l| l.starts_with("api = "))
        .expect("api line");
    format!(
        "http://{}",
        line.trim_start_matches("api = ").trim_matches('"')
    )
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

pub fn wait_up(d: &Path, i: impl NodeName) {
    let agent = agent();
    let url = format!("{}/health", api(d, i.name().as_str()));
    for _ in 0..300 {
        if agent.get(&url).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("node {} API never came up", i.name());
}

pub fn metric(d: &Path, i: impl NodeName, name: &str) -> f64 {
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
pub fn cluster(d: &Path) -> Cluster {
    cooperative(d);
    signed_root(d);
    nodes(d)
}

/// The four nodes' data dirs and configs, for a cooperative and root already in `d`.
pub fn nodes(d: &Path) -> Cluster {
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
            "jurisdiction = \"{j}\"\ndata_dir = \"{j}-data\"\nlisten = [\"/ip4/127.0.0.1/tcp/{p}\", \"/ip4/127.0.0.1/udp/{p}/quic-v1\"]\nbootstrap = [{}]\napi = \"127.0.0.1:{}\"\nblobs_listen = \"127.0.0.1:{}\"\nanti_entropy_secs = 1\n",
            bootstrap.join(", "),
            free_port(),
            free_udp_port(),
            p = ports[i],
        );
        std::fs::write(d.join(format!("{j}.toml")), cfg).expect("config");
    }
    Cluster {
        dir: d.to_owned(),
        names: J.iter().map(|j| (*j).to_owned()).collect(),
        children: (0..4).map(|_| None).collect(),
    }
}

/// The jurisdictions node `i` reports as connected.
pub fn connected(d: &Path, i: impl NodeName) -> Vec<String> {
    let mut r = agent()
        .get(format!("{}/v1/peers", api(d, i)))
        .call()
        .expect("peers");
    let peers: serde_json::Value = r.body_mut().read_json().expect("json");
    let mut out: Vec<String> = peers
        .as_array()
        .expect("list")
        .iter()
        .filter(|p| p["connected"] == true)
        .filter_map(|p| p["jurisdiction"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// Polls `check` every 100 ms for up to `secs` seconds.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The TCP port node `i` listens on, from its config.
pub fn tcp_port(d: &Path, i: impl NodeName) -> u16 {
    let cfg = std::fs::read_to_string(d.join(format!("{}.toml", i.name()))).expect("cfg");
    let l = cfg
        .lines()
        .find(|l| l.starts_with("listen"))
        .expect("listen");
    l.split("/tcp/")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// One more node for `jurisdiction`, named `name` (config `name.toml`, data `name-data`),
/// initialised with the root chain `roots` and `key`, dialling the four nodes of the
/// cluster over TCP. `extra` is appended to its config.
pub fn extra_node(
    d: &Path,
    name: &str,
    jurisdiction: &str,
    key: &str,
    roots: &[&str],
    extra: &str,
) {
    let mut args = vec![
        "init".to_owned(),
        "--data-dir".into(),
        format!("{name}-data"),
        "--node-key".into(),
        key.into(),
    ];
    for r in roots {
        args.push("--root".into());
        args.push((*r).to_owned());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(accord(d, &refs));
    let bootstrap: Vec<String> = (0..4)
        .map(|k| format!("\"/ip4/127.0.0.1/tcp/{}\"", tcp_port(d, k)))
        .collect();
    let p = free_port();
    let cfg = format!(
        "jurisdiction = \"{jurisdiction}\"\ndata_dir = \"{name}-data\"\nlisten = [\"/ip4/127.0.0.1/tcp/{p}\"]\nbootstrap = [{}]\napi = \"127.0.0.1:{}\"\nblobs_listen = \"127.0.0.1:{}\"\nanti_entropy_secs = 1\n{extra}",
        bootstrap.join(", "),
        free_port(),
        free_udp_port(),
    );
    std::fs::write(d.join(format!("{name}.toml")), cfg).expect("config");
}
