//! Node configuration (`accord node run --config config/uk.toml`): one TOML file per node,
//! validated at start with one clear line per problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use accord_protocol::{PrincipalId, Requirement};
use anyhow::{Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The jurisdiction this node belongs to (must match its node key in the root).
    pub jurisdiction: String,
    /// The data directory made by `accord init`.
    pub data_dir: PathBuf,
    /// libp2p listen addresses (QUIC and/or TCP multiaddrs).
    #[serde(default)]
    pub listen: Vec<String>,
    /// Peers to dial at start: multiaddrs, optionally ending in /p2p/PEER_ID.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Loopback address of the HTTP API.
    #[serde(default = "default_api")]
    pub api: String,
    /// Seconds between anti-entropy rounds with every connected peer.
    #[serde(default = "default_anti_entropy")]
    pub anti_entropy_secs: u64,
    /// Extra requirements this jurisdiction adds to the cooperative rule.
    #[serde(default)]
    pub local_rules: Vec<Requirement>,
}

fn default_api() -> String {
    "127.0.0.1:7200".into()
}

fn default_anti_entropy() -> u64 {
    5
}

impl NodeConfig {
    /// Reads and validates; every problem found is reported, one per line.
    pub fn load(path: &Path) -> Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let mut cfg: NodeConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config {}: {}", path.display(), e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.data_dir.is_relative() {
            cfg.data_dir = base.join(&cfg.data_dir);
        }
        let problems = cfg.problems();
        if !problems.is_empty() {
            bail!(
                "config {} has {} problem(s):\n  {}",
                path.display(),
                problems.len(),
                problems.join("\n  ")
            );
        }
        Ok(cfg)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if PrincipalId::new(&self.jurisdiction).is_err() {
            p.push(format!(
                "jurisdiction {:?} is not a principal id like \"uk\"",
                self.jurisdiction
            ));
        }
        if !self.data_dir.join("node.redb").exists() {
            p.push(format!(
                "data_dir {} is not initialised (run 'accord init --data-dir {}')",
                self.data_dir.display(),
                self.data_dir.display()
            ));
        }
        for a in &self.listen {
            if a.parse::<accord_net::libp2p::Multiaddr>().is_err() {
                p.push(format!(
                    "listen address {a:?} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/7101)"
                ));
            }
        }
        if self.listen.is_empty() {
            p.push("listen is empty: give at least one address".into());
        }
        for a in &self.bootstrap {
            if a.parse::<accord_net::libp2p::Multiaddr>().is_err() {
                p.push(format!("bootstrap address {a:?} is not a multiaddr"));
            }
        }
        match self.api.parse::<SocketAddr>() {
            Ok(sa) if !sa.ip().is_loopback() => p.push(format!(
                "api {} is not a loopback address; the API only listens on loopback",
                self.api
            )),
            Err(_) => p.push(format!(
                "api {:?} is not an address like 127.0.0.1:7200",
                self.api
            )),
            _ => {}
        }
        if self.anti_entropy_secs == 0 {
            p.push("anti_entropy_secs must be at least 1".into());
        }
        p
    }
}
