//! Where a release stands in each jurisdiction, as `release status` and the API show it.
//! This node's own line is its engine's explanation; another jurisdiction's line comes from
//! that jurisdiction's signed promotion note, its mirror announcements and the cooperative
//! rule (its local rules are its own and not visible here). A note from another node of
//! this node's own jurisdiction says what that node did, never what this one holds
//! (ADR 0005 §5). The running node and the offline CLI render the same lines.

use accord_catalogue::schema::Release;
use accord_protocol::{PrincipalId, Timestamp};
use accord_trust::{PolicyInput, RootChain, evaluate};
use serde::{Deserialize, Serialize};

use crate::inputs::{latest_notes, statements};
use crate::{Explanation, NoteState};

/// What a jurisdiction holds of a release, as the mirror's announcements say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Percent of the release's bytes held there, verified.
    pub percent: u64,
    /// One line per artifact not fully held there.
    pub missing: Vec<String>,
}

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
    held: &dyn Fn(&str) -> Held,
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
        let Held {
            percent: mirrored_percent,
            missing,
        } = held(j.as_str());
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
                reasons.extend(missing);
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
