//! How old this node's view of each other jurisdiction is (issue 16, freshness): when a
//! sync conversation with one of its nodes last ran to its end, or a bundle from it was
//! last imported. Saved in the store so a site offline for weeks still knows; past the
//! configured maximum (`PromotionConfig::max_staleness`), production promotions wait and
//! `release status` says why (`accord_promote::Reason::Stale`).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::hash::Hash;
use std::time::Duration;

use accord_promote::Reason;
use tracing::warn;

use super::Service;
use crate::store::Store;
use crate::time::Now;

/// At most one save of the record per this interval (a jurisdiction heard for the first
/// time is saved at once).
const SAVE_EVERY: Duration = Duration::from_secs(60);

impl<S: Store, P: Clone + Ord + Hash + Display + std::fmt::Debug> Service<S, P> {
    /// Per jurisdiction, when this node's view of it was last brought up to date (Unix
    /// seconds).
    pub fn freshness(&self) -> &BTreeMap<String, i64> {
        &self.heard
    }

    /// This node's view of `jurisdiction` is up to date as of `at` (Unix seconds: a sync
    /// with one of its nodes ended, or a bundle exported there at `at` was imported).
    /// Never moves backwards.
    pub fn view_updated(&mut self, jurisdiction: &str, at: i64, now: Now) {
        self.clock = now;
        let before = self.heard.get(jurisdiction).copied();
        if before.is_some_and(|b| b >= at) {
            return;
        }
        self.heard.insert(jurisdiction.to_owned(), at);
        self.heard_dirty = true;
        // A view that was stale may no longer be: the engine looks again.
        if let Some(p) = &mut self.promotion
            && p.cfg.max_staleness.is_some()
        {
            p.dirty = true;
        }
        self.save_freshness(before.is_none(), now);
    }

    /// Saves the record if it changed and a save is due (or `force`).
    pub(super) fn save_freshness(&mut self, force: bool, now: Now) {
        if !self.heard_dirty
            || !(force
                || self
                    .heard_saved
                    .is_none_or(|at| now.mono.saturating_duration_since(at) >= SAVE_EVERY))
        {
            return;
        }
        let bytes = match serde_json::to_vec(&self.heard) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "cannot encode the freshness record");
                return;
            }
        };
        match self.store.save_freshness(&bytes) {
            Ok(()) => {
                self.heard_dirty = false;
                self.heard_saved = Some(now.mono);
            }
            Err(e) => warn!(error = %e, "cannot save the freshness record; kept in memory"),
        }
    }

    /// Saves the record now if it changed (at shutdown).
    pub fn flush_freshness(&mut self, now: Now) {
        self.save_freshness(true, now);
    }

    /// The record as saved at the last run (nothing, or a damaged one, counts as never).
    pub(super) fn load_freshness(&mut self) {
        self.heard = match self.store.freshness() {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(error = %e, "the freshness record is damaged; every view counts as never updated");
                BTreeMap::new()
            }),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                warn!(error = %e, "cannot read the freshness record; every view counts as never updated");
                BTreeMap::new()
            }
        };
    }

    /// Why production promotions must wait here now, if they must: the other
    /// jurisdictions whose view is older than the configured maximum.
    pub(super) fn stale_reasons(&self, now: Now) -> Vec<Reason> {
        let Some(p) = &self.promotion else {
            return Vec::new();
        };
        let Some(max) = p.cfg.max_staleness else {
            return Vec::new();
        };
        let me = p.cfg.jurisdiction.as_str();
        let others: std::collections::BTreeSet<&str> = self
            .listed
            .values()
            .map(String::as_str)
            .filter(|j| *j != me)
            .collect();
        accord_promote::inputs::stale_views(&self.heard, others, now.unix(), max)
    }
}
