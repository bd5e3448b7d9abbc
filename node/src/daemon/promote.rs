//! The daemon's promotion duties: run the engine after anything that could change its
//! answer, commit each action with its audit record, publish the node's signed notes, take
//! in signatures, and run the `on_promote` hook until it succeeds.

use std::time::Duration;

use accord_catalogue::{Approval, History};
use accord_promote::{Action, Context};
use accord_protocol::{Envelope, KeyId, ReleaseId, Role, Statement, Timestamp};
use accord_store::AuditEvent;
use accord_store::audit::kind;
use accord_trust::Tally;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Internal, Node};

/// What `POST /v1/signatures` did with an envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Imported {
    /// The release the signatures are for (`CAP@VER#ID`), and which statement ("release",
    /// "recall …").
    pub release: String,
    pub statement: String,
    /// "lead of uk (key 1a2b3c4d)" for each signature added.
    pub added: Vec<String>,
    /// Each signature not added, and why.
    pub rejected: Vec<String>,
}

/// Hooks back off 2, 4, 8 … seconds, at most five minutes apart.
fn hook_backoff(attempts: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempts.min(8)).min(300))
}

/// How the audit log and the logs name a promoted release: `CAP@VER#ID`.
fn label(standing: &accord_promote::Standing, id: &ReleaseId) -> String {
    format!("{}#{}", standing.key(), id.short())
}

impl Node {
    pub(super) fn audit(&self, events: &[AuditEvent]) {
        if let Err(e) =
            self.svc
                .store()
                .append_audit(&self.promoter.signer, Timestamp::now(), events)
        {
            warn!(error = %e, "could not append to the audit log");
        }
    }

    /// Runs the engine if anything changed since the last run.
    pub(super) fn reconcile(&mut self) {
        if !self.promote_dirty || self.svc.is_retired() {
            return;
        }
        self.promote_dirty = false;
        let chain = self.svc.replica().chain().clone();
        let root = chain.current().clone();
        let read = self.read();
        let cat = &read.0;
        let events = self.promoter.new_events(cat, &chain);
        self.audit(&events);
        let views = self
            .mirror
            .views(cat, &chain, &self.jurisdiction, self.names());
        let candidates = self.promoter.candidates(cat, &views);
        let now = Timestamp::now();
        let plan = accord_promote::plan(
            &self.promoter.state,
            &Context {
                root: &root,
                local_rules: &self.promoter.local_rules,
                jurisdiction: &self.promoter.jurisdiction,
                now,
            },
            &candidates,
        );
        for action in &plan.actions {
            let mut next = self.promoter.state.clone();
            next.apply(action, now);
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
                            self.jurisdiction,
                            root.version(),
                            pinned.join(", ")
                        ),
                    )
                }
                Action::Recall { id, reason } => {
                    let subject = self
                        .promoter
                        .state
                        .releases
                        .get(id)
                        .map(|s| label(s, id))
                        .unwrap_or_else(|| id.to_string());
                    AuditEvent::new(kind::RECALLED, subject, format!("recalled: {reason}"))
                }
            };
            crate::testpoint::pause("commit-promotion");
            if let Err(e) = self.svc.store().commit_promotion(
                &next.to_json(),
                &self.promoter.signer,
                now,
                &[event],
            ) {
                // Nothing changed; the next run tries again.
                warn!(error = %e, release = %action.id(), "could not commit a promotion decision");
                self.promote_dirty = true;
                break;
            }
            self.promoter.state = next;
            // What is mirrored follows what is live (superseded releases are unpinned).
            self.wants_dirty = true;
            match action {
                Action::Promote {
                    id,
                    capability,
                    version,
                    ..
                } => {
                    self.metrics.promotions += 1;
                    info!(release = %format!("{capability}@{version}"), statement = %id.short(), "promoted to production");
                    crate::testpoint::pause("promoted-before-hook");
                    self.run_hook(id);
                }
                Action::Recall { id, reason } => {
                    self.metrics.recalls += 1;
                    warn!(statement = %id.short(), %reason, "recalled: removed from production");
                }
            }
        }
        self.promoter.explanations = plan
            .explanations
            .into_iter()
            .map(|mut e| {
                if self.promoter.state.is_live(&e.id) {
                    e.state = accord_promote::Status::Live;
                    e.reasons.clear();
                } else if self
                    .promoter
                    .state
                    .releases
                    .get(&e.id)
                    .is_some_and(|s| s.recalled.is_some())
                {
                    e.state = accord_promote::Status::Recalled;
                } else if e.state == accord_promote::Status::Live {
                    // Planned but not committed (the database refused): say so, not "live".
                    e.state = accord_promote::Status::Waiting;
                    e.reasons
                        .push("promotion decided but not yet committed; retrying".into());
                }
                (e.id, e)
            })
            .collect();
        self.metrics.releases_live = self
            .promoter
            .state
            .releases
            .values()
            .filter(|s| s.recalled.is_none())
            .count() as u64;
        self.publish_notes(cat, &chain);
    }

    /// Publishes a signed checkpoint of the audit log (its length and last row's hash) in
    /// the catalogue when the log has grown since the last one, at most once per interval:
    /// every peer then holds proof of how long the log was (`accord audit verify`).
    pub(super) fn checkpoint_audit(&mut self, force: bool) {
        let Ok(Some((seq, head))) = self.svc.store().audit_head() else {
            return;
        };
        if seq <= self.checkpointed
            || (!force && self.last_checkpoint.elapsed() < self.checkpoint_every)
        {
            return;
        }
        let Ok(me) = accord_protocol::PrincipalId::new(&self.jurisdiction) else {
            return;
        };
        let mut env = accord_protocol::AuditCheckpoint {
            jurisdiction: me,
            seq,
            head: hex::encode(head),
            at: Timestamp::now(),
        }
        .to_envelope();
        accord_trust::sign_envelope(&mut env, &self.promoter.signer);
        let bytes = env.to_json();
        let result = self.svc.edit(super::now(), "audit checkpoint", |tx| {
            accord_catalogue::edit::add_history(tx, History::Checkpoints, &bytes).map(|_| ())
        });
        match result {
            Ok(_) => {
                self.checkpointed = seq;
                self.last_checkpoint = std::time::Instant::now();
            }
            Err(e) => warn!(error = %e, "could not publish an audit checkpoint"),
        }
    }

    /// Writes the promotion notes the catalogue does not have yet.
    fn publish_notes(
        &mut self,
        cat: &accord_catalogue::schema::Catalogue,
        chain: &accord_trust::RootChain,
    ) {
        let owed = self.promoter.notes_owed(cat, chain);
        if owed.is_empty() {
            return;
        }
        let result = self.svc.edit(super::now(), "promotion notes", |tx| {
            for note in &owed {
                accord_catalogue::edit::add_history(tx, History::Notes, note)?;
            }
            Ok(())
        });
        match result {
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not publish promotion notes"),
        }
    }

    /// Takes the signatures of a release, recall or conditional envelope: each is checked
    /// alone under the current root; the valid new ones go into the catalogue as approval
    /// records naming the statement's id (and replicate), the others are reported and
    /// audited as rejected. A recall or conditional statement is recorded with its first
    /// valid signature.
    pub(super) fn import_signatures(&mut self, bytes: &[u8]) -> Result<Imported, String> {
        let env = Envelope::from_json(bytes).map_err(|e| format!("not a signed statement: {e}"))?;
        if env.payload_type != accord_protocol::dsse::PAYLOAD_TYPE_IN_TOTO {
            return Err(format!(
                "payloadType {:?} is not an in-toto statement",
                env.payload_type.chars().take(60).collect::<String>()
            ));
        }
        let root = self.svc.replica().root().clone();
        let read = self.read();
        let located = locate(&read.0, &env)?;
        let mut added = Vec::new();
        let mut rejected = Vec::new();
        let mut records = Vec::new();
        for s in &env.signatures {
            if located
                .existing
                .iter()
                .any(|e| e.as_slice() == s.sig.as_slice())
            {
                rejected.push(format!("key {}: already recorded", short(&s.keyid)));
                continue;
            }
            let mut one = env.clone();
            one.signatures = vec![s.clone()];
            let check = Tally::of(&one, &root).checks.into_iter().next();
            match check {
                Some(c) if c.ignored.is_none() && c.role != Some(Role::Node) => {
                    let (Some(keyid), Some(p), Some(role)) = (c.keyid, c.principal, c.role) else {
                        continue;
                    };
                    let Ok(sig) = <[u8; 64]>::try_from(s.sig.as_slice()) else {
                        rejected.push(format!("key {}: not a 64-byte signature", keyid.short()));
                        continue;
                    };
                    added.push(format!("{role} of {p} (key {})", keyid.short()));
                    records.push(
                        Approval {
                            statement: located.id,
                            keyid: KeyId::parse(keyid.as_str()).map_err(|e| e.to_string())?,
                            sig,
                        }
                        .to_bytes(),
                    );
                }
                Some(c) if c.role == Some(Role::Node) => rejected.push(format!(
                    "key {}: a node key does not approve statements",
                    short(&s.keyid)
                )),
                Some(c) => rejected.push(format!(
                    "key {}: {}",
                    short(&s.keyid),
                    c.ignored.unwrap_or_default()
                )),
                None => {}
            }
        }
        let subject = located.subject.clone();
        let mut events: Vec<AuditEvent> = rejected
            .iter()
            .filter(|r| !r.ends_with("already recorded"))
            .map(|r| AuditEvent::new(kind::REJECTED, &subject, format!("imported signature: {r}")))
            .collect();
        if records.is_empty() {
            self.audit(&events);
            return Err(format!(
                "no new valid signature for {subject} ({}): {}",
                located.what,
                if rejected.is_empty() {
                    "the envelope has no signatures".to_owned()
                } else {
                    rejected.join("; ")
                }
            ));
        }
        let new_statement = located.new_statement.then(|| env.payload.clone());
        self.svc
            .edit(super::now(), &format!("signatures for {subject}"), |tx| {
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
        self.promoter.prime_records(&records);
        events.extend(added.iter().map(|a| {
            AuditEvent::new(
                kind::SIGNATURE,
                &subject,
                format!("{}: {a}, imported here", located.what),
            )
        }));
        self.audit(&events);
        info!(release = %subject, statement = %located.what, added = added.len(), "signatures recorded");
        Ok(Imported {
            release: subject,
            statement: located.what,
            added,
            rejected,
        })
    }

    /// Starts the `on_promote` command for a live release (one attempt). Its environment is
    /// the pinned promotion record and `PATH`, nothing else of the node's.
    pub(super) fn run_hook(&mut self, id: &ReleaseId) {
        let Some(cmd) = self.on_promote.clone() else {
            return;
        };
        let Some(standing) = self.promoter.state.releases.get(id).cloned() else {
            return;
        };
        let names: Vec<String> = standing.artifacts.iter().map(|a| a.name.clone()).collect();
        let digests: Vec<String> = standing
            .artifacts
            .iter()
            .map(|a| format!("{}={}", a.name, a.sha256))
            .collect();
        let env = [
            ("ACCORD_RELEASE", standing.key()),
            ("ACCORD_RELEASE_ID", id.hex()),
            ("ACCORD_CAPABILITY", standing.capability.clone()),
            ("ACCORD_VERSION", standing.version.to_string()),
            ("ACCORD_JURISDICTION", self.jurisdiction.clone()),
            ("ACCORD_PAYLOAD_SHA256", id.hex()),
            ("ACCORD_ARTIFACTS", names.join(" ")),
            ("ACCORD_ARTIFACTS_SHA256", digests.join(" ")),
            ("ACCORD_DATA_DIR", self.data_dir.display().to_string()),
        ];
        let internal = self.internal.clone();
        let id = *id;
        tokio::spawn(async move {
            let mut command = tokio::process::Command::new("sh");
            command
                .arg("-c")
                .arg(&cmd)
                .env_clear()
                .envs(env)
                .stdin(std::process::Stdio::null());
            if let Some(path) = std::env::var_os("PATH") {
                command.env("PATH", path);
            }
            let run = command.output();
            let result = match tokio::time::timeout(Duration::from_secs(600), run).await {
                Ok(Ok(out)) if out.status.success() => Ok(()),
                Ok(Ok(out)) => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let tail: String = stderr.trim().chars().rev().take(300).collect();
                    Err(format!(
                        "{}: {}",
                        out.status,
                        tail.chars().rev().collect::<String>()
                    ))
                }
                Ok(Err(e)) => Err(format!("could not start: {e}")),
                Err(_) => Err("timed out after 600 s".into()),
            };
            let _ = internal.send(Internal::HookDone { id, result }).await;
        });
    }

    /// Records a hook attempt; a failure is retried later and never un-promotes.
    pub(super) fn hook_done(&mut self, id: ReleaseId, result: Result<(), String>) {
        if !self.promoter.state.hooks_owed.contains_key(&id) {
            return;
        }
        let subject = self
            .promoter
            .state
            .releases
            .get(&id)
            .map(|s| label(s, &id))
            .unwrap_or_else(|| id.to_string());
        let mut next = self.promoter.state.clone();
        let event = match &result {
            Ok(()) => {
                next.hooks_owed.remove(&id);
                info!(release = %subject, "on_promote hook succeeded");
                AuditEvent::new(kind::HOOK, &subject, "on_promote succeeded")
            }
            Err(e) => {
                let n = next.hooks_owed.entry(id).or_insert(0);
                *n += 1;
                self.metrics.hook_failures += 1;
                warn!(release = %subject, attempt = *n, error = %e, "on_promote hook failed; will retry (the release stays promoted)");
                AuditEvent::new(
                    kind::HOOK,
                    &subject,
                    format!("on_promote failed (attempt {n}): {e}"),
                )
            }
        };
        if let Err(e) = self.svc.store().commit_promotion(
            &next.to_json(),
            &self.promoter.signer,
            Timestamp::now(),
            &[event],
        ) {
            warn!(error = %e, "could not record the hook's result");
        }
        let attempts = next.hooks_owed.get(&id).copied();
        self.promoter.state = next;
        if let Some(n) = attempts {
            let internal = self.internal.clone();
            tokio::spawn(async move {
                tokio::time::sleep(hook_backoff(n)).await;
                let _ = internal.send(Internal::RetryHook { id }).await;
            });
        }
    }

    /// Hooks still owed from before a restart.
    pub(super) fn resume_hooks(&mut self) {
        let owed: Vec<ReleaseId> = self
            .promoter
            .state
            .hooks_owed
            .keys()
            .filter(|k| self.promoter.state.is_live(k))
            .copied()
            .collect();
        for id in owed {
            self.run_hook(&id);
        }
    }
}

/// The first characters of a key id for messages; the id came from outside, so it is cut on
/// character boundaries, never bytes.
fn short(keyid: &str) -> String {
    keyid.chars().take(8).collect()
}

/// The catalogue statement an envelope's signatures belong to.
struct Located {
    /// The statement signed (its payload's SHA-256).
    id: ReleaseId,
    /// How the audit log names it: `CAP@VER#ID`, or `CAP@VER#ID recall ID`.
    subject: String,
    /// "release", "recall" or "conditional".
    what: String,
    /// Signatures already recorded for it.
    existing: Vec<Vec<u8>>,
    /// A recall or conditional the catalogue does not hold yet.
    new_statement: bool,
}

/// Which catalogue statement an envelope is: a release the catalogue holds, or a recall or
/// conditional that names one by its id (new ones are recorded with their signatures).
fn locate(cat: &accord_catalogue::schema::Catalogue, env: &Envelope) -> Result<Located, String> {
    let id = ReleaseId::of_payload(&env.payload);
    let existing_of = |approvals: &[accord_catalogue::schema::Authored<Approval>]| {
        approvals
            .iter()
            .map(|a| a.value.sig.to_vec())
            .collect::<Vec<_>>()
    };
    if let Some(r) = cat.release(&id) {
        return Ok(Located {
            id,
            subject: r.label(),
            what: "release".into(),
            existing: existing_of(&r.approvals),
            new_statement: false,
        });
    }
    let kind =
        Statement::from_envelope(env).map_err(|e| format!("not an Accord statement: {e}"))?;
    let Some(target) = kind.names_release() else {
        return Err(format!(
            "release statement {} is not in this node's catalogue (propose it first, or wait for it to sync)",
            id.short()
        ));
    };
    let release = cat.release(&target).ok_or_else(|| {
        format!(
            "the {} names release statement {}, which is not in this node's catalogue",
            kind.name(),
            target.short()
        )
    })?;
    let about = release.about.iter().find(|a| a.id == id);
    Ok(Located {
        id,
        subject: format!("{} {} {}", release.label(), kind.name(), id.short()),
        what: kind.name().into(),
        existing: about.map(|a| existing_of(&a.approvals)).unwrap_or_default(),
        new_statement: about.is_none(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_ids_from_a_request_are_cut_on_characters() {
        assert_eq!(super::short("ééééééééé"), "éééééééé");
        assert_eq!(super::short("ab"), "ab");
    }
}
