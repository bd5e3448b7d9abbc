//! Warnings before the cooperative's root expires (issue 16, root rotation in practice).
//! An expired root stops every promotion (`accord_trust::evaluate`), so the steering
//! committee must sign a successor in time: from `Config::root_expiry_warning` before the
//! expiry, the node says so in its log (once an hour), its audit log (once per root) and
//! its metrics (`root_expires_unix`, which `node status` turns into a warning line).

use std::fmt::Display;
use std::hash::Hash;
use std::time::Duration;

use accord_store::AuditEvent;
use accord_store::audit::kind;
use tracing::warn;

use super::Service;
use crate::io::Io;
use crate::store::Store;
use crate::time::Now;

/// How often the log repeats the warning.
const WARN_EVERY: Duration = Duration::from_secs(3600);

impl<S: Store, P: Clone + Ord + Hash + Display + std::fmt::Debug> Service<S, P> {
    /// Warns if the current root expires within the warning window.
    pub(super) fn check_root_expiry(&mut self, now: Now) {
        let root = self.replica.root();
        let version = root.version();
        let expires = root.body().expires;
        self.metrics.root_expires_unix = expires.unix();
        self.metrics.root_expiry_warning_secs = self.config.root_expiry_warning.as_secs();
        let left = expires.unix().saturating_sub(now.unix());
        let window = i64::try_from(self.config.root_expiry_warning.as_secs()).unwrap_or(i64::MAX);
        if left > window {
            return;
        }
        let span = accord_promote::reason::span(u64::try_from(left.max(0)).unwrap_or(0));
        let text = if left > 0 {
            format!(
                "root v{version} expires at {expires} (in {span}); after that no release is promoted anywhere until the steering committee signs its successor (accord root propose, then sign)"
            )
        } else {
            format!(
                "root v{version} expired at {expires}; no release is promoted until the steering committee signs its successor"
            )
        };
        if self
            .expiry_warned
            .is_none_or(|at| now.mono.saturating_duration_since(at) >= WARN_EVERY)
        {
            warn!(root = version, %expires, "{text}");
            self.expiry_warned = Some(now.mono);
        }
        if self.expiry_audited != Some(version) {
            self.expiry_audited = Some(version);
            self.outbox.push_back(Io::Audit(vec![AuditEvent::new(
                kind::ROOT,
                format!("root v{version}"),
                text,
            )]));
        }
    }
}
