//! Where a release stands in each jurisdiction, as `release status` and the API show it:
//! the lines are `accord_promote::status`'s, fed with what the mirror's view says each
//! jurisdiction holds; and what this node's own store holds, for the core.

use std::collections::BTreeMap;

use accord_catalogue::schema::Release;
use accord_promote::{Explanation, Mirror};
use accord_protocol::{PrincipalId, ReleaseId, Timestamp};
use accord_trust::RootChain;

use crate::artifacts::ReleaseView;

pub use accord_promote::status::JurisdictionView;

/// Per jurisdiction: signatures by requirement, mirror progress, state and reasons
/// (`accord_promote::status::explain`), with what the mirror's view says each holds.
pub fn explain(
    release: &Release,
    view: &ReleaseView,
    chain: &RootChain,
    me: &PrincipalId,
    mine: Option<&Explanation>,
    now: Timestamp,
) -> Vec<JurisdictionView> {
    let held = |j: &str| accord_promote::status::Held {
        percent: percent_held(view, j),
        missing: view.missing_on(j),
    };
    accord_promote::status::explain(release, &held, chain, me, mine, now)
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

/// What this node's own store holds of each release, verified, as the engine needs it
/// (`accord_promote::inputs::held_here`), from the views' entries for this jurisdiction.
pub fn held_here(
    cat: &accord_catalogue::Catalogue,
    views: &[ReleaseView],
    me: &str,
) -> BTreeMap<ReleaseId, Mirror> {
    let mut have = std::collections::HashMap::new();
    let mut held_back = BTreeMap::new();
    for v in views {
        for a in &v.artifacts {
            if let Some(h) = a.blake3_bytes() {
                have.insert(h, a.held.get(me).copied().unwrap_or(0));
            }
        }
        if let Some(why) = &v.not_mirrored {
            held_back.insert(v.id, why.clone());
        }
    }
    let verdicts: BTreeMap<ReleaseId, _> = views
        .iter()
        .filter_map(|v| v.provenance.as_ref().map(|p| (v.id, p)))
        .collect();
    accord_promote::inputs::held_here(
        cat,
        |h| have.get(h).copied().unwrap_or(0),
        |id| held_back.get(id).cloned(),
        // A running node's views carry its verdicts; offline there is none to gate on.
        |r| {
            verdicts
                .get(&r.id)
                .and_then(|v| accord_promote::provenance::line(Some(v)))
        },
    )
}
