//! Accord's durable node state in one redb file (`node.redb` in the data directory): the
//! catalogue (compacted snapshot, changes since, change signatures), per-peer sync state and
//! small metadata. Blobs live in their own store beside it.
//!
//! Architecture invariant: every `apply` is one redb write transaction committed with
//! `Durability::Immediate`, so a crash at any point leaves the last committed state, and a
//! reader never sees half of a `Delta`.

use std::path::Path;

use accord_catalogue::{Delta, Stored, StoredChange};
use accord_protocol::Timestamp;
use accord_trust::SecretKey;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use thiserror::Error;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("catalogue_snapshot");
const CHANGES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("catalogue_changes");
const SIGNATURES: TableDefinition<[u8; 32], [u8; 64]> = TableDefinition::new("change_signatures");
const PEERS: TableDefinition<&str, &[u8]> = TableDefinition::new("peer_sync_state");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
const PROMOTION: TableDefinition<&str, &[u8]> = TableDefinition::new("promotion");
/// The root chain this node trusts: version -> exact envelope bytes (ADR 0005 §4).
const ROOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("root_chain");

pub mod audit;
pub use audit::{AuditEntry, AuditEvent, ChainBreak, verify_chain};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("node database {path}: {source}")]
    Redb {
        path: String,
        #[source]
        source: redb::Error,
    },
    #[error("node database {path} is not initialised (run 'accord init')")]
    NotInitialised { path: String },
}

/// The node's database.
#[derive(Debug)]
pub struct NodeDb {
    db: Database,
    path: String,
}

impl NodeDb {
    /// Opens (creating if needed) the database. After a crash redb repairs the file on open.
    pub fn open(path: &Path) -> Result<NodeDb, StoreError> {
        let shown = path.display().to_string();
        let db = Database::create(path).map_err(|e| StoreError::Redb {
            path: shown.clone(),
            source: e.into(),
        })?;
        let me = NodeDb { db, path: shown };
        // Create every table once so readers never meet a missing one.
        me.write(|tx| {
            tx.open_table(META)?;
            tx.open_table(SNAPSHOT)?;
            tx.open_table(CHANGES)?;
            tx.open_table(SIGNATURES)?;
            tx.open_table(PEERS)?;
            tx.open_table(AUDIT)?;
            tx.open_table(PROMOTION)?;
            tx.open_table(ROOTS)?;
            Ok(())
        })?;
        Ok(me)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Redb {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(META).map_err(|e| self.err(e))?;
        Ok(t.get(key)
            .map_err(|e| self.err(e))?
            .map(|g| g.value().to_vec()))
    }

    /// Sets one small metadata value, in its own transaction.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut m = tx.open_table(META)?;
            m.insert(key, value)?;
            Ok(())
        })
    }

    /// Initialises the catalogue with its genesis snapshot, the root chain it trusts and
    /// metadata, in one transaction.
    pub fn initialise(
        &self,
        genesis_snapshot: &[u8],
        chain: &[(u64, Vec<u8>)],
        meta: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut s = tx.open_table(SNAPSHOT)?;
            s.insert("doc", genesis_snapshot)?;
            let mut r = tx.open_table(ROOTS)?;
            for (v, bytes) in chain {
                r.insert(*v, bytes.as_slice())?;
            }
            let mut m = tx.open_table(META)?;
            for (k, v) in meta {
                m.insert(*k, *v)?;
            }
            Ok(())
        })
    }

    /// Everything `Replica::open` needs.
    pub fn load_catalogue(&self) -> Result<Stored, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let snap = tx.open_table(SNAPSHOT).map_err(|e| self.err(e))?;
        let snapshot = snap
            .get("doc")
            .map_err(|e| self.err(e))?
            .map(|g| g.value().to_vec())
            .ok_or_else(|| StoreError::NotInitialised {
                path: self.path.clone(),
            })?;
        let sigs = tx.open_table(SIGNATURES).map_err(|e| self.err(e))?;
        let mut signatures = Vec::with_capacity(sigs.len().map_err(|e| self.err(e))? as usize);
        for row in sigs.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            signatures.push((k.value(), v.value()));
        }
        let changes_t = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        let mut changes = Vec::new();
        for row in changes_t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            changes.push(StoredChange {
                hash: k.value(),
                bytes: v.value().to_vec(),
                signature: None,
            });
        }
        let peers_t = tx.open_table(PEERS).map_err(|e| self.err(e))?;
        let mut peer_states = std::collections::BTreeMap::new();
        for row in peers_t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            peer_states.insert(k.value().to_owned(), v.value().to_vec());
        }
        Ok(Stored {
            snapshot: Some(snapshot),
            changes,
            signatures,
            peer_states,
        })
    }

    /// Persists a `Delta` atomically and durably.
    pub fn apply(&self, delta: &Delta) -> Result<(), StoreError> {
        if delta.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut changes = tx.open_table(CHANGES)?;
            let mut sigs = tx.open_table(SIGNATURES)?;
            for c in &delta.changes {
                changes.insert(c.hash, c.bytes.as_slice())?;
                if let Some(s) = c.signature {
                    sigs.insert(c.hash, s)?;
                }
            }
            let mut peers = tx.open_table(PEERS)?;
            for (p, s) in &delta.peer_states {
                peers.insert(p.as_str(), s.as_slice())?;
            }
            let mut roots = tx.open_table(ROOTS)?;
            for (v, bytes) in &delta.roots {
                roots.insert(*v, bytes.as_slice())?;
            }
            Ok(())
        })
    }

    /// The root chain, oldest first (exact envelope bytes).
    pub fn root_chain(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(ROOTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Appends roots to the chain (an offline `accord root apply`), durably.
    pub fn append_roots(&self, roots: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut t = tx.open_table(ROOTS)?;
            for (v, bytes) in roots {
                t.insert(*v, bytes.as_slice())?;
            }
            Ok(())
        })
    }

    /// Replaces the snapshot with `snapshot` (which must contain every stored change) and
    /// drops the individual changes, in one transaction. Signatures stay.
    pub fn compact(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut s = tx.open_table(SNAPSHOT)?;
            s.insert("doc", snapshot)?;
            let mut changes = tx.open_table(CHANGES)?;
            changes.retain(|_, _| false)?;
            Ok(())
        })
    }

    /// Appends entries to the audit log, durably, in one transaction.
    pub fn append_audit(
        &self,
        key: &SecretKey,
        at: Timestamp,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(|tx| append(tx, key, at, events))
    }

    /// Commits the promotion engine's new state together with its audit entries: either
    /// both are durable or neither is, so the log never misses a promotion and never
    /// records one that did not happen.
    pub fn commit_promotion(
        &self,
        state: &[u8],
        key: &SecretKey,
        at: Timestamp,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.open_table(PROMOTION)?.insert("state", state)?;
            append(tx, key, at, events)
        })
    }

    /// The promotion engine's persisted state (`None` before the first promotion).
    pub fn promotion_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(PROMOTION).map_err(|e| self.err(e))?;
        Ok(t.get("state")
            .map_err(|e| self.err(e))?
            .map(|g| g.value().to_vec()))
    }

    /// Every audit row, in order (verify with `audit::verify_chain`).
    pub fn audit_rows(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The last audit row's sequence number and SHA-256 (what a checkpoint publishes).
    pub fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        use sha2::Digest;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
        Ok(t.last()
            .map_err(|e| self.err(e))?
            .map(|(k, v)| (k.value(), sha2::Sha256::digest(v.value()).into())))
    }

    /// Changes stored since the last compaction.
    pub fn pending_changes(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(CHANGES).map_err(|e| self.err(e))?;
        t.len().map_err(|e| self.err(e))
    }
}

/// Appends after the last row, chaining from its hash.
fn append(
    tx: &redb::WriteTransaction,
    key: &SecretKey,
    at: Timestamp,
    events: &[AuditEvent],
) -> Result<(), redb::Error> {
    use sha2::Digest;
    let mut t = tx.open_table(AUDIT)?;
    let (mut seq, mut prev) = match t.last()? {
        Some((k, v)) => (k.value(), sha2::Sha256::digest(v.value()).into()),
        None => (0, audit::GENESIS),
    };
    for e in events {
        seq += 1;
        let (row, hash) = audit::seal(seq, &prev, at, e, key);
        t.insert(seq, row.as_slice())?;
        prev = hash;
    }
    Ok(())
}
