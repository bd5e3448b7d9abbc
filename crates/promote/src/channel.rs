//! What a node serves for a release selector. The staging channel serves a statement's
//! artifacts as the catalogue holds them; the production channel serves exactly the
//! artifacts this node pinned when it promoted that statement, whatever the catalogue says
//! now (ADR 0005 §1). The running node's API and the offline `accord fetch` call these.

use accord_catalogue::schema::{Catalogue, Release};
use accord_mirror::wants::ReleaseBlobs;
use accord_protocol::{ReleaseId, Selector};
use accord_trust::RootChain;

use crate::{Standing, State};

/// The blobs `selector` names on a channel of node `me`.
pub fn channel_blobs(
    cat: &Catalogue,
    chain: &RootChain,
    state: &State,
    selector: &str,
    production: bool,
    me: &str,
) -> Result<ReleaseBlobs, String> {
    let sel: Selector = selector.parse().map_err(|e| format!("{e}"))?;
    if !production {
        return Ok(blobs_of(select(cat, &sel, chain)?));
    }
    let live: Vec<(&ReleaseId, &Standing)> = state
        .releases
        .iter()
        .filter(|(id, s)| s.recalled.is_none() && sel.matches(id, &s.capability, &s.version))
        .collect();
    match live.as_slice() {
        [(id, standing)] => Ok(ReleaseBlobs {
            id: **id,
            label: format!("{}#{}", standing.key(), id.short()),
            artifacts: standing.artifacts(),
        }),
        [] => Err(format!(
            "{sel} is not promoted on {me} (the production channel serves promoted releases only)"
        )),
        _ => Err(format!(
            "{sel} names more than one release live on {me}; name one by its id"
        )),
    }
}

/// The blobs of every release statement in the catalogue.
pub fn releases(cat: &Catalogue) -> Vec<ReleaseBlobs> {
    cat.releases.iter().map(blobs_of).collect()
}

pub fn blobs_of(r: &Release) -> ReleaseBlobs {
    ReleaseBlobs {
        id: r.id,
        label: r.label(),
        artifacts: r.artifacts.clone(),
    }
}

/// The one release a selector names, or why not: unknown, or ambiguous (two statements
/// claim the `CAP@VER`; the error lists them so the user can add `#IDPREFIX`).
pub fn select<'c>(
    cat: &'c Catalogue,
    sel: &Selector,
    chain: &RootChain,
) -> Result<&'c Release, String> {
    let found = cat.select(sel);
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("no release {sel} in the catalogue")),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|r| {
                    format!(
                        "{} (proposed by {})",
                        r.label(),
                        crate::inputs::proposers(r, chain).join(", ")
                    )
                })
                .collect();
            Err(format!(
                "{sel} names {} conflicting statements: {}; name one as CAP@VER#IDPREFIX",
                many.len(),
                list.join("; ")
            ))
        }
    }
}
