//! Deterministic genesis: every node builds the same first change from the seed catalogue
//! and the cooperative's first root, with a fixed actor and time, so independently
//! initialised nodes share one root change and their maps never shadow each other
//! (two nodes that each created `capabilities` themselves would hold two conflicting maps).

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT};

use crate::error::CatalogueError;
use crate::records::History;
use crate::schema::SCHEMA;
use crate::seed::Seed;

/// The genesis actor: not a key. Changes by this actor are accepted only when their hash is
/// one this node computed itself.
pub const GENESIS_ACTOR: &[u8] = b"accord-genesis-v2";
/// 2026-01-01T00:00:00Z, fixed so the change bytes do not depend on when a node started.
pub const GENESIS_TIME: i64 = 1_767_225_600;

/// The genesis document and the hash of its one change.
pub fn build(
    seed: &Seed,
    anchor_root_payload_sha256: &str,
) -> Result<(Automerge, ChangeHash), CatalogueError> {
    let mut doc = Automerge::new().with_actor(ActorId::from(GENESIS_ACTOR));
    let result = doc
        .transact_with::<_, _, automerge::AutomergeError, _>(
            |_| {
                CommitOptions::default()
                    .with_message("genesis")
                    .with_time(GENESIS_TIME)
            },
            |tx| {
                tx.put(ROOT, "schema", SCHEMA)?;
                tx.put(ROOT, "anchor", anchor_root_payload_sha256)?;
                let js = tx.put_object(ROOT, "jurisdictions", ObjType::Map)?;
                let mut jurisdictions = seed.jurisdictions.clone();
                jurisdictions.sort_by(|a, b| a.id.cmp(&b.id));
                for j in &jurisdictions {
                    let o = tx.put_object(&js, j.id.as_str(), ObjType::Map)?;
                    tx.put(&o, "name", j.name.as_str())?;
                }
                let ds = tx.put_object(ROOT, "domains", ObjType::Map)?;
                let mut domains = seed.domains.clone();
                domains.sort_by(|a, b| a.id.cmp(&b.id));
                for d in &domains {
                    let o = tx.put_object(&ds, d.id.as_str(), ObjType::Map)?;
                    tx.put(&o, "name", d.name.as_str())?;
                }
                let ws = tx.put_object(ROOT, "working_groups", ObjType::Map)?;
                let mut groups = seed.working_groups.clone();
                groups.sort_by(|a, b| a.id.cmp(&b.id));
                for w in &groups {
                    let o = tx.put_object(&ws, w.id.as_str(), ObjType::Map)?;
                    tx.put(&o, "name", w.name.as_str())?;
                    tx.put(&o, "lead_jurisdiction", w.lead_jurisdiction.as_str())?;
                    let l = tx.put_object(&o, "domains", ObjType::List)?;
                    for (i, d) in w.domains.iter().enumerate() {
                        tx.insert(&l, i, d.as_str())?;
                    }
                }
                let cs = tx.put_object(ROOT, "capabilities", ObjType::Map)?;
                let mut caps = seed.capabilities.clone();
                caps.sort_by(|a, b| a.id.cmp(&b.id));
                for c in &caps {
                    let o = tx.put_object(&cs, c.id.as_str(), ObjType::Map)?;
                    let name = tx.put_object(&o, "name", ObjType::Text)?;
                    tx.splice_text(&name, 0, 0, &c.name)?;
                    for (k, v) in [
                        ("domain", &c.domain),
                        ("aws_equivalent", &c.aws_equivalent),
                        ("open_source_base", &c.open_source_base),
                        ("priority", &c.priority),
                        ("effort", &c.effort),
                        ("working_group", &c.working_group),
                        ("lead_jurisdiction", &c.lead_jurisdiction),
                        ("status", &c.status),
                    ] {
                        tx.put(&o, k, v.as_str())?;
                    }
                    let deps = tx.put_object(&o, "dependencies", ObjType::List)?;
                    for (i, d) in c.dependencies.iter().enumerate() {
                        tx.insert(&deps, i, d.as_str())?;
                    }
                    for (k, items) in [
                        ("functional_requirements", &c.functional_requirements),
                        (
                            "non_functional_requirements",
                            &c.non_functional_requirements,
                        ),
                        ("deliverables", &c.deliverables),
                    ] {
                        let l = tx.put_object(&o, k, ObjType::List)?;
                        for (i, item) in items.iter().enumerate() {
                            let t = tx.insert_object(&l, i, ObjType::Text)?;
                            tx.splice_text(&t, 0, 0, item)?;
                        }
                    }
                }
                // Every history map exists from the start, so no node ever creates a
                // top-level object (two creations would shadow each other).
                for h in History::ALL {
                    tx.put_object(ROOT, h.key(), ObjType::Map)?;
                }
                Ok(())
            },
        )
        .map_err(|f| f.error)?;
    let hash = result
        .hash
        .ok_or_else(|| CatalogueError::Damaged("genesis produced no change".into()))?;
    Ok((doc, hash))
}
