//! What the core keeps durably, behind a trait: `accord_store::NodeDb` (one redb file) in
//! the node, `MemoryStore` in tests and simulations. Writes are synchronous and return
//! whether they happened: what the core does next depends on it.

use accord_catalogue::Delta;
use accord_store::AuditEvent;
use accord_trust::SecretKey;

/// The node's durable state: the catalogue, the promotion state and the audit log.
pub trait Store {
    /// Commits a delta (changes, peer states, roots) in one transaction.
    fn apply(&self, delta: &Delta) -> Result<(), String>;
    /// Changes stored since the last compaction.
    fn pending_changes(&self) -> Result<u64, String>;
    /// Replaces the snapshot and drops the changes it contains, in one transaction.
    fn compact(&self, snapshot: &[u8]) -> Result<(), String>;
    /// Commits the promotion engine's new state and its audit rows (written at Unix time
    /// `at`) in one transaction: both or neither.
    fn commit_promotion(&self, state: &[u8], at: i64, events: &[AuditEvent]) -> Result<(), String>;
    /// The audit log's last row: its sequence number and hash.
    fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>, String>;
    /// When this node's view of each jurisdiction was last brought up to date (JSON), as
    /// saved by `save_freshness`; survives restarts, so a site that is offline for a while
    /// does not forget how old its view is.
    fn freshness(&self) -> Result<Option<Vec<u8>>, String>;
    fn save_freshness(&self, bytes: &[u8]) -> Result<(), String>;
}

/// The node's redb file and the node key that signs its audit rows.
#[derive(Debug)]
pub struct NodeStore {
    pub db: accord_store::NodeDb,
    pub signer: SecretKey,
}

impl NodeStore {
    /// Appends audit rows, signed, at Unix time `at`.
    pub fn append_audit(&self, at: i64, events: &[AuditEvent]) -> Result<(), String> {
        self.db
            .append_audit(
                &self.signer,
                accord_protocol::Timestamp::from_unix(at),
                events,
            )
            .map_err(|e| e.to_string())
    }
}

impl Store for NodeStore {
    fn apply(&self, delta: &Delta) -> Result<(), String> {
        self.db.apply(delta).map_err(|e| e.to_string())
    }
    fn pending_changes(&self) -> Result<u64, String> {
        self.db.pending_changes().map_err(|e| e.to_string())
    }
    fn compact(&self, snapshot: &[u8]) -> Result<(), String> {
        self.db.compact(snapshot).map_err(|e| e.to_string())
    }
    fn commit_promotion(&self, state: &[u8], at: i64, events: &[AuditEvent]) -> Result<(), String> {
        self.db
            .commit_promotion(
                state,
                &self.signer,
                accord_protocol::Timestamp::from_unix(at),
                events,
            )
            .map_err(|e| e.to_string())
    }
    fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>, String> {
        self.db.audit_head().map_err(|e| e.to_string())
    }
    fn freshness(&self) -> Result<Option<Vec<u8>>, String> {
        self.db.get_meta(FRESHNESS).map_err(|e| e.to_string())
    }
    fn save_freshness(&self, bytes: &[u8]) -> Result<(), String> {
        self.db
            .set_meta(FRESHNESS, bytes)
            .map_err(|e| e.to_string())
    }
}

/// The metadata key of the freshness record in `node.redb`.
const FRESHNESS: &str = "freshness";

/// Records in a stopped node's database that its view of `jurisdiction` is up to date as
/// of `at` (Unix seconds; a bundle import), in the record the core keeps
/// (`Service::freshness`): never moving a view backwards.
pub fn record_view(db: &accord_store::NodeDb, jurisdiction: &str, at: i64) -> Result<(), String> {
    let mut views: std::collections::BTreeMap<String, i64> = db
        .get_meta(FRESHNESS)
        .map_err(|e| e.to_string())?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let e = views.entry(jurisdiction.to_owned()).or_insert(at);
    *e = (*e).max(at);
    let bytes = serde_json::to_vec(&views).map_err(|e| e.to_string())?;
    db.set_meta(FRESHNESS, &bytes).map_err(|e| e.to_string())
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
    /// The promotion state last committed.
    pub promotion: Option<Vec<u8>>,
    /// Audit rows written with promotion decisions, with their Unix time.
    pub audit: Vec<(i64, AuditEvent)>,
    /// The freshness record last saved.
    pub freshness: Option<Vec<u8>>,
    /// Tests set this to make the next promotion commits fail (a full disk).
    pub refuse_promotions: bool,
}

impl MemoryStore {
    /// A copy of what is stored.
    pub fn contents(&self) -> Memory {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Makes promotion commits fail (`true`) or succeed again.
    pub fn refuse_promotions(&self, refuse: bool) {
        if let Ok(mut m) = self.inner.lock() {
            m.refuse_promotions = refuse;
        }
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
    fn commit_promotion(&self, state: &[u8], at: i64, events: &[AuditEvent]) -> Result<(), String> {
        let mut m = self.inner.lock().map_err(|e| e.to_string())?;
        if m.refuse_promotions {
            return Err("the store refuses writes (test)".into());
        }
        m.promotion = Some(state.to_vec());
        m.audit.extend(events.iter().map(|e| (at, e.clone())));
        Ok(())
    }
    fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>, String> {
        use sha2::Digest;
        let m = self.inner.lock().map_err(|e| e.to_string())?;
        Ok(m.audit.last().map(|(_, e)| {
            (
                m.audit.len() as u64,
                sha2::Sha256::digest(format!("{e:?}")).into(),
            )
        }))
    }
    fn freshness(&self) -> Result<Option<Vec<u8>>, String> {
        let m = self.inner.lock().map_err(|e| e.to_string())?;
        Ok(m.freshness.clone())
    }
    fn save_freshness(&self, bytes: &[u8]) -> Result<(), String> {
        let mut m = self.inner.lock().map_err(|e| e.to_string())?;
        m.freshness = Some(bytes.to_vec());
        Ok(())
    }
}
