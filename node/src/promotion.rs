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
