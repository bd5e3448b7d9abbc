//! Where a release stands in each jurisdiction, as `release status` and the API show it:
//! this node's own line is its engine's explanation (from the core), the others' come
//! from their signed promotion notes, their mirror announcements and the cooperative rule.
//! The decisions themselves are the core's and `accord_promote`'s.

use std::collections::BTreeMap;

use accord_catalogue::schema::Release;
use accord_promote::inputs::{latest_notes, statements};
use accord_promote::{Explanation, Mirror, NoteState};
use accord_protocol::{PrincipalId, ReleaseId, Timestamp};
use accord_trust::{PolicyInput, RootChain, evaluate};
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
    now: Timestamp,
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
            (true, Some(e)) => (
                e.decision.clone(),
                e.state.as_str(),
                e.reasons.iter().map(ToString::to_string).collect(),
            ),
            _ => {
                let d = evaluate(&PolicyInput {
                    root,
                    local_rules: &[],
                    jurisdiction: Some(j),
                    release: &envelope,
                    recalls: &statements,
                    conditionals: &statements,
                    production_version: None,
                    now,
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

/// What this node's own store holds of each release, verified, as the engine needs it:
/// complete, or one line per artifact still missing (and why it is not mirrored here).
pub fn held_here(views: &[ReleaseView], me: &str) -> BTreeMap<ReleaseId, Mirror> {
    views
        .iter()
        .map(|view| {
            let mut missing = view.missing_on(me);
            if let Some(why) = &view.not_mirrored
                && !missing.is_empty()
            {
                missing.insert(0, format!("not mirrored here: {why}"));
            }
            let mirror = if missing.is_empty() {
                Mirror::Complete
            } else {
                Mirror::Incomplete { missing }
            };
            (view.id, mirror)
        })
        .collect()
}
