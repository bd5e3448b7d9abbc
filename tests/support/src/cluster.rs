//! A cooperative of real `accord node run` processes on 127.0.0.1, for process tests and
//! benchmarks.
//!
//! Every node binds port 0 (its swarm, its API and its blob endpoint) and reports what it
//! got: `DATA/listen.addrs` and `DATA/api.addr`. Starting a node first points its bootstrap
//! list at the nodes already running, then waits until the new node has reported its
//! addresses and answers on its API. No port is picked in advance, so tests running at the
//! same time never collide.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cli::*;

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

impl NodeName for String {
    fn name(&self) -> String {
        self.clone()
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub dir: std::path::PathBuf,
    /// Config names (`uk` reads `uk.toml`, keeps its data in `uk-data`), the first four in
    /// J's order.
    pub names: Vec<String>,
    pub children: Vec<Option<Child>>,
}

impl Cluster {
    /// Starts node `i` (its index in `names`): its bootstrap list becomes the addresses the
    /// running nodes reported (odd nodes dial over QUIC, even ones over TCP); returns once it
    /// has reported its own and answers on its API.
    pub fn start(&mut self, i: usize) {
        self.start_env(i, &[]);
    }

    /// `start`, with extra environment variables for the node process (a test pause point).
    pub fn start_env(&mut self, i: usize, env: &[(&str, &str)]) {
        self.launch(i, env);
        let name = self.names[i].clone();
        // Both transports reported (the nodes started after this one dial one or the other),
        // and the API answers.
        let up = eventually(60, || {
            let addrs = listen_addrs(&self.dir, name.as_str());
            addrs.iter().any(|a| a.contains("/tcp/"))
                && addrs.iter().any(|a| a.contains("/quic-v1"))
                && agent()
                    .get(format!("{}/health", api(&self.dir, name.as_str())))
                    .call()
                    .is_ok()
        });
        if !up {
            let log =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            panic!("node {name} did not come up:\n{log}");
        }
    }

    /// Spawns node `i` without waiting for it (it may be meant to stop at a pause point
    /// before it ever answers).
    pub fn launch(&mut self, i: usize, env: &[(&str, &str)]) {
        let name = self.names[i].clone();
        let quic = i % 2 == 1;
        let bootstrap: Vec<String> = (0..self.names.len())
            .filter(|k| *k != i && self.children[*k].is_some())
            .filter_map(|k| {
                listen_addrs(&self.dir, self.names[k].as_str())
                    .into_iter()
                    .find(|a| a.contains(if quic { "/quic-v1" } else { "/tcp/" }))
            })
            .map(|a| format!("\"{a}\""))
            .collect();
        set_bootstrap(&self.dir, &name, &bootstrap);
        let data = self.dir.join(format!("{name}-data"));
        let _ = std::fs::remove_file(data.join("listen.addrs"));
        let _ = std::fs::remove_file(data.join("api.addr"));
        let child = Command::new(binary())
            .current_dir(&self.dir)
            .args(["node", "run", "--config", &format!("{name}.toml")])
            .env("ACCORD_PASSPHRASE", PASS)
            .env("ACCORD_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("log"),
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

    /// What each node says about its peers, and the warnings in its log: for the message
    /// of an assertion that failed.
    pub fn diagnose(&self) -> String {
        let mut out = String::new();
        for name in &self.names {
            let peers = agent()
                .get(format!("{}/v1/peers", api(&self.dir, name.as_str())))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .unwrap_or_else(|| "(no answer)".into());
            let log =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            let notable: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("WARN")
                        || l.contains("ERROR")
                        || l.contains("connected")
                        || l.contains("refused")
                })
                .collect();
            let tail = &notable[notable.len().saturating_sub(40)..];
            out.push_str(&format!("== {name}: peers {peers}\n{}\n", tail.join("\n")));
        }
        out
    }

    /// The process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
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

/// The addresses node `i`'s swarm reported (empty while it is not running).
pub fn listen_addrs(d: &Path, i: impl NodeName) -> Vec<String> {
    std::fs::read_to_string(d.join(format!("{}-data/listen.addrs", i.name())))
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Rewrites the `bootstrap = [...]` line of `name.toml`.
fn set_bootstrap(d: &Path, name: &str, bootstrap: &[String]) {
    let p = d.join(format!("{name}.toml"));
    let cfg = std::fs::read_to_string(&p).expect("config");
    let line = format!("bootstrap = [{}]", bootstrap.join(", "));
    let out: Vec<String> = cfg
        .lines()
        .map(|l| {
            if l.starts_with("bootstrap = ") {
                line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(p, out.join("\n") + "\n").expect("config");
}

/// A node config on loopback port 0 everywhere, its bootstrap list filled at each start.
pub fn config(name: &str, jurisdiction: &str, extra: &str) -> String {
    format!(
        "jurisdiction = \"{jurisdiction}\"\ndata_dir = \"{name}-data\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\", \"/ip4/127.0.0.1/udp/0/quic-v1\"]\nbootstrap = []\napi = \"127.0.0.1:0\"\nblobs_listen = \"127.0.0.1:0\"\nanti_entropy_secs = 1\n{extra}"
    )
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

/// The API base URL of node `i`, as it reported it.
pub fn api(d: &Path, i: impl NodeName) -> String {
    let addr =
        std::fs::read_to_string(d.join(format!("{}-data/api.addr", i.name()))).unwrap_or_default();
    format!("http://{}", addr.trim())
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Waits until node `i` answers on its API (bounded).
pub fn wait_up(d: &Path, i: impl NodeName) {
    let name = i.name();
    if !eventually(30, || {
        agent()
            .get(format!("{}/health", api(d, name.as_str())))
            .call()
            .is_ok()
    }) {
        panic!("node {name} API never came up");
    }
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

/// Keys, root, four data dirs and configs.
pub fn cluster(d: &Path) -> Cluster {
    cooperative(d);
    signed_root(d);
    nodes(d)
}

/// The four nodes' data dirs and configs, for a cooperative and root already in `d`.
pub fn nodes(d: &Path) -> Cluster {
    for j in J {
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
        std::fs::write(d.join(format!("{j}.toml")), config(j, j, "")).expect("config");
    }
    Cluster {
        dir: d.to_owned(),
        names: J.iter().map(|j| (*j).to_owned()).collect(),
        children: (0..4).map(|_| None).collect(),
    }
}

/// One more node for `jurisdiction`, named `name` (config `name.toml`, data `name-data`),
/// initialised with the root chain `roots` and `key`. `extra` is appended to its config.
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
    std::fs::write(
        d.join(format!("{name}.toml")),
        config(name, jurisdiction, extra),
    )
    .expect("config");
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

/// Polls `check` every 100 ms for up to `secs` seconds: the one way these tests wait.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The TCP port node `i`'s swarm listens on, as it reported it.
pub fn tcp_port(d: &Path, i: impl NodeName) -> u16 {
    listen_addrs(d, i)
        .iter()
        .find_map(|a| {
            a.split("/tcp/")
                .nth(1)
                .and_then(|p| p.split('/').next()?.parse().ok())
        })
        .expect("a TCP listen address")
}
