//! A node's data directory: the trusted root, the node key, and the node database.
//!
//! ```text
//! DIR/root.json        the first root, installed out of band by `accord init`
//! DIR/node.key(.pub)   the node key (encrypted PKCS#8), its public key
//! DIR/node.redb        catalogue, signatures, sync state (crates/store)
//! ```

use std::path::{Path, PathBuf};

use accord_catalogue::schema::{self, Catalogue, Problem};
use accord_catalogue::{Replica, Seed, genesis};
use accord_protocol::Role;
use accord_protocol::limits::MAX_ROOT_BYTES;
use accord_store::NodeDb;
use accord_trust::{PublicKey, SecretKey, TrustedRoot};
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

    /// Creates the data directory: installs the first root, the node key, and the genesis
    /// catalogue. Refuses a key that the root does not list as a `node` key.
    pub fn init(
        &self,
        root: &Path,
        node_key: &Path,
        seed_text: &str,
        seed_name: &str,
    ) -> Result<String> {
        if self.file("node.redb").exists() {
            bail!("{} is already initialised", self.path.display());
        }
        let root_bytes = read_limited(root, MAX_ROOT_BYTES)?;
        let trusted = TrustedRoot::anchor(&root_bytes)
            .with_context(|| format!("{} is not a valid first root", root.display()))?;
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
        let anchor = hex::encode(trusted.envelope().payload_digest());
        let (doc, hash) = genesis::build(&seed, &anchor)?;

        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        write_atomic(&self.file("root.json"), &root_bytes, false)?;
        let key_bytes = std::fs::read(node_key)
            .with_context(|| format!("cannot read {}", node_key.display()))?;
        write_atomic(&self.file("node.key"), &key_bytes, true)?;
        write_atomic(
            &self.file("node.key.pub"),
            public.to_pem().as_bytes(),
            false,
        )?;
        let db = NodeDb::open(&self.file("node.redb"))?;
        db.initialise(
            &doc.save(),
            &[
                ("genesis", &hash.0),
                ("anchor", anchor.as_bytes()),
                ("jurisdiction", jurisdiction.as_str().as_bytes()),
            ],
        )?;
        Ok(format!(
            "initialised {} for {jurisdiction}: root v{}, node key {}, genesis {} ({} capabilities)",
            self.path.display(),
            trusted.version(),
            public.id().short(),
            hex::encode(&hash.0[..8]),
            seed.capabilities.len()
        ))
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

    pub fn root(&self) -> Result<TrustedRoot> {
        crate::cmd::root::load_trusted(&self.file("root.json"))
    }

    fn genesis(db: &NodeDb) -> Result<ChangeHash> {
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

    /// The jurisdiction whose node key this data dir holds (from the installed root).
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
        let stored = db.load_catalogue()?;
        let replica = Replica::open(genesis, stored, key, self.root()?)?;
        Ok((replica, db))
    }
}
