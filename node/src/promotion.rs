//! The node's side of promotion: it turns the catalogue and the mirror into the engine's
//! inputs, audits every signature that arrives (counted or rejected, and why), writes the
//! node's signed promotion notes, and explains per jurisdiction where a release stands.
//! The decisions themselves are `accord_promote::plan`'s.

use std::collections::{BTreeMap, HashSet};

use accord_catalogue::schema::{Catalogue, ReleaseEntry};
use accord_promote::{Candidate, Explanation, Mirror, Note, NoteState, State, Status};
use accord_protocol::{Envelope, PrincipalId, Requirement, Timestamp};
use accord_store::AuditEvent;
use accord_store::audit::kind;
use accord_trust::{PolicyInput, SecretKey, Tally, TrustedRoot, evaluate};
use serde::{Deserialize, Serialize};

use crate::artifacts::ReleaseView;

/// One requirement of the rule and who has signed for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequirementView {
    pub requirement: String,
    /// cooperative, conditional or local
    pub source: String,
    pub met: bool,
    pub signed: Vec<String>,
    pub missing: Vec<String>,
}

/// Where a release stands in one jurisdiction, as this node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JurisdictionView {
    pub jurisdiction: String,
    /// live, recalled, waiting or superseded
    pub state: String,
    pub signatures: Vec<RequirementView>,
    /// Percent of the release's bytes held there, verified.
    pub mirrored_percent: u64,
    /// Why it is not live there yet; empty when live.
    pub reasons: Vec<String>,
    /// When it went live or was recalled there (from its signed note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

#[derive(Debug)]
pub struct Promoter {
    pub state: State,
    pub jurisdiction: PrincipalId,
    pub local_rules: Vec<Requirement>,
    pub signer: SecretKey,
    /// Signatures already audited, as "release|statement|signature-hex".
    seen: HashSet<String>,
    pub explanations: BTreeMap<String, Explanation>,
}

impl Promoter {
    pub fn new(
        state: State,
        jurisdiction: PrincipalId,
        local_rules: Vec<Requirement>,
        signer: SecretKey,
    ) -> Self {
        Promoter {
            state,
            jurisdiction,
            local_rules,
            signer,
            seen: HashSet::new(),
            explanations: BTreeMap::new(),
        }
    }

    /// Marks what the catalogue already holds as audited (it was, when it arrived).
    pub fn prime(&mut self, cat: &Catalogue) {
        for (id, _) in signatures(cat) {
            self.seen.insert(id);
        }
    }

    /// Marks signatures this node took in through its API as audited (they were, there).
    pub fn prime_after_import(
        &mut self,
        key: &str,
        statement: &str,
        id: &str,
        accepted: &[(String, Vec<u8>)],
    ) {
        let subject = subject_of(key, (statement != "release").then_some(id));
        for (_, sig) in accepted {
            self.seen.insert(format!("{subject}|{}", hex::encode(sig)));
        }
    }

    /// Audits each signature that arrived since the last call: which principal and role it
    /// counts for under `root`, or why it does not count.
    pub fn new_signatures(&mut self, cat: &Catalogue, root: &TrustedRoot) -> Vec<AuditEvent> {
        let mut events = Vec::new();
        for (id, (subject, env)) in signatures(cat) {
            if !self.seen.insert(id) {
                continue;
            }
            let check = Tally::of(&env, root).checks.into_iter().next();
            let event = match check {
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
        events
    }

    /// The engine's inputs: every readable release with its signatures, statements and
    /// whether this node holds all of its artifacts.
    pub fn candidates(&self, cat: &Catalogue, views: &[ReleaseView]) -> Vec<Candidate> {
        candidates(cat, views, self.jurisdiction.as_str())
    }

    /// Notes this node owes the catalogue: its standing for each release it promoted,
    /// where the catalogue does not say so yet (also repairs a crash between the state's
    /// commit and the note's).
    pub fn notes_owed(&self, cat: &Catalogue, root: &TrustedRoot) -> Vec<(String, Vec<u8>)> {
        let me = self.jurisdiction.as_str();
        let mut out = Vec::new();
        for (key, standing) in &self.state.releases {
            let want = if standing.recalled.is_some() {
                NoteState::Recalled
            } else {
                NoteState::Live
            };
            let current = cat
                .releases
                .iter()
                .find(|e| &e.key == key)
                .and_then(|e| e.promotions.get(me))
                .and_then(|b| Note::verify(b, key, me, root).ok());
            if current.is_some_and(|n| n.state == want) {
                continue;
            }
            let note = Note {
                release: key.clone(),
                payload_sha256: standing.payload_sha256.clone(),
                jurisdiction: self.jurisdiction.clone(),
                state: want,
                at: standing
                    .recalled
                    .as_ref()
                    .map(|r| r.at)
                    .unwrap_or(standing.promoted_at),
                root_version: root.version(),
            };
            out.push((key.clone(), note.sign(&self.signer)));
        }
        out
    }

    /// Per jurisdiction, where a release stands (see [`explain`]).
    pub fn explain(
        &self,
        entry: &ReleaseEntry,
        view: &ReleaseView,
        root: &TrustedRoot,
    ) -> Vec<JurisdictionView> {
        explain(
            entry,
            view,
            root,
            &self.jurisdiction,
            self.explanations.get(&entry.key),
        )
    }
}

/// Per jurisdiction: signatures by requirement, mirror progress, state and reasons.
/// `me`'s own line is the engine's explanation (`mine`); the others' come from their signed
/// notes, their mirror announcements and the cooperative rule (their local rules are
/// theirs and not visible here).
pub fn explain(
    entry: &ReleaseEntry,
    view: &ReleaseView,
    root: &TrustedRoot,
    me: &PrincipalId,
    mine: Option<&Explanation>,
) -> Vec<JurisdictionView> {
    let Ok(envelope) = entry.signed_envelope() else {
        return Vec::new();
    };
    let statements = statements(entry);
    let mut out = Vec::new();
    for j in root.body().principals.keys() {
        let own = j == me;
        let mirrored_percent = percent_held(view, j.as_str());
        let note = entry
            .promotions
            .get(j.as_str())
            .and_then(|b| Note::verify(b, &entry.key, j.as_str(), root).ok());
        let (decision, state, mut reasons) = match (own, mine) {
            (true, Some(e)) => (e.decision.clone(), status_name(e.state), e.reasons.clone()),
            _ => {
                let d = evaluate(&PolicyInput {
                    root,
                    local_rules: &[],
                    jurisdiction: Some(j),
                    release: &envelope,
                    recalls: &statements,
                    conditionals: &statements,
                    production_version: None,
                    now: Timestamp::now(),
                });
                let mut reasons: Vec<String> = d.blockers.iter().map(ToString::to_string).collect();
                reasons.extend(view.missing_on(j.as_str()));
                (d, "waiting", reasons)
            }
        };
        let (state, since) = match &note {
            Some(n) if n.state == NoteState::Live => ("live", Some(n.at.to_string())),
            Some(n) => ("recalled", Some(n.at.to_string())),
            None => (state, None),
        };
        if state == "live" {
            reasons.clear();
        } else if state == "waiting" && reasons.is_empty() && !own {
            reasons.push(format!("{j} has not published a promotion note yet"));
        }
        out.push(JurisdictionView {
            jurisdiction: j.to_string(),
            state: state.to_owned(),
            signatures: decision
                .requirements
                .iter()
                .map(|r| RequirementView {
                    requirement: r.requirement.clone(),
                    source: r.source.clone(),
                    met: r.met,
                    signed: r.satisfied.iter().map(ToString::to_string).collect(),
                    missing: r.missing.iter().map(|(p, _, _)| p.to_string()).collect(),
                })
                .collect(),
            mirrored_percent,
            reasons,
            since,
        });
    }
    out
}

/// The engine's inputs as jurisdiction `me` sees them (the daemon and the offline CLI).
pub fn candidates(cat: &Catalogue, views: &[ReleaseView], me: &str) -> Vec<Candidate> {
    cat.releases
        .iter()
        .filter_map(|e| {
            let envelope = e.signed_envelope().ok()?;
            let view = views.iter().find(|v| v.key == e.key)?;
            let missing = view.missing_on(me);
            Some(Candidate {
                key: e.key.clone(),
                envelope,
                statements: statements(e),
                mirror: if missing.is_empty() {
                    Mirror::Complete
                } else {
                    Mirror::Incomplete { missing }
                },
            })
        })
        .collect()
}

/// Releases withdrawn by a recall that meets the recall rule under `root`: retired, so
/// nodes stop mirroring them and `accord gc` may collect their blobs.
pub fn retired(cat: &Catalogue, root: &TrustedRoot) -> std::collections::BTreeSet<String> {
    cat.releases
        .iter()
        .filter(|e| !e.statements.is_empty())
        .filter_map(|e| {
            let envelope = e.signed_envelope().ok()?;
            let statements = statements(e);
            let d = evaluate(&PolicyInput {
                root,
                local_rules: &[],
                jurisdiction: None,
                release: &envelope,
                recalls: &statements,
                conditionals: &[],
                production_version: None,
                now: Timestamp::now(),
            });
            d.blockers
                .iter()
                .any(|b| matches!(b, accord_trust::Blocker::Recalled { .. }))
                .then(|| e.key.clone())
        })
        .collect()
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Live => "live",
        Status::Recalled => "recalled",
        Status::Waiting => "waiting",
        Status::Superseded => "superseded",
    }
}

fn percent_held(view: &ReleaseView, j: &str) -> u64 {
    let total: u64 = view.artifacts.iter().map(|a| a.size).sum();
    let held: u64 = view
        .artifacts
        .iter()
        .map(|a| a.held.get(j).copied().unwrap_or(0).min(a.size))
        .sum();
    crate::artifacts::percent(held, total)
}

/// The recall and conditional statements about a release, with their signatures; an
/// unreadable one is skipped (the policy would ignore it anyway).
fn statements(e: &ReleaseEntry) -> Vec<Envelope> {
    e.statements
        .values()
        .filter_map(|s| s.signed_envelope().ok())
        .collect()
}

/// Every signature in the catalogue, each as a one-signature envelope so it can be
/// checked alone, keyed by where it sits and its bytes.
fn signatures(cat: &Catalogue) -> Vec<(String, (String, Envelope))> {
    let mut out = Vec::new();
    let mut add = |subject: String, env: Envelope| {
        for s in &env.signatures {
            let mut one = env.clone();
            one.signatures = vec![s.clone()];
            out.push((
                format!("{subject}|{}", hex::encode(&s.sig)),
                (subject.clone(), one),
            ));
        }
    };
    for e in &cat.releases {
        if let Ok(env) = e.signed_envelope() {
            add(subject_of(&e.key, None), env);
        }
        for (id, s) in &e.statements {
            if let Ok(env) = s.signed_envelope() {
                add(subject_of(&e.key, Some(id)), env);
            }
        }
    }
    out
}

/// How the audit log names a release or a statement about it.
fn subject_of(key: &str, statement: Option<&str>) -> String {
    match statement {
        None => key.to_owned(),
        // The id is a map key another node wrote: cut on characters, never bytes.
        Some(id) => format!(
            "{key} statement {}",
            id.chars().take(12).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::subject_of;

    #[test]
    fn ids_written_by_other_nodes_are_cut_on_characters() {
        // 2-byte characters: a byte cut at 12 would split one and panic.
        let id = "é".repeat(20);
        assert_eq!(
            subject_of("CAP-B01@1.4.0", Some(&id)),
            format!("CAP-B01@1.4.0 statement {}", "é".repeat(12))
        );
        assert_eq!(subject_of("CAP-B01@1.4.0", None), "CAP-B01@1.4.0");
    }
}
