//! Who changed a capability, when, and which fields: every edit is a signed change whose
//! author the root chain names, so the history of a capability is read straight from the
//! document (`accord catalogue history CAP`).

use accord_trust::RootChain;
use automerge::Automerge;
use automerge::legacy::{Key, ObjectId, OpType};
use serde::{Deserialize, Serialize};

use crate::authority::{Zone, existing_zone};
use crate::genesis::GENESIS_ACTOR;
use crate::signing;

/// One change that touched a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    /// The change's hash, first 12 hex digits.
    pub change: String,
    /// Unix seconds, as the author stamped it.
    pub time: i64,
    /// "uk (node key 1a2b3c4d)", "genesis (seed catalogue)", or the unknown actor.
    pub author: String,
    pub message: String,
    /// The fields it wrote.
    pub fields: Vec<String>,
}

/// The changes that touched capability `id`, oldest first.
pub fn capability(doc: &Automerge, chain: &RootChain, id: &str) -> Vec<Edit> {
    let mut out = Vec::new();
    for change in doc.get_changes(&[]) {
        let expanded = change.decode();
        let mut fields: Vec<String> = Vec::new();
        let start = change.start_op().get();
        let mut made: std::collections::HashMap<u64, String> = Default::default();
        for (i, op) in expanded.operations.iter().enumerate() {
            let field = match &op.obj {
                ObjectId::Root => None,
                ObjectId::Id(o)
                    if o.actor() == change.actor_id() && made.contains_key(&o.counter()) =>
                {
                    made.get(&o.counter()).cloned()
                }
                ObjectId::Id(o) => match existing_zone(doc, o.counter(), o.actor().to_bytes()) {
                    Ok(Zone::Capability(c)) if c == id => match &op.key {
                        Key::Map(f) => Some(f.to_string()),
                        Key::Seq(_) => None,
                    },
                    Ok(Zone::CapabilityContent { capability, field }) if capability == id => {
                        Some(field)
                    }
                    _ => None,
                },
            };
            if let Some(f) = field {
                if let OpType::Make(_) = op.action {
                    made.insert(start + i as u64, f.clone());
                }
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
        }
        if fields.is_empty() {
            continue;
        }
        let actor = change.actor_id().to_bytes();
        let author = if actor == GENESIS_ACTOR {
            "genesis (seed catalogue)".to_owned()
        } else {
            match signing::author_of(chain, &hex::encode(actor)) {
                Some(s) => format!(
                    "{} (node key {}{})",
                    s.principal(),
                    &s.key().id().short()[..8],
                    if s.is_current() {
                        ""
                    } else {
                        ", since retired"
                    }
                ),
                None => format!("unknown actor {}", hex::encode(actor)),
            }
        };
        out.push(Edit {
            change: hex::encode(&change.hash().0[..6]),
            time: change.timestamp(),
            author,
            message: change.message().unwrap_or_default().to_owned(),
            fields,
        });
    }
    out
}
