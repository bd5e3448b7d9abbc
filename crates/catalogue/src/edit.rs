//! Typed edits of the catalogue, each applied inside one `Replica::edit` transaction.
//! They check values before writing, so a local user cannot write what `schema::read`
//! would later have to skip.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::error::CatalogueError;
use crate::records::{History, entry_key};
use crate::schema::{Status, check_capability_id};

/// Scalar fields of a capability that `set` accepts, besides `name` and `status`.
pub const PLAIN_FIELDS: [&str; 7] = [
    "domain",
    "aws_equivalent",
    "open_source_base",
    "priority",
    "effort",
    "working_group",
    "lead_jurisdiction",
];

/// Lists of text items.
pub const TEXT_LISTS: [&str; 3] = [
    "functional_requirements",
    "non_functional_requirements",
    "deliverables",
];

fn invalid(field: &str, detail: impl Into<String>) -> CatalogueError {
    CatalogueError::InvalidValue {
        field: field.to_owned(),
        detail: detail.into(),
    }
}

fn map_in(tx: &Transaction<'_>, parent: &ObjId, key: &str) -> Option<ObjId> {
    match tx.get(parent, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

fn capability(tx: &Transaction<'_>, id: &str) -> Result<ObjId, CatalogueError> {
    let caps = map_in(tx, &ROOT, "capabilities")
        .ok_or_else(|| CatalogueError::Damaged("no capabilities map".into()))?;
    map_in(tx, &caps, id).ok_or_else(|| CatalogueError::UnknownCapability(id.to_owned()))
}

fn keys_of(tx: &Transaction<'_>, map: &str) -> Vec<String> {
    map_in(tx, &ROOT, map)
        .map(|m| tx.keys(&m).collect())
        .unwrap_or_default()
}

fn must_exist(
    tx: &Transaction<'_>,
    map: &str,
    field: &str,
    value: &str,
) -> Result<(), CatalogueError> {
    if value.is_empty() || keys_of(tx, map).iter().any(|k| k == value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{value:?} is not in {map} ({})",
                keys_of(tx, map).join(", ")
            ),
        ))
    }
}

/// Sets one field of a capability: `name` (collaborative text: concurrent edits merge),
/// `status` (one of the lifecycle states), or a plain field.
pub fn set(
    tx: &mut Transaction<'_>,
    id: &str,
    field: &str,
    value: &str,
) -> Result<(), CatalogueError> {
    let cap = capability(tx, id)?;
    match field {
        "name" => {
            if value.trim().is_empty() {
                return Err(invalid("name", "must not be empty"));
            }
            if value.len() > crate::authority::MAX_TEXT_BYTES {
                return Err(invalid("name", "longer than 4096 bytes"));
            }
            let text = match tx.get(&cap, "name") {
                Ok(Some((Value::Object(ObjType::Text), t))) => t,
                _ => tx.put_object(&cap, "name", ObjType::Text)?,
            };
            tx.update_text(&text, value)?;
        }
        "status" => {
            let s: Status = value.parse()?;
            tx.put(&cap, "status", s.as_str())?;
        }
        "domain" => {
            must_exist(tx, "domains", field, value)?;
            if value.is_empty() {
                return Err(invalid(field, "a capability must have a domain"));
            }
            tx.put(&cap, field, value)?;
        }
        "working_group" => {
            must_exist(tx, "working_groups", field, value)?;
            tx.put(&cap, field, value)?;
        }
        "lead_jurisdiction" => {
            must_exist(tx, "jurisdictions", field, value)?;
            tx.put(&cap, field, value)?;
        }
        f if PLAIN_FIELDS.contains(&f) => {
            if value.len() > crate::authority::MAX_TEXT_BYTES {
                return Err(invalid(f, "longer than 4096 bytes"));
            }
            tx.put(&cap, f, value)?;
        }
        other => {
            return Err(invalid(
                other,
                format!(
                    "unknown field; settable fields are name, status, {}",
                    PLAIN_FIELDS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn is_str(v: Value<'_>, want: &str) -> bool {
    matches!(v, Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Str(x) if x.as_str() == want))
}

fn list_of(tx: &mut Transaction<'_>, cap: &ObjId, field: &str) -> Result<ObjId, CatalogueError> {
    match tx.get(cap, field) {
        Ok(Some((Value::Object(ObjType::List), l))) => Ok(l),
        Ok(None) => Ok(tx.put_object(cap, field, ObjType::List)?),
        _ => Err(CatalogueError::Damaged(format!("{field} is not a list"))),
    }
}

/// Adds a dependency on another capability (no duplicates, no self-dependency).
pub fn add_dependency(tx: &mut Transaction<'_>, id: &str, dep: &str) -> Result<(), CatalogueError> {
    check_capability_id(dep)?;
    if dep == id {
        return Err(invalid(
            "dependencies",
            "a capability cannot depend on itself",
        ));
    }
    capability(tx, dep)
        .map_err(|_| invalid("dependencies", format!("{dep} is not in the catalogue")))?;
    let cap = capability(tx, id)?;
    let list = list_of(tx, &cap, "dependencies")?;
    let present = tx
        .list_range(&list, ..)
        .any(|i| is_str(i.value.into_value(), dep));
    if !present {
        let n = tx.length(&list);
        tx.insert(&list, n, dep)?;
    }
    Ok(())
}

pub fn remove_dependency(
    tx: &mut Transaction<'_>,
    id: &str,
    dep: &str,
) -> Result<(), CatalogueError> {
    let cap = capability(tx, id)?;
    let list = list_of(tx, &cap, "dependencies")?;
    let positions: Vec<usize> = tx
        .list_range(&list, ..)
        .enumerate()
        .filter(|(_, i)| is_str(i.value.clone().into_value(), dep))
        .map(|(n, _)| n)
        .collect();
    if positions.is_empty() {
        return Err(invalid(
            "dependencies",
            format!("{id} does not depend on {dep}"),
        ));
    }
    for p in positions.into_iter().rev() {
        tx.delete(&list, p)?;
    }
    Ok(())
}

/// Appends a text item (requirement or deliverable).
pub fn add_item(
    tx: &mut Transaction<'_>,
    id: &str,
    field: &str,
    text: &str,
) -> Result<(), CatalogueError> {
    if !TEXT_LISTS.contains(&field) {
        return Err(invalid(
            field,
            format!("not a list; lists are {}", TEXT_LISTS.join(", ")),
        ));
    }
    if text.trim().is_empty() {
        return Err(invalid(field, "an item must not be empty"));
    }
    if text.len() > crate::authority::MAX_TEXT_BYTES {
        return Err(invalid(field, "an item is longer than 4096 bytes"));
    }
    let cap = capability(tx, id)?;
    let list = list_of(tx, &cap, field)?;
    let n = tx.length(&list);
    let t = tx.insert_object(&list, n, ObjType::Text)?;
    tx.splice_text(&t, 0, 0, text)?;
    Ok(())
}

/// Rewrites item `index` of a text list as a character diff, so concurrent edits merge.
pub fn edit_item(
    tx: &mut Transaction<'_>,
    id: &str,
    field: &str,
    index: usize,
    text: &str,
) -> Result<(), CatalogueError> {
    let cap = capability(tx, id)?;
    let list = list_of(tx, &cap, field)?;
    match tx.get(&list, index) {
        Ok(Some((Value::Object(ObjType::Text), t))) => {
            tx.update_text(&t, text)?;
            Ok(())
        }
        _ => Err(invalid(field, format!("{id} has no item {index}"))),
    }
}

/// Splices a text field at a character position (what an editor sends).
pub fn splice_name(
    tx: &mut Transaction<'_>,
    id: &str,
    pos: usize,
    del: isize,
    insert: &str,
) -> Result<(), CatalogueError> {
    let cap = capability(tx, id)?;
    let text = match tx.get(&cap, "name") {
        Ok(Some((Value::Object(ObjType::Text), t))) => t,
        _ => return Err(CatalogueError::Damaged(format!("{id}.name is not text"))),
    };
    let len = tx.length(&text);
    let pos = pos.min(len);
    let del = del.clamp(0, (len - pos) as isize);
    tx.splice_text(&text, pos, del, insert)?;
    Ok(())
}

/// Adds an entry to a history map under the SHA-256 of its value (ADR 0005). Adding what is
/// already there changes nothing, so the same statement proposed twice is one entry.
pub fn add_history(
    tx: &mut Transaction<'_>,
    map: History,
    value: &[u8],
) -> Result<String, CatalogueError> {
    let obj = map_in(tx, &ROOT, map.key())
        .ok_or_else(|| CatalogueError::Damaged(format!("no {} map", map.key())))?;
    let key = entry_key(value);
    if tx.get(&obj, key.as_str())?.is_none() {
        tx.put(&obj, key.as_str(), ScalarValue::Bytes(value.to_vec()))?;
    }
    Ok(key)
}

/// A batch of edits to one capability, as the CLI and the HTTP API receive it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditSpec {
    /// field -> value (see `set`)
    #[serde(default)]
    pub set: Vec<(String, String)>,
    #[serde(default)]
    pub add_dependency: Vec<String>,
    #[serde(default)]
    pub remove_dependency: Vec<String>,
    #[serde(default)]
    pub add_requirement: Vec<String>,
    #[serde(default)]
    pub add_non_functional: Vec<String>,
    #[serde(default)]
    pub add_deliverable: Vec<String>,
}

impl EditSpec {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add_dependency.is_empty()
            && self.remove_dependency.is_empty()
            && self.add_requirement.is_empty()
            && self.add_non_functional.is_empty()
            && self.add_deliverable.is_empty()
    }

    /// A one-line description for the change's commit message.
    pub fn summary(&self, id: &str) -> String {
        let sets: Vec<String> = self.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("edit {id}: {}", sets.join(", "))
    }

    /// Applies every part inside one transaction (all or nothing).
    pub fn apply(&self, tx: &mut Transaction<'_>, id: &str) -> Result<(), CatalogueError> {
        for (k, v) in &self.set {
            set(tx, id, k, v)?;
        }
        for d in &self.add_dependency {
            add_dependency(tx, id, d)?;
        }
        for d in &self.remove_dependency {
            remove_dependency(tx, id, d)?;
        }
        for t in &self.add_requirement {
            add_item(tx, id, "functional_requirements", t)?;
        }
        for t in &self.add_non_functional {
            add_item(tx, id, "non_functional_requirements", t)?;
        }
        for t in &self.add_deliverable {
            add_item(tx, id, "deliverables", t)?;
        }
        Ok(())
    }
}
