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
    /// Find peers on the local network with mDNS (multicast; off by default). Discovered
    /// peers must still be node keys of the root.
    #[serde(default)]
    pub mdns: bool,
    /// Per-peer inbound limits on catalogue sync; a peer above them is disconnected.
    #[serde(default)]
    pub limits: Limits,
    /// Where the blob endpoint (iroh, QUIC) listens; its own UDP port beside libp2p's.
    #[serde(default = "default_blobs_listen")]
    pub blobs_listen: String,
    /// Artifact mirroring limits.
    #[serde(default)]
    pub mirror: MirrorConfig,
    /// A command (run with `sh -c`) after each promotion here, with the release in its
    /// environment (ACCORD_RELEASE, ACCORD_CAPABILITY, ACCORD_VERSION, ACCORD_JURISDICTION,
    /// ACCORD_PAYLOAD_SHA256, ACCORD_ARTIFACTS, ACCORD_DATA_DIR). A failure is logged and
    /// retried with backoff; it never un-promotes.
    #[serde(default)]
    pub on_promote: Option<String>,
    /// Seconds between signed audit checkpoints in the catalogue (when the log grew).
    #[serde(default = "default_checkpoint")]
    pub audit_checkpoint_secs: u64,
    /// The oldest this node's view of any other jurisdiction may be (since its last sync
    /// with one of that jurisdiction's nodes or its last bundle import) for production
    /// promotions to go ahead; past it they wait, and `release status` says why. Unset:
    /// no limit.
    #[serde(default)]
    pub max_staleness_secs: Option<u64>,
    /// Days before the current root expires from which the node warns (log, audit log,
    /// metrics, `node status`): the steering committee needs time to sign a successor.
    #[serde(default = "default_expiry_warning")]
    pub root_expiry_warning_days: u64,
    /// Upstream provenance: the Sigstore trusted root this node verifies bundles against,
    /// and which signers may sign which capability. Without it, a release that carries
    /// Sigstore bundles is held here (there is nothing to verify them against).
    #[serde(default)]
    pub sigstore: Option<SigstoreConfig>,
}

/// `[sigstore]`: where the trusted root is, and the identity policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigstoreConfig {
    /// The Sigstore `trusted_root.json` (relative to the config file's directory, or
    /// absolute). Read at start; the node never fetches one. A newer root the steering
    /// committee signed (`accord sigstore-root apply`) takes its place.
    pub trusted_root: PathBuf,
    /// Who may sign which capability's artifacts upstream. A capability matched by any
    /// entry requires provenance for every artifact; its bundles must verify for one of
    /// the matching identities.
    #[serde(default)]
    pub signers: Vec<SignerRule>,
}

/// One identity allowed to sign a capability (or capabilities: `CAP-B*`, or `*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerRule {
    pub capability: String,
    /// Certificate identity, exactly (SAN: URI, e-mail or other name).
    pub identity: String,
    /// OIDC issuer, exactly.
    pub issuer: String,
}

impl SignerRule {
    /// Whether this rule covers `capability`: equal, `*`, or a prefix ending in `*`.
    pub fn covers(&self, capability: &str) -> bool {
        match self.capability.strip_suffix('*') {
            Some(prefix) => capability.starts_with(prefix),
            None => self.capability == capability,
        }
    }
}

fn default_expiry_warning() -> u64 {
    30
}

fn default_checkpoint() -> u64 {
    300
}

fn default_blobs_listen() -> String {
    "127.0.0.1:7300".into()
}

/// Artifact mirroring limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorConfig {
    /// Artifacts larger than this are not mirrored.
    pub max_artifact_mib: u64,
    /// Fetches at once from one peer.
    pub fetches_per_peer: usize,
    /// Fetches at once in total.
    pub fetches_total: usize,
    /// Seconds a peer that sent corrupt data (or stalled) is not asked again.
    pub corrupt_penalty_secs: u64,
    /// Seconds without data after which a fetch is cut off and given to another peer.
    pub stall_secs: u64,
    /// Which announced blob addresses are dialled: same-ip (the address the peer's node
    /// connection comes from), private, or any.
    pub dial: accord_mirror::addresses::DialPolicy,
    /// MiB of unapproved releases mirrored per proposing jurisdiction (staging quota).
    pub staging_quota_mib: u64,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        let l = accord_mirror::Limits::default();
        MirrorConfig {
            max_artifact_mib: l.max_blob_bytes >> 20,
            fetches_per_peer: l.per_peer,
            fetches_total: l.total,
            corrupt_penalty_secs: l.corrupt_penalty.as_secs(),
            stall_secs: l.stall_after.as_secs(),
            dial: Default::default(),
            staging_quota_mib: 64 << 10,
        }
    }
}

impl MirrorConfig {
    pub fn limits(&self) -> accord_mirror::Limits {
        accord_mirror::Limits {
            max_blob_bytes: self.max_artifact_mib.saturating_mul(1 << 20),
            per_peer: self.fetches_per_peer,
            total: self.fetches_total,
            corrupt_penalty: std::time::Duration::from_secs(self.corrupt_penalty_secs),
            stall_after: std::time::Duration::from_secs(self.stall_secs.max(1)),
            ..Default::default()
        }
    }
}

/// Inbound limits per peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub sync_messages_per_sec: f64,
    pub sync_message_burst: f64,
    pub sync_mib_per_sec: f64,
    pub sync_mib_burst: f64,
    /// What the catalogue may hold and what one change or message may bring; every node of
    /// the cooperative should run with the same values (accord_catalogue::Limits).
    pub catalogue_max_ops: u64,
    pub catalogue_max_ops_per_change: u64,
    pub catalogue_max_ops_per_message: u64,
    pub max_releases: usize,
    pub max_artifacts_per_release: usize,
    /// Refused messages (or floods) within a minute that get a peer banned.
    pub strikes_before_ban: u32,
    /// The first ban; each later one doubles, up to an hour.
    pub first_ban_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let b = accord_service::rate::Budget::default();
        let c = accord_catalogue::Limits::default();
        Limits {
            sync_messages_per_sec: b.messages_per_sec,
            sync_message_burst: b.message_burst,
            sync_mib_per_sec: b.bytes_per_sec / MIB,
            sync_mib_burst: b.byte_burst / MIB,
            catalogue_max_ops: c.max_document_ops,
            catalogue_max_ops_per_change: c.max_ops_per_change,
            catalogue_max_ops_per_message: c.max_ops_per_message,
            max_releases: c.max_releases,
            max_artifacts_per_release: c.max_artifacts_per_release,
            strikes_before_ban: 3,
            first_ban_secs: 30,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Limits {
    /// When a misbehaving peer is banned.
    pub fn discipline(&self) -> accord_service::discipline::Policy {
        accord_service::discipline::Policy {
            strikes: self.strikes_before_ban.max(1),
            first_ban: std::time::Duration::from_secs(self.first_ban_secs.max(1)),
            ..Default::default()
        }
    }

    pub fn catalogue(&self) -> accord_catalogue::Limits {
        accord_catalogue::Limits {
            max_ops_per_change: self.catalogue_max_ops_per_change,
            max_ops_per_message: self.catalogue_max_ops_per_message,
            max_document_ops: self.catalogue_max_ops,
            max_releases: self.max_releases,
            max_artifacts_per_release: self.max_artifacts_per_release,
        }
    }

    pub fn budget(&self) -> accord_service::rate::Budget {
        accord_service::rate::Budget {
            messages_per_sec: self.sync_messages_per_sec,
            message_burst: self.sync_message_burst,
            bytes_per_sec: self.sync_mib_per_sec * MIB,
            byte_burst: self.sync_mib_burst * MIB,
        }
    }
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
        if let Some(s) = &mut cfg.sigstore
            && s.trusted_root.is_relative()
        {
            s.trusted_root = base.join(&s.trusted_root);
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
        let l = &self.limits;
        for (name, v) in [
            ("sync_messages_per_sec", l.sync_messages_per_sec),
            ("sync_message_burst", l.sync_message_burst),
            ("sync_mib_per_sec", l.sync_mib_per_sec),
            ("sync_mib_burst", l.sync_mib_burst),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!("limits.{name} must be a positive number"));
            }
        }
        if l.catalogue_max_ops == 0
            || l.catalogue_max_ops_per_change == 0
            || l.catalogue_max_ops_per_message == 0
            || l.max_releases == 0
            || l.max_artifacts_per_release == 0
        {
            p.push("limits.catalogue_* and limits.max_* must be at least 1".into());
        }
        if l.sync_mib_burst < 8.0 {
            p.push("limits.sync_mib_burst must be at least 8 (one full sync message)".into());
        }
        if self.blobs_listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "blobs_listen {:?} is not an address like 127.0.0.1:7301",
                self.blobs_listen
            ));
        }
        if self.mirror.fetches_per_peer == 0 || self.mirror.fetches_total == 0 {
            p.push("mirror.fetches_per_peer and mirror.fetches_total must be at least 1".into());
        }
        if self.anti_entropy_secs == 0 {
            p.push("anti_entropy_secs must be at least 1".into());
        }
        if let Some(s) = &self.sigstore {
            if let Err(e) = crate::provenance::SigstorePolicy::read_root(&s.trusted_root) {
                p.push(format!("sigstore.trusted_root: {e:#}"));
            }
            for r in &s.signers {
                if r.capability.is_empty() || r.identity.is_empty() || r.issuer.is_empty() {
                    p.push(
                        "sigstore.signers: capability, identity and issuer must all be given"
                            .into(),
                    );
                }
            }
        }
        p
    }
}
