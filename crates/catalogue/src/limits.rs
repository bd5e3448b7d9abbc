//! What one message, one change and the whole catalogue may cost. Every node should run
//! with the same limits (a node with lower ones refuses history the others hold, and stays
//! behind); they are far above what a cooperative writes and far below what hurts a node.

/// Bounds checked before anything from a peer is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations one change may encode (a 4 KiB text field is ~4,000).
    pub max_ops_per_change: u64,
    /// Operations one sync message may bring (a whole catalogue, for a new node).
    pub max_ops_per_message: u64,
    /// Operations the whole document may hold.
    pub max_document_ops: u64,
    /// Release statements the catalogue may hold.
    pub max_releases: usize,
    /// Artifacts one release statement may name.
    pub max_artifacts_per_release: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops_per_change: 20_000,
            max_ops_per_message: 1_000_000,
            max_document_ops: 2_000_000,
            max_releases: 20_000,
            max_artifacts_per_release: 256,
        }
    }
}
