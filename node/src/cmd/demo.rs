//! `accord demo`: the mission in one command. A fresh four-jurisdiction cooperative (keys,
//! root v1) starts four real nodes on loopback in a temporary directory; EU proposes a
//! release with artifacts, every node mirrors them, the leads and a security lead co-sign
//! (Australia's lead air-gapped, through export-statement / sign / import-signature), each
//! node promotes on its own, and with every node stopped a deploy pipeline fetches the
//! artifacts from a node's production channel. Every step is the real command, run as a
//! child process and shown as `$ accord …`, so the narrative is also the manual.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accord_protocol::Timestamp;
use accord_trust::{SecretKey, TrustedRoot, sign_envelope};
use anyhow::{Context, Result, bail};

use crate::cli::DemoArgs;
use crate::client::Node;
use crate::cmd::{keys, root};
use crate::datadir::DataDir;
use crate::files::write_atomic;

const JURISDICTIONS: [(&str, &str); 4] = [
    ("uk", "United Kingdom"),
    ("eu", "European Union"),
    ("ca", "Canada"),
    ("au", "Australia"),
];
const ROLES: [&str; 4] = ["lead", "security", "steering", "node"];
const RELEASE: &str = "CAP-B01@1.4.0";

struct Step {
    start: Instant,
    n: usize,
}

impl Step {
    fn say(&mut self, title: &str) {
        self.n += 1;
        println!(
            "\n[{:>6.2}s] {}. {title}",
            self.start.elapsed().as_secs_f64(),
            self.n
        );
    }
}

fn passphrase(j: &str) -> String {
    format!("demo passphrase of {j}")
}

/// The four node processes; stopped (SIGTERM, then SIGKILL) however the demo ends.
struct Nodes {
    children: Vec<(String, Child)>,
}

impl Nodes {
    fn stop_all(&mut self) {
        for (_, c) in &self.children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for (_, c) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Nodes {
    /// Fails with the node's own last log line when one has exited.
    fn check_alive(&mut self, dir: &Path) -> Result<()> {
        for (j, c) in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                let log = std::fs::read_to_string(dir.join(j.as_str()).join("node.log"))
                    .unwrap_or_default();
                bail!(
                    "the {j} node exited ({status}): {}",
                    log.lines().last().unwrap_or("(no log)")
                );
            }
        }
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

struct Demo {
    dir: PathBuf,
    exe: PathBuf,
}

impl Demo {
    /// Runs `accord ARGS` as `j`'s operator would, shows the command and its output.
    fn run(&self, j: &str, args: &[&str], show_stderr: bool) -> Result<String> {
        println!("  $ accord {}", args.join(" "));
        let out = Command::new(&self.exe)
            .current_dir(&self.dir)
            .args(args)
            .env("ACCORD_PASSPHRASE", passphrase(j))
            .env_remove("ACCORD_DATA_DIR")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if show_stderr {
            print!("{}", indent(&stderr, 4));
        }
        print!("{}", indent(&stdout, 4));
        if !out.status.success() {
            bail!(
                "'accord {}' failed: {}",
                args.join(" "),
                stderr.lines().last().unwrap_or("(no message)")
            );
        }
        Ok(stdout)
    }

    fn node(&self, j: &str) -> Result<Node> {
        Node::running(&DataDir::new(&self.dir.join(j).join("node")))
            .with_context(|| format!("the {j} node is not answering"))
    }

    /// `j`'s own state for the release: live, waiting, recalled, superseded.
    fn state(&self, j: &str) -> Option<String> {
        let v: crate::artifacts::ReleaseView = self
            .node(j)
            .ok()?
            .get(&format!("/v1/releases/{RELEASE}"))
            .ok()?;
        v.jurisdictions
            .into_iter()
            .find(|x| x.jurisdiction == j)
            .map(|x| x.state)
    }
}

fn free_port(udp: bool) -> Result<u16> {
    Ok(if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    })
}

/// Polls `check` every 20 ms until it holds or `secs` pass.
fn wait_for(secs: u64, what: &str, mut check: impl FnMut() -> bool) -> Result<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if check() {
            return Ok(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("gave up after {secs} s waiting for {what}")
}

pub fn run(args: DemoArgs) -> Result<()> {
    let tmp;
    let dir: PathBuf = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            std::path::absolute(d)?
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().to_owned()
        }
    };
    let demo = Demo {
        dir: dir.clone(),
        exe: std::env::current_exe().context("cannot find the accord binary")?,
    };
    let mut step = Step {
        start: Instant::now(),
        n: 0,
    };
    println!("Accord demo: four sovereign jurisdictions run their own nodes on this machine");
    println!(
        "(loopback only, nothing leaves it). Working in {}",
        dir.display()
    );

    step.say("Each jurisdiction generates its keys on its own site (passphrase-protected)");
    for (j, _) in JURISDICTIONS {
        let site = dir.join(j);
        std::fs::create_dir_all(&site)?;
        let mut ids = Vec::new();
        for role in ROLES {
            let public = keys::generate(&site.join(format!("{role}.key")), &passphrase(j), true)?;
            ids.push(format!("{role} {}", public.id().short()));
        }
        println!("  {j}: {}", ids.join(", "));
    }

    step.say("The steering committee builds root v1; a majority (uk, eu, ca) signs it");
    let spec = dir.join("root.toml");
    write_atomic(
        &spec,
        root_spec(Timestamp::now().plus_days(365)).as_bytes(),
        false,
    )?;
    let mut env = root::new_from_spec(&spec)?;
    for j in ["uk", "eu", "ca"] {
        sign_envelope(&mut env, &load(&dir, j, "steering")?);
    }
    write_atomic(&dir.join("root.json"), &env.to_json(), false)?;
    let trusted = TrustedRoot::anchor(&env.to_json())?;
    println!(
        "  root v{}: promote needs {}",
        trusted.version(),
        trusted
            .body()
            .rules
            .promote
            .all_of
            .iter()
            .map(|r| r.describe(trusted.body()))
            .collect::<Vec<_>>()
            .join(" AND ")
    );

    step.say("Each jurisdiction installs root v1 on its node and starts it");
    let ports: Vec<u16> = (0..4).map(|_| free_port(false)).collect::<Result<_>>()?;
    let mut nodes = Nodes {
        children: Vec::new(),
    };
    for (i, (j, _)) in JURISDICTIONS.iter().enumerate() {
        demo.run(
            j,
            &[
                "init",
                "--data-dir",
                &format!("{j}/node"),
                "--root",
                "root.json",
                "--node-key",
                &format!("{j}/node.key"),
            ],
            false,
        )?;
        let bootstrap: Vec<String> = (0..4)
            .filter(|k| *k != i)
            .map(|k| format!("\"/ip4/127.0.0.1/tcp/{}\"", ports[k]))
            .collect();
        let cfg = format!(
            "jurisdiction = \"{j}\"\ndata_dir = \"node\"\nlisten = [\"/ip4/127.0.0.1/tcp/{}\"]\nbootstrap = [{}]\napi = \"127.0.0.1:{}\"\nblobs_listen = \"127.0.0.1:{}\"\nanti_entropy_secs = 1\n",
            ports[i],
            bootstrap.join(", "),
            free_port(false)?,
            free_port(true)?,
        );
        write_atomic(&dir.join(j).join("node.toml"), cfg.as_bytes(), false)?;
        println!("  $ accord node run --config {j}/node.toml &");
        let log = std::fs::File::create(dir.join(j).join("node.log"))?;
        let child = Command::new(&demo.exe)
            .current_dir(&dir)
            .args(["node", "run", "--config", &format!("{j}/node.toml")])
            .env("ACCORD_PASSPHRASE", passphrase(j))
            .env("ACCORD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start a node")?;
        nodes.children.push((j.to_string(), child));
    }
    let took = wait_for(60, "all four nodes to connect", || {
        if nodes.check_alive(&dir).is_err() {
            return true;
        }
        JURISDICTIONS.iter().all(|(j, _)| {
            demo.node(j)
                .and_then(|n| n.get::<Vec<crate::api::PeerView>>("/v1/peers"))
                .is_ok_and(|p| p.iter().filter(|p| p.connected).count() == 3)
        })
    })?;
    nodes.check_alive(&dir)?;
    println!(
        "  every node is connected to the other three ({} ms); logs in <site>/node.log",
        took.as_millis()
    );

    step.say("EU's supplier CI proposes CAP-B01 1.4.0 with three artifacts at the EU node");
    let art = dir.join("artifacts");
    std::fs::create_dir_all(&art)?;
    let files = write_artifacts(&art)?;
    let mut propose = vec!["release", "propose", "CAP-B01", "1.4.0"];
    let names: Vec<String> = files.iter().map(|f| rel(&dir, f)).collect();
    propose.extend(names.iter().map(String::as_str));
    propose.extend(["--data-dir", "eu/node"]);
    demo.run("eu", &propose, false)?;

    step.say("Every node mirrors the artifacts from its peers, verified chunk by chunk (BLAKE3)");
    let took = wait_for(120, "the artifacts to reach every node", || {
        JURISDICTIONS.iter().all(|(j, _)| {
            demo.node(j)
                .and_then(|n| {
                    n.get::<crate::artifacts::ReleaseView>(&format!("/v1/releases/{RELEASE}"))
                })
                .is_ok_and(|v| v.missing_on(j).is_empty())
        })
    })?;
    println!(
        "  uk, ca and au hold every artifact, verified ({} ms)",
        took.as_millis()
    );

    step.say("Leads sign at their own sites' nodes; each sees exactly what it signs");
    for (i, (j, role)) in [
        ("uk", "lead"),
        ("eu", "lead"),
        ("ca", "lead"),
        ("uk", "security"),
    ]
    .into_iter()
    .enumerate()
    {
        demo.run(
            j,
            &[
                "release",
                "sign",
                RELEASE,
                "--key",
                &format!("{j}/{role}.key"),
                "--yes",
                "--data-dir",
                &format!("{j}/node"),
            ],
            i == 0,
        )?;
    }

    step.say("Three of four leads: no node promotes. The AU node explains why not");
    wait_for(30, "the signatures to reach AU", || {
        demo.node("au")
            .and_then(|n| {
                n.get::<crate::artifacts::ReleaseView>(&format!("/v1/releases/{RELEASE}"))
            })
            .is_ok_and(|v| v.signatures == 4)
    })?;
    demo.run(
        "au",
        &["release", "status", RELEASE, "--data-dir", "au/node"],
        false,
    )?;
    if JURISDICTIONS
        .iter()
        .any(|(j, _)| demo.state(j).as_deref() == Some("live"))
    {
        bail!("demo invariant broken: a node promoted with 3 of 4 lead signatures");
    }

    step.say("Australia's lead signs air-gapped: statement out, signed with no node, signature in");
    demo.run(
        "au",
        &[
            "release",
            "export-statement",
            RELEASE,
            "--out",
            "au/statement.json",
            "--data-dir",
            "au/node",
        ],
        false,
    )?;
    println!("  (on the air-gapped laptop: no node, no network)");
    demo.run(
        "au",
        &[
            "release",
            "sign",
            "au/statement.json",
            "--key",
            "au/lead.key",
            "--out",
            "au/signature.json",
            "--yes",
        ],
        false,
    )?;
    let last = Instant::now();
    demo.run(
        "au",
        &[
            "release",
            "import-signature",
            "au/signature.json",
            "--data-dir",
            "au/node",
        ],
        false,
    )?;

    step.say("Each node checks every signature itself and promotes on its own");
    let mut promoted: Vec<(&str, Duration)> = Vec::new();
    while promoted.len() < 4 && last.elapsed() < Duration::from_secs(60) {
        for (j, _) in JURISDICTIONS {
            if !promoted.iter().any(|(p, _)| *p == j) && demo.state(j).as_deref() == Some("live") {
                promoted.push((j, last.elapsed()));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for (j, t) in &promoted {
        println!(
            "  {j}: live in production {:>5} ms after the last signature",
            t.as_millis()
        );
    }
    if promoted.len() < 4 {
        bail!("not every node promoted within 60 s (see <site>/node.log)");
    }
    demo.run(
        "ca",
        &["release", "status", RELEASE, "--data-dir", "ca/node"],
        false,
    )?;

    step.say(
        "Networking stops: every node shuts down. CA's deploy pipeline fetches from production",
    );
    nodes.stop_all();
    demo.run(
        "ca",
        &[
            "fetch",
            RELEASE,
            "--channel",
            "production",
            "--out",
            "ca/deploy",
            "--data-dir",
            "ca/node",
        ],
        false,
    )?;
    for f in &files {
        let name = f.file_name().context("artifact name")?;
        if std::fs::read(f)? != std::fs::read(dir.join("ca/deploy").join(name))? {
            bail!("demo invariant broken: {} differs", name.display());
        }
    }
    println!("  all three files are byte-identical to what EU proposed");

    step.say("Every node's audit log verifies: hash-chained, each entry signed by its node key");
    for (j, _) in JURISDICTIONS {
        demo.run(
            j,
            &["audit", "verify", "--data-dir", &format!("{j}/node")],
            false,
        )?;
    }

    println!(
        "\n[{:>6.2}s] done: proposed, mirrored, co-signed (one air-gapped), promoted by each node on its own, fetched offline.",
        step.start.elapsed().as_secs_f64()
    );
    match &args.keep {
        Some(d) => println!("files kept in {}", d.display()),
        None => println!("temporary directory removed"),
    }
    Ok(())
}

fn load(dir: &Path, j: &str, role: &str) -> Result<SecretKey> {
    Ok(SecretKey::read(
        &dir.join(j).join(format!("{role}.key")),
        &passphrase(j),
    )?)
}

fn root_spec(expires: Timestamp) -> String {
    let mut s = format!("version = 1\nexpires = \"{expires}\"\n");
    for (j, name) in JURISDICTIONS {
        s.push_str(&format!("\n[principals.{j}]\nname = \"{name}\"\n"));
        for role in ROLES {
            s.push_str(&format!("{role} = {{ keys = [\"{j}/{role}.key.pub\"] }}\n"));
        }
    }
    s
}

fn write_artifacts(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (name, len) in [
        ("object-storage-chart-1.4.0.tgz", 256 * 1024),
        ("object-storage-1.4.0.oci.tar", 24 << 20),
        ("sbom.spdx.json", 12 * 1024),
    ] {
        let mut data = vec![0u8; len];
        // Deterministic, incompressible-looking content.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let p = dir.join(name);
        write_atomic(&p, &data, false)?;
        out.push(p);
    }
    Ok(out)
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines().map(|l| format!("{pad}{l}\n")).collect()
}
