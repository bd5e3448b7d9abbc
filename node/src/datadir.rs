//! A node's data directory: the trusted root chain, the node key, and the node database.
//!
//! ```text
//! DIR/node.redb        catalogue, signatures, sync state, the root chain (crates/store):
//!                      what the node trusts
//! DIR/roots/vN.json    the root chain as files, for commands that run beside a node
//!                      (node.redb is locked while it runs); rewritten from node.redb
//! DIR/root.json        the current root, for people
//! DIR/node.key(.pub)   the node key (encrypted PKCS#8), its public key
//! ```

use std::path::{Path, PathBuf};

use accord_catalogue::schema::{self, Catalogue, Problem};
use accord_catalogue::{Replica, Seed, genesis};
use accord_protocol::Role;
use accord_protocol::limits::MAX_ROOT_BYTES;
use accord_store::NodeDb;
use accord_trust::{PublicKey, RootChain, SecretKey, TrustedRoot};
use anyhow::{Context, Result, bail};
use automerge::{Automerge, ChangeHash};

use crate::files::{read_limited, write_atomic};

/// The seed catalogue built into the binary (config/catalogue.toml), used when `accord init`
/// is not given another.
pub const EMBEDDED_SEED: &str = include_str!("../../config/catalogue.toml");

#[derive(Debug, Clone)]
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    pub fn new(path: &Path) -> DataDir {
        DataDir {
            path: path.to_owned(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the data directory: installs the root chain (`roots[0]` is the cooperative's
    /// first root, out of band; each later one must follow by the TUF rules), the node key,
    /// and the genesis catalogue. Refuses a key that the current root does not list as a
    /// `node` key.
    pub fn init(
        &self,
        roots: &[PathBuf],
        node_key: &Path,
        seed_text: &str,
        seed_name: &str,
    ) -> Result<String> {
        if self.file("node.redb").exists() {
            bail!("{} is already initialised", self.path.display());
        }
        let (first, rest) = roots.split_first().context(
            "give the cooperative's first root with --root (and each later one after it)",
        )?;
        let first_bytes = read_limited(first, MAX_ROOT_BYTES)?;
        let mut chain = RootChain::anchor(&first_bytes)
            .with_context(|| format!("{} is not a valid first root", first.display()))?;
        for r in rest {
            let bytes = read_limited(r, MAX_ROOT_BYTES)?;
            let before = chain.current().version();
            chain
                .extend(&bytes)
                .with_context(|| format!("{} does not follow root v{before}", r.display()))?;
        }
        let trusted = chain.current();
        let pub_path = crate::cmd::keys::pub_path(node_key);
        let public = PublicKey::read(&pub_path)
            .with_context(|| format!("cannot read the node's public key {}", pub_path.display()))?;
        let jurisdiction = match trusted.body().place_of(public.id()) {
            Some((p, Role::Node)) => p.clone(),
            Some((p, role)) => bail!(
                "key {} is {p}'s {role} key in root v{}, not a node key; use the node key",
                public.id().short(),
                trusted.version()
            ),
            None => bail!(
                "key {} is not listed in root v{}; add it as a node key of your jurisdiction",
                public.id().short(),
                trusted.version()
            ),
        };
        let seed = Seed::parse(seed_text, seed_name)?;
        let anchor = hex::encode(chain.anchor_digest());
        let (doc, hash) = genesis::build(&seed, &anchor)?;

        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        let key_bytes = std::fs::read(node_key)
            .with_context(|| format!("cannot read {}", node_key.display()))?;
        write_atomic(&self.file("node.key"), &key_bytes, true)?;
        write_atomic(
            &self.file("node.key.pub"),
            public.to_pem().as_bytes(),
            false,
        )?;
        let stored: Vec<(u64, Vec<u8>)> = chain
            .roots()
            .iter()
            .map(|r| (r.version(), r.envelope().to_json()))
            .collect();
        let db = NodeDb::open(&self.file("node.redb"))?;
        db.initialise(
            &doc.save(),
            &stored,
            &[
                ("genesis", &hash.0),
                ("anchor", anchor.as_bytes()),
                ("jurisdiction", jurisdiction.as_str().as_bytes()),
            ],
        )?;
        self.write_chain_files(&chain)?;
        self.secure()?;
        Ok(format!(
            "initialised {} for {jurisdiction}: root v{} (chain of {}), node key {}, genesis {} ({} capabilities)",
            self.path.display(),
            chain.current().version(),
            chain.roots().len(),
            public.id().short(),
            hex::encode(&hash.0[..8]),
            seed.capabilities.len()
        ))
    }

    /// Only the node's own user may read or change its data: the directory and `blobs/` are
    /// 0700, `node.redb` and the key and token files 0600. Applied at `init` and at every
    /// start (a backup restored with looser modes is tightened again).
    pub fn secure(&self) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let set = |p: &Path, mode: u32| -> Result<()> {
                if p.exists() {
                    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                        .with_context(|| {
                            format!("cannot restrict permissions of {}", p.display())
                        })?;
                }
                Ok(())
            };
            set(&self.path, 0o700)?;
            set(&self.file("blobs"), 0o700)?;
            for f in ["node.redb", "node.key", "api.token"] {
                set(&self.file(f), 0o600)?;
            }
        }
        Ok(())
    }

    /// Writes the chain as `roots/vN.json` and the current root as `root.json`.
    pub fn write_chain_files(&self, chain: &RootChain) -> Result<()> {
        let dir = self.file("roots");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for r in chain.roots() {
            let p = dir.join(format!("v{}.json", r.version()));
            let bytes = r.envelope().to_json();
            if std::fs::read(&p).ok().as_deref() != Some(bytes.as_slice()) {
                write_atomic(&p, &bytes, false)?;
            }
        }
        write_atomic(
            &self.file("root.json"),
            &chain.current().envelope().to_json(),
            false,
        )
    }

    /// The root chain the node database holds (what the node trusts).
    pub fn db_chain(db: &NodeDb) -> Result<RootChain> {
        let rows = db.root_chain()?;
        let (first, rest) = rows
            .split_first()
            .context("node.redb holds no root chain (initialised by an older Accord?)")?;
        let chain = RootChain::walk(&first.1, rest.iter().map(|(_, b)| b.as_slice()))
            .context("the root chain in node.redb does not verify")?;
        let anchor = db.get_meta("anchor")?.unwrap_or_default();
        if anchor != hex::encode(chain.anchor_digest()).as_bytes() {
            bail!("the root chain in node.redb does not start at this catalogue's first root");
        }
        Ok(chain)
    }

    /// The root chain from `roots/vN.json`, verified from the first root: for commands that
    /// run beside a node (which holds node.redb's lock).
    pub fn chain(&self) -> Result<RootChain> {
        let dir = self.file("roots");
        let mut versions: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
            .with_context(|| {
                format!(
                    "{} is not an Accord data directory (no roots/; run 'accord init')",
                    self.path.display()
                )
            })?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let v = name
                    .strip_prefix('v')?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((v, e.path()))
            })
            .collect();
        versions.sort();
        let (first, rest) = versions
            .split_first()
            .with_context(|| format!("{} holds no root", dir.display()))?;
        let mut chain = RootChain::anchor(&read_limited(&first.1, MAX_ROOT_BYTES)?)
            .with_context(|| format!("{} is not a valid first root", first.1.display()))?;
        for (_, p) in rest {
            let bytes = read_limited(p, MAX_ROOT_BYTES)?;
            chain
                .extend(&bytes)
                .with_context(|| format!("{} does not follow the chain", p.display()))?;
        }
        Ok(chain)
    }

    pub fn db(&self) -> Result<NodeDb> {
        let p = self.file("node.redb");
        if !p.exists() {
            bail!(
                "{} is not an Accord data directory (run 'accord init --data-dir {}')",
                self.path.display(),
                self.path.display()
            );
        }
        Ok(NodeDb::open(&p)?)
    }

    /// The local rules the node last ran with (it records them at start), so offline
    /// commands explain with the same rules the node decides with.
    pub fn local_rules(&self) -> Vec<accord_protocol::Requirement> {
        std::fs::read(self.path.join("local_rules.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// What this node has promoted (empty before its first promotion).
    pub fn promotion_state(&self) -> Result<accord_promote::State> {
        match self.db()?.promotion_state()? {
            Some(b) => accord_promote::State::from_json(&b)
                .context("the promotion state in node.redb is unreadable"),
            None => Ok(accord_promote::State::default()),
        }
    }

    /// The current root of the chain.
    pub fn root(&self) -> Result<TrustedRoot> {
        Ok(self.chain()?.current().clone())
    }

    pub fn genesis(db: &NodeDb) -> Result<ChangeHash> {
        let g = db
            .get_meta("genesis")?
            .context("node database has no genesis hash")?;
        let arr: [u8; 32] = g.as_slice().try_into().context("genesis hash is damaged")?;
        Ok(ChangeHash(arr))
    }

    /// The current document, read-only (no key needed).
    pub fn document(&self) -> Result<(Automerge, NodeDb)> {
        let db = self.db()?;
        let stored = db.load_catalogue()?;
        let snapshot = stored
            .snapshot
            .as_deref()
            .context("no catalogue snapshot")?;
        let mut doc =
            Automerge::load(snapshot).context("the stored catalogue snapshot is damaged")?;
        let joined: Vec<u8> = stored
            .changes
            .iter()
            .flat_map(|c| c.bytes.iter().copied())
            .collect();
        doc.load_incremental(&joined)
            .context("stored catalogue changes are damaged")?;
        Ok((doc, db))
    }

    pub fn catalogue(&self) -> Result<(Catalogue, Vec<Problem>)> {
        let (doc, _) = self.document()?;
        Ok(schema::read(&doc))
    }

    /// The jurisdiction whose node key this data dir holds (from the current root).
    pub fn jurisdiction(&self) -> Result<String> {
        let public = accord_trust::PublicKey::read(&self.file("node.key.pub"))?;
        let root = self.root()?;
        match root.body().place_of(public.id()) {
            Some((p, accord_protocol::Role::Node)) => Ok(p.to_string()),
            _ => bail!(
                "the node key of {} is not a node key in root v{}",
                self.path.display(),
                root.version()
            ),
        }
    }

    /// The writable replica (needs the node key's passphrase).
    pub fn replica(&self, passphrase: &str) -> Result<(Replica, NodeDb)> {
        self.replica_with(self.node_key(passphrase)?)
    }

    /// Unlocks the node key (scrypt: do it once per process).
    pub fn node_key(&self, passphrase: &str) -> Result<SecretKey> {
        Ok(SecretKey::read(&self.file("node.key"), passphrase)?)
    }

    /// The writable replica, with a node key already unlocked.
    pub fn replica_with(&self, key: SecretKey) -> Result<(Replica, NodeDb)> {
        let db = self.db()?;
        let genesis = Self::genesis(&db)?;
        let chain = Self::db_chain(&db)?;
        let stored = db.load_catalogue()?;
        let replica = Replica::open(genesis, stored, key, chain)?;
        Ok((replica, db))
    }
}
