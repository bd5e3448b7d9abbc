//! The node's side of promotion: it turns the catalogue and the mirror into the engine's
//! inputs, audits every signature and every equivocation that arrives, writes the node's
//! signed promotion notes, and explains per jurisdiction where a release stands. The
//! decisions themselves are `accord_promote::plan`'s.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use accord_catalogue::Approval;
use accord_catalogue::records::entry_key;
use accord_catalogue::schema::{Authored, Catalogue, Release};
use accord_promote::{Candidate, Explanation, Mirror, Note, NoteState, State};
use accord_protocol::dsse::PAYLOAD_TYPE_IN_TOTO;
use accord_protocol::{
    Envelope, EnvelopeSignature, PrincipalId, ReleaseId, Requirement, Timestamp,
};
use accord_store::AuditEvent;
use accord_store::audit::kind;
use accord_trust::{PolicyInput, RootChain, SecretKey, Tally, TrustedRoot, evaluate};
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
    /// live, recalled, waiting, superseded or conflict
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
    /// Approval records already audited (their catalogue keys).
    seen: HashSet<String>,
    /// `CAP@VER` conflicts already audited, with the statements seen then.
    seen_conflicts: HashSet<String>,
    pub explanations: BTreeMap<ReleaseId, Explanation>,
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
            seen_conflicts: HashSet::new(),
            explanations: BTreeMap::new(),
        }
    }

    /// Marks what the catalogue already holds as audited (it was, when it arrived).
    pub fn prime(&mut self, cat: &Catalogue, chain: &RootChain) {
        for (id, _) in approvals(cat) {
            self.seen.insert(id);
        }
        for (id, _) in equivocations(cat, chain) {
            self.seen_conflicts.insert(id);
        }
    }

    /// Marks approvals this node took in through its API as audited (they were, there).
    pub fn prime_records(&mut self, records: &[Vec<u8>]) {
        for r in records {
            self.seen.insert(entry_key(r));
        }
    }

    /// Audits each approval that arrived since the last call (which principal and role it
    /// counts for under `root`, or why it does not), and each new conflict between
    /// statements of one `CAP@VER`.
    pub fn new_events(&mut self, cat: &Catalogue, chain: &RootChain) -> Vec<AuditEvent> {
        let root = chain.current();
        let mut events = Vec::new();
        for (id, (subject, env)) in approvals(cat) {
            if !self.seen.insert(id) {
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
            if self.seen_conflicts.insert(id) {
                events.push(event);
            }
        }
        events
    }

    /// The engine's inputs: every release statement with its signatures, statements and
    /// whether this node's own store holds all of its artifacts.
    pub fn candidates(&self, cat: &Catalogue, views: &[ReleaseView]) -> Vec<Candidate> {
        candidates(cat, views, self.jurisdiction.as_str())
    }

    /// Notes this node owes the catalogue: its standing for each release it promoted, where
    /// the catalogue's newest note from this jurisdiction does not say so yet (also repairs a
    /// crash between the state's commit and the note's).
    pub fn notes_owed(&self, cat: &Catalogue, chain: &RootChain) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (id, standing) in &self.state.releases {
            let want = if standing.recalled.is_some() {
                NoteState::Recalled
            } else {
                NoteState::Live
            };
            let Some(release) = cat.release(id) else {
                continue;
            };
            let current = latest_notes(release, chain).remove(&self.jurisdiction);
            if current.is_some_and(|n| n.state == want) {
                continue;
            }
            let note = Note {
                release: *id,
                jurisdiction: self.jurisdiction.clone(),
                state: want,
                at: standing
                    .recalled
                    .as_ref()
                    .map(|r| r.at)
                    .unwrap_or(standing.promoted_at),
                root_version: chain.current().version(),
            };
            out.push(accord_promote::note::sign(&note, &self.signer));
        }
        out
    }

    /// Per jurisdiction, where a release stands (see [`explain`]).
    pub fn explain(
        &self,
        release: &Release,
        view: &ReleaseView,
        chain: &RootChain,
    ) -> Vec<JurisdictionView> {
        explain(
            release,
            view,
            chain,
            &self.jurisdiction,
            self.explanations.get(&release.id),
        )
    }
}

/// The newest valid promotion note per jurisdiction for a release.
pub fn latest_notes(release: &Release, chain: &RootChain) -> BTreeMap<PrincipalId, Note> {
    accord_promote::note::latest(
        &release.id,
        release.notes.iter().map(|n| n.value.as_slice()),
        chain,
    )
}

/// Per jurisdiction: signatures by requirement, mirror progress, state and reasons.
/// `me`'s own line is the engine's explanation (`mine`); the others' come from their signed
/// notes, their mirror announcements and the cooperative rule (their local rules are
/// theirs and not visible here).
pub fn explain(
    release: &Release,
    view: &ReleaseView,
    chain: &RootChain,
    me: &PrincipalId,
    mine: Option<&Explanation>,
) -> Vec<JurisdictionView> {
    let root = chain.current();
    let envelope = release.signed_envelope();
    let statements = statements(release);
    let notes = latest_notes(release, chain);
    let mut out = Vec::new();
    for j in root.body().principals.keys() {
        let own = j == me;
        let mirrored_percent = percent_held(view, j.as_str());
        let (decision, state, mut reasons) = match (own, mine) {
            (true, Some(e)) => (e.decision.clone(), e.state.as_str(), e.reasons.clone()),
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
        // Another jurisdiction's line comes from its signed note. This node's own line is
        // its own decision: a note from another node of the same jurisdiction says what
        // that node did, never what this one holds (ADR 0005 §5).
        let (state, since) = match notes.get(j) {
            Some(n) if own => (state, Some(n.at.to_string()).filter(|_| state != "waiting")),
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
/// `views` say what each node holds; `me`'s entry in them is this node's own store only.
pub fn candidates(cat: &Catalogue, views: &[ReleaseView], me: &str) -> Vec<Candidate> {
    cat.releases
        .iter()
        .filter_map(|r| {
            let view = views.iter().find(|v| v.id == r.id)?;
            let mut missing = view.missing_on(me);
            if let Some(why) = &view.not_mirrored
                && !missing.is_empty()
            {
                missing.insert(0, format!("not mirrored here: {why}"));
            }
            Some(Candidate {
                id: r.id,
                capability: r.capability.clone(),
                version: r.version.clone(),
                artifacts: r.artifacts.clone(),
                envelope: r.signed_envelope(),
                statements: statements(r),
                mirror: if missing.is_empty() {
                    Mirror::Complete
                } else {
                    Mirror::Incomplete { missing }
                },
            })
        })
        .collect()
}

/// Release statements withdrawn by a recall that meets the recall rule under `root`:
/// retired, so nodes stop mirroring them and `accord gc` may collect their blobs.
pub fn retired(cat: &Catalogue, root: &TrustedRoot) -> BTreeSet<ReleaseId> {
    cat.releases
        .iter()
        .filter(|r| r.about.iter().any(|a| a.kind == "recall"))
        .filter(|r| {
            let statements = statements(r);
            let d = evaluate(&PolicyInput {
                root,
                local_rules: &[],
                jurisdiction: None,
                release: &r.signed_envelope(),
                recalls: &statements,
                conditionals: &[],
                production_version: None,
                now: Timestamp::now(),
            });
            d.blockers
                .iter()
                .any(|b| matches!(b, accord_trust::Blocker::Recalled { .. }))
        })
        .map(|r| r.id)
        .collect()
}

fn percent_held(view: &ReleaseView, j: &str) -> u64 {
    let total: u64 = view
        .artifacts
        .iter()
        .fold(0u64, |t, a| t.saturating_add(a.size));
    let held: u64 = view.artifacts.iter().fold(0u64, |t, a| {
        t.saturating_add(a.held.get(j).copied().unwrap_or(0).min(a.size))
    });
    crate::artifacts::percent(held, total)
}

/// The recall and conditional statements about a release, with their signatures.
fn statements(r: &Release) -> Vec<Envelope> {
    r.about.iter().map(|a| a.signed_envelope()).collect()
}

/// Every approval in the catalogue as a one-signature envelope over its statement, keyed
/// by its record's catalogue key, with the subject the audit log names.
fn approvals(cat: &Catalogue) -> Vec<(String, (String, Envelope))> {
    let mut out = Vec::new();
    let mut add = |subject: String, payload: &[u8], list: &[Authored<Approval>]| {
        for a in list {
            let mut env = Envelope::new(PAYLOAD_TYPE_IN_TOTO, payload.to_vec());
            env.signatures.push(EnvelopeSignature {
                keyid: a.value.keyid.to_string(),
                sig: a.value.sig.to_vec(),
            });
            out.push((entry_key(&a.value.to_bytes()), (subject.clone(), env)));
        }
    };
    for r in &cat.releases {
        add(r.label(), &r.payload, &r.approvals);
        for s in &r.about {
            add(
                format!("{} {} {}", r.label(), s.kind, s.id.short()),
                &s.payload,
                &s.approvals,
            );
        }
    }
    out
}

/// Every `CAP@VER` claimed by more than one statement, as an audit event keyed by the set
/// of statements (a third statement is a new event).
fn equivocations(cat: &Catalogue, chain: &RootChain) -> Vec<(String, AuditEvent)> {
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
                        crate::artifacts::proposers(r, chain).join(", ")
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

/// Which releases this node mirrors, and why not the others (issue 12): a node mirrors what
/// it serves, what the cooperative approved and what its own jurisdiction proposed; other
/// proposals (staging) only up to a quota per proposing jurisdiction; never what a valid
/// recall withdrew or what production here has moved past.
#[derive(Debug, Clone, Default)]
pub struct MirrorPlan {
    pub wanted: BTreeSet<ReleaseId>,
    /// Release -> why it is not mirrored here.
    pub held_back: BTreeMap<ReleaseId, String>,
    /// Proposing jurisdiction -> bytes of its unapproved releases mirrored here.
    pub staged: BTreeMap<String, u64>,
}

pub fn mirror_plan(
    cat: &Catalogue,
    chain: &RootChain,
    state: &State,
    me: &str,
    quota: u64,
) -> MirrorPlan {
    let root = chain.current();
    let retired = retired(cat, root);
    let mut plan = MirrorPlan::default();
    let mut staging: Vec<(&Release, String, u64)> = Vec::new();
    for r in &cat.releases {
        let size = r
            .artifacts
            .iter()
            .fold(0u64, |t, a| t.saturating_add(a.size));
        if state.is_live(&r.id) {
            plan.wanted.insert(r.id);
            continue;
        }
        if retired.contains(&r.id) {
            plan.held_back.insert(r.id, "recalled".into());
            continue;
        }
        if let Some(hw) = state.high_water.get(&r.capability)
            && *hw >= r.version
        {
            plan.held_back.insert(
                r.id,
                format!("superseded: production here is at {} {hw}", r.capability),
            );
            continue;
        }
        let proposers: Vec<String> = r
            .authors
            .iter()
            .filter_map(|a| accord_catalogue::signing::author_of(chain, a))
            .map(|s| s.principal().to_string())
            .collect();
        if proposers.iter().any(|p| p == me) {
            plan.wanted.insert(r.id);
            continue;
        }
        let statements = statements(r);
        let approved = evaluate(&PolicyInput {
            root,
            local_rules: &[],
            jurisdiction: None,
            release: &r.signed_envelope(),
            recalls: &statements,
            conditionals: &statements,
            production_version: None,
            now: Timestamp::now(),
        })
        .promotable;
        if approved {
            plan.wanted.insert(r.id);
        } else {
            let proposer = proposers
                .into_iter()
                .next()
                .unwrap_or_else(|| "unknown".into());
            staging.push((r, proposer, size));
        }
    }
    // Newest versions first within a capability, then by id: the same order everywhere.
    staging.sort_by(|(a, _, _), (b, _, _)| {
        (&a.capability, &b.version, &a.id).cmp(&(&b.capability, &a.version, &b.id))
    });
    for (r, proposer, size) in staging {
        let used = plan.staged.entry(proposer.clone()).or_insert(0);
        match used.checked_add(size).filter(|t| *t <= quota) {
            Some(t) => {
                *used = t;
                plan.wanted.insert(r.id);
            }
            None => {
                plan.held_back.insert(
                    r.id,
                    format!(
                        "not approved yet, and {proposer}'s staging quota here ({} of {} MiB used) is full; mirrored once the leads sign",
                        *used >> 20,
                        quota >> 20
                    ),
                );
            }
        }
    }
    plan
}
