//! The node's promotion duties inside the core: run the engine (`accord_promote::plan`)
//! whenever the catalogue, the mirror or the time could change its answer; commit each
//! action with its audit record before acting on it; publish the node's signed notes and
//! audit checkpoints; take in signatures; ask for the `on_promote` hook and retry it on a
//! wakeup after a failure; say which releases the mirror should hold.
//!
//! A child module of `service` so it shares the core's state and outbox; everything it
//! decides with comes from `accord-promote` (the engine, admission, the mirror plan, the
//! notes owed) and `accord-trust`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Display;
use std::hash::Hash;
use std::time::{Duration, Instant};

use accord_catalogue::History;
use accord_catalogue::records::entry_key;
use accord_promote::admit::Imported;
use accord_promote::{Action, Context, Explanation, Mirror, MirrorPlan, Reason, State, Status};
use accord_protocol::{Envelope, PrincipalId, ReleaseId, Requirement, Timestamp};
use accord_store::AuditEvent;
use accord_store::audit::kind;
use accord_trust::{RootChain, SecretKey, Tally};
use tracing::{info, warn};

use super::Service;
use crate::io::Io;
use crate::store::Store;
use crate::time::Now;

/// What the node's config says about promotion.
#[derive(Debug)]
pub struct PromotionConfig {
    pub jurisdiction: PrincipalId,
    /// The node's own requirements on top of the cooperative rule.
    pub local_rules: Vec<Requirement>,
    /// The node key: it signs promotion notes and audit checkpoints.
    pub signer: SecretKey,
    /// Whether an `on_promote` command is configured (`Io::RunHook` is asked for).
    pub hook: bool,
    /// Bytes of unapproved releases mirrored per proposing jurisdiction.
    pub staging_quota: u64,
    /// At most one audit checkpoint per this interval.
    pub checkpoint_every: Duration,
    /// Decisions change with time alone only at a root's expiry or when a view turns
    /// stale: the engine runs for the time this often (it runs after every change anyway).
    pub replan_every: Duration,
    /// Past this age of its view of any other jurisdiction (last sync or bundle import),
    /// this node promotes nothing to production (recalls still apply). `None`: no limit.
    pub max_staleness: Option<Duration>,
}

/// Counters of the engine and the mirror plan, for the node's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromotionMetrics {
    pub promotions: u64,
    pub recalls: u64,
    pub hook_failures: u64,
    pub releases_live: u64,
    /// `CAP@VER`s that more than one statement claims.
    pub equivocations: u64,
    /// Proposing jurisdiction -> bytes of its unapproved releases mirrored here.
    pub staged_bytes: BTreeMap<String, u64>,
    /// Releases not mirrored here (recalled, superseded, over a staging quota).
    pub held_back: u64,
}

/// The promotion side of the core's state.
#[derive(Debug)]
pub(crate) struct Promotion {
    pub(super) cfg: PromotionConfig,
    state: State,
    /// Approval records already audited (their catalogue keys).
    seen: HashSet<String>,
    /// `CAP@VER` conflicts already audited, with the statements seen then.
    seen_conflicts: HashSet<String>,
    explanations: BTreeMap<ReleaseId, Explanation>,
    /// What this node's store holds, verified, per release (`service::mirror`).
    pub(super) mirror: BTreeMap<ReleaseId, Mirror>,
    /// Something changed that could change a decision.
    pub(super) dirty: bool,
    /// Something changed that could change what the mirror should hold.
    wants_dirty: bool,
    /// The last mirror plan handed to the reactor.
    wants: Option<MirrorPlan>,
    /// Hooks the reactor is running now.
    hooks_running: BTreeSet<ReleaseId>,
    /// Failed hooks and when to try them again.
    hook_due: BTreeMap<ReleaseId, Instant>,
    next_replan: Instant,
    /// The audit log's last row already published in a checkpoint, and the next time one
    /// may go out.
    checkpointed: u64,
    next_checkpoint: Instant,
    metrics: PromotionMetrics,
}

impl<S: Store, P: Clone + Ord + Hash + Display + std::fmt::Debug> Service<S, P> {
    /// Gives this core the promotion engine, from the state persisted at the last run.
    /// What the catalogue holds counts as audited (it was, when it arrived); hooks still
    /// owed from before a restart are asked for.
    pub fn with_promotion(mut self, cfg: PromotionConfig, state: State, now: Now) -> Self {
        let read = self.catalogue();
        let cat = &read.0;
        let chain = self.replica.chain();
        let seen = accord_promote::inputs::approvals(cat)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let seen_conflicts = equivocations(cat, chain)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let checkpointed = cat
            .checkpoints
            .iter()
            .filter_map(|c| accord_protocol::AuditCheckpoint::parse(&c.value).ok())
            .filter(|(_, c)| c.jurisdiction == cfg.jurisdiction)
            .map(|(_, c)| c.seq)
            .max()
            .unwrap_or(0);
        let owed: BTreeMap<ReleaseId, Instant> = state
            .hooks_owed
            .keys()
            .filter(|k| state.is_live(k))
            .map(|k| (*k, now.mono))
            .collect();
        self.promotion = Some(Promotion {
            next_replan: now.mono + cfg.replan_every,
            next_checkpoint: now.mono + cfg.checkpoint_every,
            cfg,
            state,
            seen,
            seen_conflicts,
            explanations: BTreeMap::new(),
            mirror: BTreeMap::new(),
            dirty: true,
            wants_dirty: true,
            wants: None,
            hooks_running: BTreeSet::new(),
            hook_due: owed,
            checkpointed,
            metrics: PromotionMetrics::default(),
        });
        self.clock = now;
        self.due_hooks(now);
        self
    }

    /// What this node has promoted (persisted with every action).
    pub fn promotion_state(&self) -> Option<&State> {
        self.promotion.as_ref().map(|p| &p.state)
    }

    /// Where each release stands here, and why (the engine's last run).
    pub fn explanations(&self) -> Option<&BTreeMap<ReleaseId, Explanation>> {
        self.promotion.as_ref().map(|p| &p.explanations)
    }

    /// The jurisdiction this node promotes for.
    pub fn promotion_jurisdiction(&self) -> Option<&PrincipalId> {
        self.promotion.as_ref().map(|p| &p.cfg.jurisdiction)
    }

    pub fn promotion_metrics(&self) -> PromotionMetrics {
        self.promotion
            .as_ref()
            .map(|p| p.metrics.clone())
            .unwrap_or_default()
    }

    /// Takes the signatures of a release, recall or conditional envelope
    /// (`accord_promote::admit`): the valid new ones go into the catalogue as approval
    /// records (and replicate), the others are reported and audited as rejected. A recall
    /// or conditional statement is recorded with its first valid signature.
    pub fn import_signatures(&mut self, bytes: &[u8], now: Now) -> Result<Imported, String> {
        self.clock = now;
        let env = Envelope::from_json(bytes).map_err(|e| format!("not a signed statement: {e}"))?;
        let root = self.replica.root().clone();
        let read = self.catalogue();
        let adm = accord_promote::admit::admit(&read.0, &root, &env)?;
        let subject = adm.located.subject.clone();
        let mut events: Vec<AuditEvent> = adm
            .rejected
            .iter()
            .filter(|r| !r.ends_with("already recorded"))
            .map(|r| AuditEvent::new(kind::REJECTED, &subject, format!("imported signature: {r}")))
            .collect();
        if adm.records.is_empty() {
            self.outbox.push_back(Io::Audit(events));
            return Err(format!(
                "no new valid signature for {subject} ({}): {}",
                adm.located.what,
                if adm.rejected.is_empty() {
                    "the envelope has no signatures".to_owned()
                } else {
                    adm.rejected.join("; ")
                }
            ));
        }
        let new_statement = adm.located.new_statement.then(|| env.payload.clone());
        let records = adm.records;
        self.edit(now, &format!("signatures for {subject}"), |tx| {
            if let Some(p) = &new_statement {
                accord_catalogue::edit::add_history(tx, History::Statements, p)?;
            }
            for r in &records {
                accord_catalogue::edit::add_history(tx, History::Signatures, r)?;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        // Audited here, with where it came from; the catalogue scan will not repeat them.
        if let Some(p) = &mut self.promotion {
            p.seen.extend(records.iter().map(|r| entry_key(r)));
        }
        events.extend(adm.added.iter().map(|a| {
            AuditEvent::new(
                kind::SIGNATURE,
                &subject,
                format!("{}: {a}, imported here", adm.located.what),
            )
        }));
        self.outbox.push_back(Io::Audit(events));
        info!(release = %subject, statement = %adm.located.what, added = adm.added.len(), "signatures recorded");
        Ok(Imported {
            release: subject,
            statement: adm.located.what,
            added: adm.added,
            rejected: adm.rejected,
        })
    }

    /// One run of the `on_promote` hook ended. A failure is audited and tried again after
    /// a backoff (a wakeup, `next_wakeup`); it never un-promotes.
    pub fn hook_finished(&mut self, id: ReleaseId, result: Result<(), String>, now: Now) {
        self.clock = now;
        let Some(p) = &mut self.promotion else {
            return;
        };
        p.hooks_running.remove(&id);
        if !p.state.hooks_owed.contains_key(&id) {
            return;
        }
        let subject = label(&p.state, &id);
        let mut next = p.state.clone();
        let event = match &result {
            Ok(()) => {
                next.hooks_owed.remove(&id);
                info!(release = %subject, "on_promote hook succeeded");
                AuditEvent::new(kind::HOOK, &subject, "on_promote succeeded")
            }
            Err(e) => {
                let n = next.hooks_owed.entry(id).or_insert(0);
                *n += 1;
                p.metrics.hook_failures += 1;
                warn!(release = %subject, attempt = *n, error = %e, "on_promote hook failed; will retry (the release stays promoted)");
                AuditEvent::new(
                    kind::HOOK,
                    &subject,
                    format!("on_promote failed (attempt {n}): {e}"),
                )
            }
        };
        if let Err(e) = self
            .store
            .commit_promotion(&next.to_json(), now.unix(), &[event])
        {
            warn!(error = %e, "could not record the hook's result");
        }
        if let Some(n) = next.hooks_owed.get(&id).copied() {
            p.hook_due
                .insert(id, now.mono + accord_promote::hook_backoff(n));
        }
        p.state = next;
    }

    /// Publishes a signed checkpoint of the audit log (its length and last row's hash) in
    /// the catalogue when the log has grown since the last one, at most once per interval
    /// unless `force` (at shutdown): every peer then holds proof of how long the log was
    /// (`accord audit verify`).
    pub fn checkpoint_audit(&mut self, force: bool, now: Now) {
        self.clock = now;
        let Some(p) = &mut self.promotion else {
            return;
        };
        if !force && now.mono < p.next_checkpoint {
            return;
        }
        p.next_checkpoint = now.mono + p.cfg.checkpoint_every;
        let Ok(Some((seq, head))) = self.store.audit_head() else {
            return;
        };
        if seq <= p.checkpointed {
            return;
        }
        let mut env = accord_protocol::AuditCheckpoint {
            jurisdiction: p.cfg.jurisdiction.clone(),
            seq,
            head: hex::encode(head),
            at: Timestamp::from_unix(now.unix()),
        }
        .to_envelope();
        accord_trust::sign_envelope(&mut env, &p.cfg.signer);
        let bytes = env.to_json();
        let result = self.edit(now, "audit checkpoint", |tx| {
            accord_catalogue::edit::add_history(tx, History::Checkpoints, &bytes).map(|_| ())
        });
        match result {
            Ok(_) => {
                if let Some(p) = &mut self.promotion {
                    p.checkpointed = seq;
                }
            }
            Err(e) => warn!(error = %e, "could not publish an audit checkpoint"),
        }
    }

    /// The catalogue changed: the engine and the mirror plan follow.
    pub(super) fn promotion_follows_catalogue(&mut self) {
        if let Some(p) = &mut self.promotion {
            p.dirty = true;
            p.wants_dirty = true;
        }
    }

    /// The promotion side of `handle_timeout`: hooks due again, the timed plan, the audit
    /// checkpoint.
    pub(super) fn promotion_timeout(&mut self, now: Now) {
        let Some(p) = &mut self.promotion else {
            return;
        };
        if now.mono >= p.next_replan {
            p.next_replan = now.mono + p.cfg.replan_every;
            p.dirty = true;
            p.wants_dirty = true;
        }
        self.due_hooks(now);
        self.checkpoint_audit(false, now);
    }

    /// The promotion side of `next_wakeup`.
    pub(super) fn promotion_wakeup(&self) -> Option<Instant> {
        let p = self.promotion.as_ref()?;
        [
            Some(p.next_replan),
            Some(p.next_checkpoint),
            p.hook_due.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Asks for each hook whose retry time has come.
    fn due_hooks(&mut self, now: Now) {
        let Some(p) = &mut self.promotion else {
            return;
        };
        let due: Vec<ReleaseId> = p
            .hook_due
            .iter()
            .filter(|(_, at)| **at <= now.mono)
            .map(|(id, _)| *id)
            .collect();
        p.hook_due.retain(|id, _| !due.contains(id));
        for id in due {
            self.start_hook(id);
        }
    }

    /// Asks the reactor to run `on_promote` for a live release (one attempt). Its
    /// environment is the pinned promotion record, nothing of the catalogue's current view.
    fn start_hook(&mut self, id: ReleaseId) {
        let Some(p) = &mut self.promotion else {
            return;
        };
        if !p.cfg.hook
            || !p.state.is_live(&id)
            || !p.state.hooks_owed.contains_key(&id)
            || p.hooks_running.contains(&id)
        {
            return;
        }
        let Some(standing) = p.state.releases.get(&id) else {
            return;
        };
        let names: Vec<String> = standing.artifacts.iter().map(|a| a.name.clone()).collect();
        let digests: Vec<String> = standing
            .artifacts
            .iter()
            .map(|a| format!("{}={}", a.name, a.sha256))
            .collect();
        let env = vec![
            ("ACCORD_RELEASE".to_owned(), standing.key()),
            ("ACCORD_RELEASE_ID".to_owned(), id.hex()),
            ("ACCORD_CAPABILITY".to_owned(), standing.capability.clone()),
            ("ACCORD_VERSION".to_owned(), standing.version.to_string()),
            (
                "ACCORD_JURISDICTION".to_owned(),
                p.cfg.jurisdiction.to_string(),
            ),
            ("ACCORD_PAYLOAD_SHA256".to_owned(), id.hex()),
            ("ACCORD_ARTIFACTS".to_owned(), names.join(" ")),
            ("ACCORD_ARTIFACTS_SHA256".to_owned(), digests.join(" ")),
        ];
        p.hooks_running.insert(id);
        self.outbox.push_back(Io::RunHook { release: id, env });
    }

    /// Runs the engine if anything changed since the last run, commits each action before
    /// it counts, then publishes the notes owed and the mirror's plan.
    pub(super) fn reconcile(&mut self, now: Now) {
        if self.retired {
            return;
        }
        let held_dirty = self.blobs.as_ref().is_some_and(|m| m.held_dirty());
        match &self.promotion {
            Some(p) if p.dirty || p.wants_dirty || held_dirty => {}
            _ => return,
        }
        let read = self.catalogue();
        let cat = &read.0;
        self.report_held(cat);
        let Some(p) = &mut self.promotion else {
            return;
        };
        if !p.dirty && !p.wants_dirty {
            return;
        }
        let run_engine = std::mem::take(&mut p.dirty);
        let chain = self.replica.chain().clone();
        let at = Timestamp::from_unix(now.unix());
        if run_engine {
            let events = self.new_events(cat, &chain);
            if !events.is_empty() {
                self.outbox.push_back(Io::Audit(events));
            }
            self.run_engine(cat, &chain, now);
        }
        self.publish_notes(cat, &chain, now);
        let Some(p) = &mut self.promotion else {
            return;
        };
        if std::mem::take(&mut p.wants_dirty) {
            let plan = accord_promote::mirror_plan(
                cat,
                &chain,
                &p.state,
                p.cfg.jurisdiction.as_str(),
                p.cfg.staging_quota,
                at,
            );
            p.metrics.equivocations = cat.equivocations().len() as u64;
            p.metrics.staged_bytes = plan.staged.clone();
            p.metrics.held_back = plan.held_back.len() as u64;
            if p.wants.as_ref() != Some(&plan) {
                p.wants = Some(plan.clone());
                self.apply_mirror_plan(cat, &plan);
            }
        }
    }

    fn run_engine(&mut self, cat: &accord_catalogue::Catalogue, chain: &RootChain, now: Now) {
        let stale = self.stale_reasons(now);
        let Some(p) = &mut self.promotion else {
            return;
        };
        let root = chain.current();
        let at = Timestamp::from_unix(now.unix());
        let candidates = accord_promote::candidates(cat, &p.mirror);
        let plan = accord_promote::plan(
            &p.state,
            &Context {
                root,
                local_rules: &p.cfg.local_rules,
                jurisdiction: &p.cfg.jurisdiction,
                now: at,
            },
            &candidates,
        );
        let mut promoted = Vec::new();
        // A stale view holds promotions back; a recall is never held back.
        let mut held_stale = BTreeSet::new();
        for action in &plan.actions {
            if !stale.is_empty() && matches!(action, Action::Promote { .. }) {
                held_stale.insert(*action.id());
                continue;
            }
            let mut next = p.state.clone();
            next.apply(action, at);
            let event = match action {
                Action::Promote {
                    id,
                    capability,
                    version,
                    artifacts,
                } => {
                    let pinned: Vec<String> = artifacts
                        .iter()
                        .map(|a| format!("{} sha256:{}", a.name, hex::encode(a.sha256)))
                        .collect();
                    AuditEvent::new(
                        kind::PROMOTED,
                        format!("{capability}@{version}#{}", id.short()),
                        format!(
                            "promoted statement {id} to {}'s production under root v{}: every rule met, every artifact verified here; serves {}",
                            p.cfg.jurisdiction,
                            root.version(),
                            pinned.join(", ")
                        ),
                    )
                }
                Action::Recall { id, reason } => AuditEvent::new(
                    kind::RECALLED,
                    label(&p.state, id),
                    format!("recalled: {reason}"),
                ),
            };
            (self.pause)("commit-promotion");
            if let Err(e) = self
                .store
                .commit_promotion(&next.to_json(), now.unix(), &[event])
            {
                // Nothing changed; the next run tries again.
                warn!(error = %e, release = %action.id(), "could not commit a promotion decision");
                p.dirty = true;
                break;
            }
            p.state = next;
            // What is mirrored follows what is live (superseded releases are unpinned).
            p.wants_dirty = true;
            match action {
                Action::Promote {
                    id,
                    capability,
                    version,
                    ..
                } => {
                    p.metrics.promotions += 1;
                    info!(release = %format!("{capability}@{version}"), statement = %id.short(), "promoted to production");
                    promoted.push(*id);
                }
                Action::Recall { id, reason } => {
                    p.metrics.recalls += 1;
                    p.hook_due.remove(id);
                    warn!(statement = %id.short(), %reason, "recalled: removed from production");
                }
            }
        }
        let state = &p.state;
        p.explanations = plan
            .explanations
            .into_iter()
            .map(|mut e| {
                if state.is_live(&e.id) {
                    e.state = Status::Live;
                    e.reasons.clear();
                } else if state
                    .releases
                    .get(&e.id)
                    .is_some_and(|s| s.recalled.is_some())
                {
                    e.state = Status::Recalled;
                } else if held_stale.contains(&e.id) {
                    e.state = Status::Waiting;
                    e.reasons.extend(stale.iter().cloned());
                } else if e.state == Status::Live {
                    // Planned but not committed (the database refused): say so, not "live".
                    e.state = Status::Waiting;
                    e.reasons.push(Reason::NotCommitted);
                }
                (e.id, e)
            })
            .collect();
        p.metrics.releases_live = state
            .releases
            .values()
            .filter(|s| s.recalled.is_none())
            .count() as u64;
        for id in promoted {
            (self.pause)("promoted-before-hook");
            self.start_hook(id);
        }
    }

    /// Audits each approval that arrived since the last run (which principal and role it
    /// counts for under the current root, or why it does not), and each new conflict
    /// between statements of one `CAP@VER`.
    fn new_events(
        &mut self,
        cat: &accord_catalogue::Catalogue,
        chain: &RootChain,
    ) -> Vec<AuditEvent> {
        let Some(p) = &mut self.promotion else {
            return Vec::new();
        };
        let root = chain.current();
        let mut events = Vec::new();
        for (id, (subject, env)) in accord_promote::inputs::approvals(cat) {
            if !p.seen.insert(id) {
                continue;
            }
            let event = match Tally::of(&env, root).checks.into_iter().next() {
                Some(c) if c.ignored.is_none() => AuditEvent::new(
                    kind::SIGNATURE,
                    subject,
                    format!(
                        "{} of {} (key {})",
                        c.role.map(|r| r.to_string()).unwrap_or_default(),
                        c.principal.map(|p| p.to_string()).unwrap_or_default(),
                        c.keyid
                            .as_ref()
                            .map(|k| k.short().to_owned())
                            .unwrap_or_default()
                    ),
                ),
                Some(c) => AuditEvent::new(
                    kind::REJECTED,
                    subject,
                    format!(
                        "signature does not count: {}",
                        c.ignored.unwrap_or_default()
                    ),
                ),
                None => continue,
            };
            events.push(event);
        }
        for (id, event) in equivocations(cat, chain) {
            if p.seen_conflicts.insert(id) {
                events.push(event);
            }
        }
        events
    }

    /// Writes the promotion notes the catalogue does not have yet.
    fn publish_notes(&mut self, cat: &accord_catalogue::Catalogue, chain: &RootChain, now: Now) {
        let Some(p) = &self.promotion else {
            return;
        };
        let owed =
            accord_promote::notes_owed(&p.state, cat, chain, &p.cfg.jurisdiction, &p.cfg.signer);
        if owed.is_empty() {
            return;
        }
        let result = self.edit(now, "promotion notes", |tx| {
            for note in &owed {
                accord_catalogue::edit::add_history(tx, History::Notes, note)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            warn!(error = %e, "could not publish promotion notes");
        }
    }
}

/// How the audit log and the logs name a release this node holds a standing for:
/// `CAP@VER#ID` (the id alone if it has none).
fn label(state: &State, id: &ReleaseId) -> String {
    state
        .releases
        .get(id)
        .map(|s| format!("{}#{}", s.key(), id.short()))
        .unwrap_or_else(|| id.to_string())
}

/// Every `CAP@VER` claimed by more than one statement, as an audit event keyed by the set
/// of statements (a third statement is a new event).
fn equivocations(
    cat: &accord_catalogue::Catalogue,
    chain: &RootChain,
) -> Vec<(String, AuditEvent)> {
    cat.equivocations()
        .into_iter()
        .map(|(key, rs)| {
            let ids: Vec<String> = rs.iter().map(|r| r.id.short()).collect();
            let detail: Vec<String> = rs
                .iter()
                .map(|r| {
                    format!(
                        "{} proposed by {}",
                        r.id.short(),
                        accord_promote::inputs::proposers(r, chain).join(", ")
                    )
                })
                .collect();
            (
                format!("{key}|{}", ids.join(",")),
                AuditEvent::new(
                    kind::EQUIVOCATION,
                    key.clone(),
                    format!(
                        "{} statements claim {key}: {}; each counts only its own signatures",
                        rs.len(),
                        detail.join("; ")
                    ),
                ),
            )
        })
        .collect()
}
