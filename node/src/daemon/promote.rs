//! The daemon's promotion duties: run the engine after anything that could change its
//! answer, commit each action with its audit record, publish the node's signed notes, take
//! in signatures, and run the `on_promote` hook until it succeeds.

use std::time::Duration;

use accord_promote::{Action, Context};
use accord_protocol::{Envelope, Role, Statement, StatementKind, Timestamp};
use accord_store::AuditEvent;
use accord_store::audit::kind;
use accord_trust::Tally;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Internal, Node};

/// What `POST /v1/signatures` did with an envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Imported {
    /// The release the signatures are for, and which statement ("release", "recall …").
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

impl Node {
    pub(super) fn audit(&self, events: &[AuditEvent]) {
        if let Err(e) = self
            .db
            .append_audit(&self.promoter.signer, Timestamp::now(), events)
        {
            warn!(error = %e, "could not append to the audit log");
        }
    }

    /// Runs the engine if anything changed since the last run.
    pub(super) fn reconcile(&mut self) {
        if !self.promote_dirty {
            return;
        }
        self.promote_dirty = false;
        let root = self.replica.root().clone();
        let (cat, _) = accord_catalogue::schema::read(self.replica.doc());
        let events = self.promoter.new_signatures(&cat, &root);
        self.audit(&events);
        let views = self.mirror.views(&cat, &self.jurisdiction, &self.names);
        let candidates = self.promoter.candidates(&cat, &views);
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
                Action::Promote { key, .. } => AuditEvent::new(
                    kind::PROMOTED,
                    key,
                    format!(
                        "promoted to {}'s production under root v{}: every rule met, every artifact verified here",
                        self.jurisdiction,
                        root.version()
                    ),
                ),
                Action::Recall { key, reason } => {
                    AuditEvent::new(kind::RECALLED, key, format!("recalled: {reason}"))
                }
            };
            if let Err(e) =
                self.db
                    .commit_promotion(&next.to_json(), &self.promoter.signer, now, &[event])
            {
                // Nothing changed; the next run tries again.
                warn!(error = %e, release = action.key(), "could not commit a promotion decision");
                self.promote_dirty = true;
                break;
            }
            self.promoter.state = next;
            match action {
                Action::Promote { key, version, .. } => {
                    self.metrics.promotions += 1;
                    info!(release = %key, %version, "promoted to production");
                    self.run_hook(key);
                }
                Action::Recall { key, reason } => {
                    self.metrics.recalls += 1;
                    warn!(release = %key, %reason, "recalled: removed from production");
                }
            }
        }
        self.promoter.explanations = plan
            .explanations
            .into_iter()
            .map(|mut e| {
                if self.promoter.state.is_live(&e.key) {
                    e.state = accord_promote::Status::Live;
                    e.reasons.clear();
                } else if self
                    .promoter
                    .state
                    .releases
                    .get(&e.key)
                    .is_some_and(|s| s.recalled.is_some())
                {
                    e.state = accord_promote::Status::Recalled;
                } else if e.state == accord_promote::Status::Live {
                    // Planned but not committed (the database refused): say so, not "live".
                    e.state = accord_promote::Status::Waiting;
                    e.reasons
                        .push("promotion decided but not yet committed; retrying".into());
                }
                (e.key.clone(), e)
            })
            .collect();
        self.metrics.releases_live = self
            .promoter
            .state
            .releases
            .values()
            .filter(|s| s.recalled.is_none())
            .count() as u64;
        self.publish_notes(&cat, &root);
    }

    /// Writes the promotion notes the catalogue does not have yet.
    fn publish_notes(
        &mut self,
        cat: &accord_catalogue::schema::Catalogue,
        root: &accord_trust::TrustedRoot,
    ) {
        let owed = self.promoter.notes_owed(cat, root);
        if owed.is_empty() {
            return;
        }
        let me = self.jurisdiction.clone();
        let result = self
            .replica
            .edit(Timestamp::now().unix(), "promotion notes", |tx| {
                for (key, note) in &owed {
                    accord_catalogue::edit::set_promotion(tx, key, &me, note)?;
                }
                Ok(())
            });
        match result {
            Ok(delta) => self.committed_locally(&delta),
            Err(e) => warn!(error = %e, "could not publish promotion notes"),
        }
    }

    /// Takes the signatures of a release, recall or conditional envelope: each is checked
    /// alone under the current root; the valid new ones go into the catalogue (and replicate),
    /// the others are reported and audited as rejected.
    pub(super) fn import_signatures(&mut self, bytes: &[u8]) -> Result<Imported, String> {
        let env = Envelope::from_json(bytes).map_err(|e| format!("not a signed statement: {e}"))?;
        let root = self.replica.root().clone();
        let (cat, _) = accord_catalogue::schema::read(self.replica.doc());
        let (key, statement, existing) = locate(&cat, &env)?;
        let mut added = Vec::new();
        let mut rejected = Vec::new();
        let mut accepted = Vec::new();
        for s in &env.signatures {
            if existing.iter().any(|e| e == &s.sig) {
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
                    added.push(format!("{role} of {p} (key {})", keyid.short()));
                    accepted.push((keyid.to_string(), s.sig.clone()));
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
        let mut events: Vec<AuditEvent> = rejected
            .iter()
            .filter(|r| !r.ends_with("already recorded"))
            .map(|r| AuditEvent::new(kind::REJECTED, &key, format!("imported signature: {r}")))
            .collect();
        if accepted.is_empty() {
            self.audit(&events);
            return Err(format!(
                "no new valid signature for {key} ({statement}): {}",
                if rejected.is_empty() {
                    "the envelope has no signatures".to_owned()
                } else {
                    rejected.join("; ")
                }
            ));
        }
        let unsigned = Envelope::new(&env.payload_type, env.payload.clone()).to_json();
        let id = hex::encode(env.payload_digest());
        let is_release = statement == "release";
        let delta = self
            .replica
            .edit(
                Timestamp::now().unix(),
                &format!("signatures for {key}"),
                |tx| {
                    if !is_release {
                        accord_catalogue::edit::add_statement(tx, &key, &id, &unsigned)?;
                    }
                    for (keyid, sig) in &accepted {
                        if is_release {
                            accord_catalogue::edit::add_approval(tx, &key, keyid, sig)?;
                        } else {
                            accord_catalogue::edit::add_statement_approval(
                                tx, &key, &id, keyid, sig,
                            )?;
                        }
                    }
                    Ok(())
                },
            )
            .map_err(|e| e.to_string())?;
        // Audited here, with where it came from; the catalogue scan will not repeat them.
        self.promoter
            .prime_after_import(&key, &statement, &id, &accepted);
        events.extend(added.iter().map(|a| {
            AuditEvent::new(
                kind::SIGNATURE,
                &key,
                format!("{statement}: {a}, imported here"),
            )
        }));
        self.audit(&events);
        self.committed_locally(&delta);
        info!(release = %key, %statement, added = added.len(), "signatures recorded");
        Ok(Imported {
            release: key,
            statement,
            added,
            rejected,
        })
    }

    /// Starts the `on_promote` command for a live release (one attempt).
    pub(super) fn run_hook(&mut self, key: &str) {
        let Some(cmd) = self.on_promote.clone() else {
            return;
        };
        let Some(standing) = self.promoter.state.releases.get(key).cloned() else {
            return;
        };
        let artifacts: Vec<String> = self
            .mirror
            .release(key)
            .map(|b| b.artifacts.iter().map(|a| a.name.clone()).collect())
            .unwrap_or_default();
        let env = [
            ("ACCORD_RELEASE", key.to_owned()),
            ("ACCORD_CAPABILITY", standing.capability.clone()),
            ("ACCORD_VERSION", standing.version.to_string()),
            ("ACCORD_JURISDICTION", self.jurisdiction.clone()),
            ("ACCORD_PAYLOAD_SHA256", standing.payload_sha256.clone()),
            ("ACCORD_ARTIFACTS", artifacts.join(" ")),
            ("ACCORD_DATA_DIR", self.data_dir.display().to_string()),
        ];
        let internal = self.internal.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            let run = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .envs(env)
                .stdin(std::process::Stdio::null())
                .output();
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
            let _ = internal.send(Internal::HookDone { key, result }).await;
        });
    }

    /// Records a hook attempt; a failure is retried later and never un-promotes.
    pub(super) fn hook_done(&mut self, key: String, result: Result<(), String>) {
        if !self.promoter.state.hooks_owed.contains_key(&key) {
            return;
        }
        let mut next = self.promoter.state.clone();
        let event = match &result {
            Ok(()) => {
                next.hooks_owed.remove(&key);
                info!(release = %key, "on_promote hook succeeded");
                AuditEvent::new(kind::HOOK, &key, "on_promote succeeded")
            }
            Err(e) => {
                let n = next.hooks_owed.entry(key.clone()).or_insert(0);
                *n += 1;
                self.metrics.hook_failures += 1;
                warn!(release = %key, attempt = *n, error = %e, "on_promote hook failed; will retry (the release stays promoted)");
                AuditEvent::new(
                    kind::HOOK,
                    &key,
                    format!("on_promote failed (attempt {n}): {e}"),
                )
            }
        };
        if let Err(e) = self.db.commit_promotion(
            &next.to_json(),
            &self.promoter.signer,
            Timestamp::now(),
            &[event],
        ) {
            warn!(error = %e, "could not record the hook's result");
        }
        let attempts = next.hooks_owed.get(&key).copied();
        self.promoter.state = next;
        if let Some(n) = attempts {
            let internal = self.internal.clone();
            tokio::spawn(async move {
                tokio::time::sleep(hook_backoff(n)).await;
                let _ = internal.send(Internal::RetryHook { key }).await;
            });
        }
    }

    /// Hooks still owed from before a restart.
    pub(super) fn resume_hooks(&mut self) {
        let owed: Vec<String> = self
            .promoter
            .state
            .hooks_owed
            .keys()
            .filter(|k| self.promoter.state.is_live(k))
            .cloned()
            .collect();
        for k in owed {
            self.run_hook(&k);
        }
    }
}

/// The first characters of a key id for messages; the id came from outside, so it is cut on
/// character boundaries, never bytes.
fn short(keyid: &str) -> String {
    keyid.chars().take(8).collect()
}

/// Which catalogue entry an envelope's signatures belong to: the release whose payload it
/// is, or the release a recall/conditional names (by key and payload digest).
fn locate(
    cat: &accord_catalogue::schema::Catalogue,
    env: &Envelope,
) -> Result<(String, String, Vec<Vec<u8>>), String> {
    for e in &cat.releases {
        if let Ok(r) = e.signed_envelope()
            && r.payload == env.payload
            && r.payload_type == env.payload_type
        {
            let existing = r.signatures.into_iter().map(|s| s.sig).collect();
            return Ok((e.key.clone(), "release".into(), existing));
        }
    }
    let kind =
        Statement::from_envelope(env).map_err(|e| format!("not an Accord statement: {e}"))?;
    let (digest, release, what) = match kind {
        StatementKind::Release { predicate, .. } => {
            return Err(format!(
                "release {}@{} is not in this node's catalogue (propose it first, or wait for it to sync)",
                predicate.capability, predicate.version
            ));
        }
        StatementKind::Recall {
            release_payload_sha256,
            predicate,
        } => (release_payload_sha256, predicate.release, "recall"),
        StatementKind::Conditional {
            release_payload_sha256,
            predicate,
        } => (release_payload_sha256, predicate.release, "conditional"),
    };
    let key = crate::artifacts::release_key(&release.capability, &release.version);
    let entry =
        cat.releases.iter().find(|e| e.key == key).ok_or_else(|| {
            format!("the {what} names {key}, which is not in this node's catalogue")
        })?;
    let target = Envelope::from_json(&entry.envelope).map_err(|e| e.to_string())?;
    if hex::encode(target.payload_digest()) != digest {
        return Err(format!(
            "the {what} names {key} but a different statement of it (payload digest differs)"
        ));
    }
    let id = hex::encode(env.payload_digest());
    let existing = entry
        .statements
        .get(&id)
        .and_then(|s| s.signed_envelope().ok())
        .map(|s| s.signatures.into_iter().map(|s| s.sig).collect())
        .unwrap_or_default();
    Ok((key, what.into(), existing))
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_ids_from_a_request_are_cut_on_characters() {
        assert_eq!(super::short("ééééééééé"), "éééééééé");
        assert_eq!(super::short("ab"), "ab");
    }
}
