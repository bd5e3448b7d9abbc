//! Command-line grammar. Exit codes: 0 success, 1 refused or invalid (reason printed),
//! 2 usage error (clap's default).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "accord",
    version,
    about = "Accord: a sovereign cooperative's replicated catalogue and artifact mirror"
)]
pub struct Cli {
    /// Log format on stderr: text or json (structured, one object per line).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the walkthrough: a four-jurisdiction cooperative co-signs a release offline.
    Demo(DemoArgs),
    /// Create a node's data directory: install the first root (out of band), the node key,
    /// and the genesis catalogue.
    Init(InitArgs),
    /// Run a jurisdiction's node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Read and edit the replicated catalogue.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// Generate and inspect Ed25519 keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Build, sign and verify the cooperative's root of trust.
    #[command(subcommand)]
    Root(RootCommand),
    /// Create, co-sign, merge and verify release statements.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Change the Sigstore trusted root nodes verify upstream provenance against, by the
    /// steering committee's signatures (the cooperative root's root rule).
    #[command(subcommand)]
    SigstoreRoot(SigstoreRootCommand),
    /// Write a release's artifacts from this node's store, re-verified; needs no network
    /// and no running node.
    Fetch(FetchArgs),
    /// Delete blobs that no release needs any more: releases gone from the catalogue and
    /// releases withdrawn by a valid recall.
    Gc {
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// The node's append-only, hash-chained, signed audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check upstream provenance (Sigstore bundles) offline.
    #[command(subcommand)]
    Provenance(ProvenanceCommand),
    /// Carry the cooperative's state across an air gap: one file (an OCI image layout in a
    /// tar) with the root chain, the signed catalogue changes and the releases' artifacts.
    #[command(subcommand)]
    Bundle(BundleCommand),
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Write a bundle from a (stopped) node: the root chain, the catalogue's signed changes
    /// (since the receiving site's receipt, with --since), and each release with its
    /// artifacts, verified on the way out.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only these releases (CAP@VER, CAP@VER#IDPREFIX or sha256:ID); all by default.
        #[arg(long, value_name = "RELEASE")]
        release: Vec<String>,
        /// The receipt the receiving site wrote at its last import: only what it lacks.
        #[arg(long, value_name = "RECEIPT")]
        since: Option<PathBuf>,
        /// Split into parts of at most this size (4G, 700M), cut between artifacts: OUT.001,
        /// OUT.002, … and OUT.parts, their list signed by the node key (verify and import
        /// take OUT.parts).
        #[arg(long, value_name = "SIZE")]
        max_part_size: Option<String>,
        #[command(flatten)]
        data_dir: DataDirArg,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Check a bundle with nothing but a pinned root (no network, no data dir): the root
    /// chain, every change's signature and authority, every release against its statement,
    /// every artifact's SHA-256 and BLAKE3; then say what it would let each jurisdiction
    /// promote.
    Verify {
        /// The bundle, or a split bundle's part list (OUT.parts) with its parts beside it.
        file: PathBuf,
        /// The cooperative's first root, as the site pinned it.
        #[arg(long, value_name = "ROOT")]
        root: PathBuf,
        /// Only this jurisdiction's decisions.
        #[arg(long)]
        jurisdiction: Option<String>,
        /// Write a report of the verification for the site's records.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Sign the report with this key (the site's node key or an officer's): it is then
        /// a DSSE envelope (payload type application/vnd.accord.bundle-verification+json).
        #[arg(long, value_name = "KEY", requires = "report")]
        sign_with: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Check one part of a split bundle on its own (on the media it came on) against the
    /// part list: its size and SHA-256. The list's signature is checked by verify and import.
    CheckPart {
        part: PathBuf,
        /// The part list (OUT.parts).
        #[arg(long, value_name = "LIST")]
        list: PathBuf,
    },
    /// Import a bundle into a (stopped) node: all of it verified first, then the artifacts
    /// into the store and the catalogue in one transaction; then a receipt for the next
    /// export --since. The node promotes what its policy allows when it starts.
    Import {
        file: PathBuf,
        /// Where to write the receipt (default: bundle-receipt.json in the data dir).
        #[arg(long, value_name = "FILE")]
        receipt: Option<PathBuf>,
        #[command(flatten)]
        data_dir: DataDirArg,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The release, e.g. CAP-B01@1.4.0.
    pub release: String,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// staging: any fully mirrored release; production: only releases promoted on this node.
    #[arg(long, default_value = "staging", value_parser = ["staging", "production"])]
    pub channel: String,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

/// Sigstore bundle verification, with the flags cosign and sigstore-python use.
#[derive(Debug, Args, Clone)]
pub struct SigstoreArgs {
    /// The trusted root (trusted_root.json) of the Sigstore instance.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: PathBuf,
    /// The signer identity expected in the certificate (SAN), e.g. an email or a workflow URL.
    #[arg(long, value_name = "ID")]
    pub certificate_identity: String,
    /// The OIDC issuer expected in the certificate.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: String,
}

#[derive(Debug, Subcommand)]
pub enum ProvenanceCommand {
    /// Verify a Sigstore bundle for a file, completely offline (exit 0 only when verified).
    Verify {
        file: PathBuf,
        #[arg(long, value_name = "BUNDLE")]
        bundle: PathBuf,
        #[command(flatten)]
        sigstore: SigstoreArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's files in this directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// Where a passphrase comes from: an environment variable, or a prompt on a terminal.
/// Never an argument, since argv is visible to every user of the machine.
#[derive(Debug, Args, Clone)]
pub struct PassphraseArgs {
    /// Environment variable holding the passphrase.
    #[arg(long, default_value = "ACCORD_PASSPHRASE", value_name = "VAR")]
    pub passphrase_env: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a passphrase-protected Ed25519 key (encrypted PKCS#8 PEM) and FILE.pub.
    Generate {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print a key's id and public key (reads a .pub file, or a private key with its passphrase).
    Show {
        file: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Build an unsigned root from a readable TOML spec naming public key files.
    New {
        #[arg(long, value_name = "FILE.toml")]
        spec: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Build the next root (version + 1, unsigned) from the current one and a change:
    /// keys removed (rotated out, revoked) or added, thresholds, a new expiry. To replace a
    /// key, remove the old one and add the new one. The steering representatives then sign
    /// it with 'accord root sign' (online or air-gapped) and any node applies it; the
    /// others walk to it from the catalogue.
    Propose {
        /// The current root (JSON).
        #[arg(long, value_name = "ROOT")]
        from: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A key to take out: its public key file or its id (hex).
        #[arg(long, value_name = "KEY.pub|KEYID")]
        remove_key: Vec<String>,
        /// A key to add: PRINCIPAL/ROLE=KEY.pub, e.g. ca/lead=keys/ca/lead2.key.pub.
        #[arg(long, value_name = "PRINCIPAL/ROLE=KEY.pub")]
        add_key: Vec<String>,
        /// PRINCIPAL/ROLE=N: how many of that role's keys make the principal's decision.
        #[arg(long, value_name = "PRINCIPAL/ROLE=N")]
        threshold: Vec<String>,
        /// When the new root expires (RFC 3339, e.g. 2028-12-31T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
    },
    /// Add a signature to a root (in place unless --out).
    Sign {
        root: PathBuf,
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Verify a root: against itself (first root), or as the successor of --trusted,
    /// walking every intermediate root given with --via.
    Verify {
        root: PathBuf,
        /// The root you already trust.
        #[arg(long, value_name = "OLD")]
        trusted: Option<PathBuf>,
        /// Intermediate roots between --trusted and ROOT, oldest first.
        #[arg(long, value_name = "ROOT")]
        via: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Install a successor root on a node: verified against the node's current root (TUF
    /// rules), then it decides who may connect and whose signatures count. Goes through the
    /// running node when there is one.
    Apply {
        root: PathBuf,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Print a root's principals, keys and rules.
    Show {
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Propose a release at a node: import the files into its blob store, build the release
    /// statement and record it in the catalogue (through the running node if there is one).
    Propose {
        /// Capability id, e.g. CAP-B01.
        capability: String,
        /// Semantic version, e.g. 1.4.0.
        version: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A Sigstore bundle for one of the files, as FILE=BUNDLE (just BUNDLE when there is
        /// one file); repeat for each file. Each is verified offline before proposing, then
        /// carried in the release as an artifact of its own and verified again by every node.
        #[arg(long, value_name = "FILE=BUNDLE", requires_all = ["trusted_root", "certificate_identity", "certificate_oidc_issuer"])]
        provenance: Vec<String>,
        #[arg(long, value_name = "FILE")]
        trusted_root: Option<PathBuf>,
        #[arg(long, value_name = "ID")]
        certificate_identity: Option<String>,
        #[arg(long, value_name = "URL")]
        certificate_oidc_issuer: Option<String>,
        #[command(flatten)]
        data_dir: DataDirArg,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Per artifact and node: how much is mirrored; signatures and promotions.
    Status {
        /// The release, e.g. CAP-B01@1.4.0 (all releases when omitted).
        release: Option<String>,
        #[command(flatten)]
        data_dir: DataDirArg,
        #[arg(long)]
        json: bool,
    },
    /// Create an unsigned release statement for files on disk.
    Statement {
        /// Capability id, e.g. CAP-B01.
        capability: String,
        /// Semantic version, e.g. 1.4.0.
        version: String,
        /// Artifact files (their file names become the artifact names).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The root the release is made under (its version is recorded).
        #[arg(long, value_name = "ROOT")]
        root: PathBuf,
        /// Who proposes it, e.g. "eu supplier ci".
        #[arg(long, default_value = "unnamed proposer")]
        proposer: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a release: `CAP@VER` at a running node (shows what is signed, asks to confirm,
    /// records the signature, which replicates), or a statement FILE offline (what a lead
    /// does on an air-gapped laptop; then `release import-signature` at any node).
    Sign {
        /// CAP-B01@1.4.0 (online) or a statement file (offline).
        target: String,
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Offline: write here instead of in place.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Sign without asking (for scripts).
        #[arg(long)]
        yes: bool,
        /// Online: the data directory of the running node.
        #[arg(long, env = "ACCORD_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Write a release's statement (with the signatures collected so far) for offline signing.
    ExportStatement {
        /// The release, e.g. CAP-B01@1.4.0.
        release: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Record signatures made offline (`release sign FILE`) at a running node; each is
    /// verified here and again by every node that receives it.
    ImportSignature {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Combine the signatures of several copies of the same statement.
    Merge {
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Decide whether a release is promotable and explain why (exit 0 only if it is).
    Verify(VerifyArgs),
    /// Recall a release (signed like a release: leads and security). With `--out`: write an
    /// unsigned recall of a release envelope FILE. Without: sign the recall of CAP@VER at a
    /// running node (the pending one if there is one, else a new one with --reason).
    Recall {
        /// CAP-B01@1.4.0 (online) or a release envelope file (with --out).
        release: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        online: OnlineSigner,
    },
    /// A conditional go-ahead: the release goes to the consenting jurisdictions only (signed
    /// by a steering majority). `--out` and online as for `recall`.
    Conditional {
        release: String,
        /// Consenting jurisdictions, comma-separated, e.g. uk,eu,ca.
        #[arg(long, value_delimiter = ',', required = true)]
        consenting: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        online: OnlineSigner,
    },
}

/// Signing at a running node.
#[derive(Debug, Args)]
pub struct OnlineSigner {
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Sign without asking (for scripts).
    #[arg(long)]
    pub yes: bool,
    #[arg(long, env = "ACCORD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the node's audit log (checked first; a broken chain is an error).
    List {
        #[command(flatten)]
        data_dir: DataDirArg,
        #[arg(long)]
        json: bool,
    },
    /// Check the chain: order, hashes and every signature against the node keys of the root
    /// chain, and the log's length against the signed checkpoints the catalogue holds.
    Verify {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Compare with the checkpoints another node's data directory holds (a peer's copy
        /// proves truncation even when this node's own catalogue was rolled back).
        #[arg(long, value_name = "DIR")]
        against: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    pub envelope: PathBuf,
    #[arg(long, value_name = "ROOT")]
    pub root: PathBuf,
    /// Newer roots to walk from --root before deciding, oldest first.
    #[arg(long, value_name = "ROOT")]
    pub via: Vec<PathBuf>,
    /// Decide for this jurisdiction (matters for conditional releases and local rules).
    #[arg(long)]
    pub jurisdiction: Option<String>,
    /// Recall statements to take into account.
    #[arg(long, value_name = "FILE")]
    pub recall: Vec<PathBuf>,
    /// Conditional statements to take into account.
    #[arg(long, value_name = "FILE")]
    pub conditional: Vec<PathBuf>,
    /// Version of this capability currently in production (rollback protection).
    #[arg(long, value_name = "VERSION")]
    pub production_version: Option<String>,
    /// An extra local requirement, ROLE:THRESHOLD[:P1,P2…], e.g. security:1:au.
    #[arg(long, value_name = "RULE")]
    pub local_rule: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SigstoreRootCommand {
    /// Make the unsigned update that carries a new trusted_root.json.
    Propose {
        /// The Sigstore trusted_root.json to move to.
        trusted_root: PathBuf,
        /// The trusted root nodes use now (the last update's, or the one first configured):
        /// the update replaces exactly it, so updates apply in order and never roll back.
        #[arg(long, value_name = "CURRENT")]
        from: PathBuf,
        /// Above every update signed before (nodes refuse anything not newer).
        #[arg(long)]
        sequence: u64,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Add a steering representative's signature to an update (no node needed).
    Sign {
        update: PathBuf,
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Write here instead of in place.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Install an update on a node once its signatures meet the root rule of the node's
    /// current root (through the running node when there is one; it then verifies every
    /// release's provenance again, against the new root).
    Apply {
        update: PathBuf,
        /// The node's config, for the trusted root it names when no update was applied yet
        /// (only needed with the node stopped).
        #[arg(long, value_name = "CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
}

/// Where the node keeps its state.
#[derive(Debug, Args, Clone)]
pub struct DataDirArg {
    /// The node's data directory.
    #[arg(long, env = "ACCORD_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// The cooperative's first root, obtained out of band; repeat for each later root, in
    /// order (`--root root-v1.json --root root-v2.json`), to start under a newer root.
    #[arg(long, value_name = "ROOT", required = true)]
    pub root: Vec<PathBuf>,
    /// This node's key (must be a `node` key of the root); KEY.pub must sit beside it.
    #[arg(long, value_name = "KEY")]
    pub node_key: PathBuf,
    /// Seed catalogue (default: the cooperative's catalogue built into this binary).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// List capabilities.
    List {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Only this domain (A-H).
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one capability in full.
    Show {
        id: String,
        #[command(flatten)]
        data_dir: DataDirArg,
        #[arg(long)]
        json: bool,
    },
    /// Who changed a capability, when, and which fields (from the signed changes).
    History {
        id: String,
        #[command(flatten)]
        data_dir: DataDirArg,
        #[arg(long)]
        json: bool,
    },
    /// Edit a capability; every edit is one change signed by the node key.
    Edit {
        id: String,
        #[command(flatten)]
        data_dir: DataDirArg,
        /// FIELD=VALUE: name, status, domain, aws_equivalent, open_source_base, priority,
        /// effort, working_group, lead_jurisdiction.
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
        #[arg(long, value_name = "CAP")]
        add_dependency: Vec<String>,
        #[arg(long, value_name = "CAP")]
        remove_dependency: Vec<String>,
        #[arg(long, value_name = "TEXT")]
        add_requirement: Vec<String>,
        #[arg(long, value_name = "TEXT")]
        add_non_functional: Vec<String>,
        #[arg(long, value_name = "TEXT")]
        add_deliverable: Vec<String>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Write the catalogue in Automerge's standard binary format.
    Export {
        #[command(flatten)]
        data_dir: DataDirArg,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node until SIGINT/SIGTERM: sync the catalogue with the configured peers.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Show a running node's health, peers and sync counters (through its API).
    Status {
        #[command(flatten)]
        data_dir: DataDirArg,
        #[arg(long)]
        json: bool,
    },
}
