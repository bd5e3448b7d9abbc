//! Serving blobs to the cooperative's other nodes: only endpoints whose key is a node key of
//! the current root are served (the set follows root changes), each with a bounded number of
//! connections at once, and all of them together too: a fetcher turned away goes to another
//! provider, so a new release spreads through the nodes that already hold it instead of
//! every copy coming from its proposer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use iroh::EndpointId;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh_blobs::protocol::{ERR_LIMIT, ERR_PERMISSION};
use iroh_blobs::provider::events::EventSender;

/// Who may fetch, shared with the node so a root change takes effect at once.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Arc<Mutex<HashSet<EndpointId>>>);

impl AllowList {
    pub fn set(&self, ids: impl IntoIterator<Item = EndpointId>) {
        if let Ok(mut g) = self.0.lock() {
            *g = ids.into_iter().collect();
        }
    }

    pub fn contains(&self, id: &EndpointId) -> bool {
        self.0.lock().map(|g| g.contains(id)).unwrap_or(false)
    }
}

/// The blobs protocol behind the allow-list. Unlike iroh-blobs' own `BlobsProtocol`, its
/// shutdown leaves the store open: the node closes the store itself, last.
#[derive(Debug, Clone)]
pub struct GatedProvider {
    store: iroh_blobs::api::Store,
    allow: AllowList,
    per_peer: usize,
    total: usize,
    active: Arc<Mutex<HashMap<EndpointId, usize>>>,
}

impl GatedProvider {
    /// Serves at most `per_peer` connections from one peer and `total` from all at once.
    pub fn new(
        store: iroh_blobs::api::Store,
        allow: AllowList,
        per_peer: usize,
        total: usize,
    ) -> Self {
        GatedProvider {
            store,
            allow,
            per_peer,
            total,
            active: Default::default(),
        }
    }

    fn enter(&self, id: EndpointId) -> bool {
        let Ok(mut a) = self.active.lock() else {
            return false;
        };
        if a.values().sum::<usize>() >= self.total {
            return false;
        }
        let n = a.entry(id).or_default();
        if *n >= self.per_peer {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, id: EndpointId) {
        if let Ok(mut a) = self.active.lock()
            && let Some(n) = a.get_mut(&id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                a.remove(&id);
            }
        }
    }
}

impl ProtocolHandler for GatedProvider {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let id = conn.remote_id();
        if !self.allow.contains(&id) {
            tracing::info!(peer = %id, "refused a blob request from an endpoint the root does not list");
            conn.close(ERR_PERMISSION, b"not a node of this cooperative");
            return Ok(());
        }
        if !self.enter(id) {
            tracing::debug!(peer = %id, "too many blob connections; the peer will ask another provider");
            conn.close(ERR_LIMIT, b"too many connections");
            return Ok(());
        }
        iroh_blobs::provider::handle_connection(conn, self.store.clone(), EventSender::DEFAULT)
            .await;
        self.leave(id);
        Ok(())
    }
}
