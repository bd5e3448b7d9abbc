//! What the core keeps durably, behind a trait: `accord_store::NodeDb` (one redb file) in
//! the node, `MemoryStore` in tests and simulations. Writes are synchronous and return
//! whether they happened: what the core does next depends on it.

use accord_catalogue::Delta;

/// The node's durable catalogue state.
pub trait Store {
    /// Commits a delta (changes, peer states, roots) in one transaction.
    fn apply(&self, delta: &Delta) -> Result<(), String>;
    /// Changes stored since the last compaction.
    fn pending_changes(&self) -> Result<u64, String>;
    /// Replaces the snapshot and drops the changes it contains, in one transaction.
    fn compact(&self, snapshot: &[u8]) -> Result<(), String>;
}

impl Store for accord_store::NodeDb {
    fn apply(&self, delta: &Delta) -> Result<(), String> {
        accord_store::NodeDb::apply(self, delta).map_err(|e| e.to_string())
    }
    fn pending_changes(&self) -> Result<u64, String> {
        accord_store::NodeDb::pending_changes(self).map_err(|e| e.to_string())
    }
    fn compact(&self, snapshot: &[u8]) -> Result<(), String> {
        accord_store::NodeDb::compact(self, snapshot).map_err(|e| e.to_string())
    }
}

/// Everything in memory: what a simulated node "persists", for tests to inspect.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: std::sync::Mutex<Memory>,
}

#[derive(Debug, Default, Clone)]
pub struct Memory {
    pub snapshot: Option<Vec<u8>>,
    pub changes: Vec<accord_catalogue::StoredChange>,
    pub peer_states: std::collections::BTreeMap<String, Vec<u8>>,
    pub roots: Vec<(u64, Vec<u8>)>,
    pub compactions: u64,
}

impl MemoryStore {
    /// A copy of what is stored.
    pub fn contents(&self) -> Memory {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Store for MemoryStore {
    fn apply(&self, delta: &Delta) -> Result<(), String> {
        let mut m = self.inner.lock().map_err(|e| e.to_string())?;
        m.changes.extend(delta.changes.iter().cloned());
        for (p, s) in &delta.peer_states {
            m.peer_states.insert(p.clone(), s.clone());
        }
        m.roots.extend(delta.roots.iter().cloned());
        Ok(())
    }
    fn pending_changes(&self) -> Result<u64, String> {
        let m = self.inner.lock().map_err(|e| e.to_string())?;
        Ok(m.changes.len() as u64)
    }
    fn compact(&self, snapshot: &[u8]) -> Result<(), String> {
        let mut m = self.inner.lock().map_err(|e| e.to_string())?;
        m.snapshot = Some(snapshot.to_vec());
        m.changes.clear();
        m.compactions += 1;
        Ok(())
    }
}
