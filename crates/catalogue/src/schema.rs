//! The typed view of the catalogue document, and how it is read back from Automerge.
//!
//! Layout of the document (keys are stable; values are validated on every read):
//!
//! ```text
//! ROOT { schema: "accord/catalogue/v1", anchor: hex sha256 of the first root's payload,
//!        jurisdictions: { uk: { name } },
//!        domains: { A: { name } },
//!        working_groups: { WG1: { name, lead_jurisdiction, domains: [str] } },
//!        capabilities: { CAP-B01: { name: Text, domain, aws_equivalent, open_source_base,
//!                                   priority, effort, dependencies: [str], working_group,
//!                                   lead_jurisdiction, functional_requirements: [Text],
//!                                   non_functional_requirements: [Text], deliverables: [Text],
//!                                   status } },
//!        releases: { "CAP-B01@1.4.0": { envelope: Bytes, approvals: { keyid: Bytes(sig) },
//!                                       promotions: { uk: Bytes(note) },
//!                                       statements: { sha256(payload): { envelope: Bytes,
//!                                                     approvals: { keyid: Bytes(sig) } } } } } }
//! ```
//!
//! Content written by other nodes is untrusted even when signed (a valid node can still
//! write nonsense): an entry that does not fit is reported as a `Problem` and skipped,
//! never a panic and never a silently wrong value.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use accord_protocol::{Envelope, EnvelopeSignature, ProtocolError};
use automerge::{ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use crate::error::CatalogueError;

pub const SCHEMA: &str = "accord/catalogue/v1";

/// Lifecycle of a capability (seeds: procurement framework, delivery stages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Proposed,
    Tendered,
    InDevelopment,
    Staging,
    Production,
    Deprecated,
    Retired,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Proposed,
        Status::Tendered,
        Status::InDevelopment,
        Status::Staging,
        Status::Production,
        Status::Deprecated,
        Status::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Tendered => "tendered",
            Status::InDevelopment => "in-development",
            Status::Staging => "staging",
            Status::Production => "production",
            Status::Deprecated => "deprecated",
            Status::Retired => "retired",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = CatalogueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace([' ', '_'], "-");
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == norm)
            .ok_or_else(|| CatalogueError::InvalidValue {
                field: "status".into(),
                detail: format!(
                    "{s:?} is not one of {}",
                    Status::ALL.map(|s| s.as_str()).join(", ")
                ),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub aws_equivalent: String,
    pub open_source_base: String,
    pub priority: String,
    pub effort: String,
    pub dependencies: Vec<String>,
    pub working_group: String,
    pub lead_jurisdiction: String,
    pub functional_requirements: Vec<String>,
    pub non_functional_requirements: Vec<String>,
    pub deliverables: Vec<String>,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingGroup {
    pub id: String,
    pub name: String,
    pub lead_jurisdiction: String,
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// A release as the catalogue holds it: the signed statement and what was added to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseEntry {
    pub key: String,
    #[serde(skip)]
    pub envelope: Vec<u8>,
    /// keyid -> signature bytes
    #[serde(skip)]
    pub approvals: BTreeMap<String, Vec<u8>>,
    /// jurisdiction -> signed promotion note bytes
    #[serde(skip)]
    pub promotions: BTreeMap<String, Vec<u8>>,
    /// hex SHA-256 of the payload -> a recall or conditional statement about this release
    #[serde(skip)]
    pub statements: BTreeMap<String, StatementEntry>,
}

/// A statement about a release and the signatures collected for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatementEntry {
    pub envelope: Vec<u8>,
    /// keyid -> signature bytes
    pub approvals: BTreeMap<String, Vec<u8>>,
}

impl ReleaseEntry {
    /// The release envelope with every collected approval as one more signature; whether
    /// each counts is the trust crate's decision, never this function's.
    pub fn signed_envelope(&self) -> Result<Envelope, ProtocolError> {
        with_approvals(&self.envelope, &self.approvals)
    }
}

impl StatementEntry {
    pub fn signed_envelope(&self) -> Result<Envelope, ProtocolError> {
        with_approvals(&self.envelope, &self.approvals)
    }
}

fn with_approvals(
    bytes: &[u8],
    approvals: &BTreeMap<String, Vec<u8>>,
) -> Result<Envelope, ProtocolError> {
    let mut env = Envelope::from_json(bytes)?;
    for (keyid, sig) in approvals {
        if !env.signatures.iter().any(|s| s.sig == *sig) {
            env.signatures.push(EnvelopeSignature {
                keyid: keyid.clone(),
                sig: sig.clone(),
            });
        }
    }
    Ok(env)
}

/// Something in the document that could not be read as the schema says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub detail: String,
}

/// The typed catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Catalogue {
    pub anchor: String,
    pub jurisdictions: Vec<Named>,
    pub domains: Vec<Named>,
    pub working_groups: Vec<WorkingGroup>,
    pub capabilities: Vec<Capability>,
    pub releases: Vec<ReleaseEntry>,
}

impl Catalogue {
    pub fn capability(&self, id: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.id == id)
    }
}

/// Capability ids look like the seeds' (`CAP-B01`): letters, digits and dashes.
pub fn check_capability_id(id: &str) -> Result<(), CatalogueError> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CatalogueError::InvalidValue {
            field: "capability id".into(),
            detail: format!("{id:?} must be upper-case letters, digits and '-', e.g. CAP-B01"),
        })
    }
}

/// Reads the typed catalogue; anything malformed is skipped and reported.
pub fn read<D: ReadDoc>(doc: &D) -> (Catalogue, Vec<Problem>) {
    let mut r = Reader {
        doc,
        problems: Vec::new(),
    };
    let mut cat = Catalogue {
        anchor: r.root_str("anchor"),
        ..Default::default()
    };
    if r.root_str("schema") != SCHEMA {
        r.problem("schema", format!("expected {SCHEMA}"));
    }
    for (id, obj) in r.map_entries(&ROOT, "jurisdictions") {
        let name = r.str_field(&obj, &format!("jurisdictions.{id}"), "name");
        cat.jurisdictions.push(Named { id, name });
    }
    for (id, obj) in r.map_entries(&ROOT, "domains") {
        let name = r.str_field(&obj, &format!("domains.{id}"), "name");
        cat.domains.push(Named { id, name });
    }
    for (id, obj) in r.map_entries(&ROOT, "working_groups") {
        let p = format!("working_groups.{id}");
        cat.working_groups.push(WorkingGroup {
            name: r.str_field(&obj, &p, "name"),
            lead_jurisdiction: r.str_field(&obj, &p, "lead_jurisdiction"),
            domains: r.str_list(&obj, &p, "domains"),
            id,
        });
    }
    for (id, obj) in r.map_entries(&ROOT, "capabilities") {
        let p = format!("capabilities.{id}");
        if let Err(e) = check_capability_id(&id) {
            r.problem(&p, e.to_string());
            continue;
        }
        let status_s = r.str_field(&obj, &p, "status");
        let status = match status_s.parse::<Status>() {
            Ok(s) => s,
            Err(e) => {
                r.problem(&p, e.to_string());
                continue;
            }
        };
        cat.capabilities.push(Capability {
            name: r.str_field(&obj, &p, "name"),
            domain: r.str_field(&obj, &p, "domain"),
            aws_equivalent: r.str_field(&obj, &p, "aws_equivalent"),
            open_source_base: r.str_field(&obj, &p, "open_source_base"),
            priority: r.str_field(&obj, &p, "priority"),
            effort: r.str_field(&obj, &p, "effort"),
            dependencies: r.str_list(&obj, &p, "dependencies"),
            working_group: r.str_field(&obj, &p, "working_group"),
            lead_jurisdiction: r.str_field(&obj, &p, "lead_jurisdiction"),
            functional_requirements: r.str_list(&obj, &p, "functional_requirements"),
            non_functional_requirements: r.str_list(&obj, &p, "non_functional_requirements"),
            deliverables: r.str_list(&obj, &p, "deliverables"),
            status,
            id,
        });
    }
    for (key, obj) in r.map_entries(&ROOT, "releases") {
        let p = format!("releases.{key}");
        let Some(envelope) = r.bytes_field(&obj, &p, "envelope") else {
            continue;
        };
        let approvals = r.bytes_map(&obj, &p, "approvals");
        let promotions = r.bytes_map(&obj, &p, "promotions");
        let mut statements = BTreeMap::new();
        for (id, s) in r.map_entries(&obj, "statements") {
            let sp = format!("{p}.statements.{id}");
            if let Some(envelope) = r.bytes_field(&s, &sp, "envelope") {
                let approvals = r.bytes_map(&s, &sp, "approvals");
                statements.insert(
                    id,
                    StatementEntry {
                        envelope,
                        approvals,
                    },
                );
            }
        }
        cat.releases.push(ReleaseEntry {
            key,
            envelope,
            approvals,
            promotions,
            statements,
        });
    }
    let problems = r.problems;
    (cat, problems)
}

struct Reader<'a, D: ReadDoc> {
    doc: &'a D,
    problems: Vec<Problem>,
}

impl<D: ReadDoc> Reader<'_, D> {
    fn problem(&mut self, path: &str, detail: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_owned(),
            detail: detail.into(),
        });
    }

    fn root_str(&mut self, key: &str) -> String {
        match self.doc.get(ROOT, key) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                _ => String::new(),
            },
            _ => String::new(),
        }
    }

    /// Entries of a map-of-maps, sorted by key; non-map entries are reported.
    fn map_entries(
        &mut self,
        parent: &automerge::ObjId,
        key: &str,
    ) -> Vec<(String, automerge::ObjId)> {
        let obj = match self.doc.get(parent, key) {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            Ok(None) => return Vec::new(),
            _ => {
                self.problem(key, "is not a map");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for k in self.doc.keys(&obj).collect::<Vec<_>>() {
            match self.doc.get(&obj, k.as_str()) {
                Ok(Some((Value::Object(ObjType::Map), id))) => out.push((k, id)),
                _ => self.problem(&format!("{key}.{k}"), "is not a map"),
            }
        }
        out
    }

    fn str_field(&mut self, obj: &automerge::ObjId, path: &str, key: &str) -> String {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                _ => {
                    self.problem(&format!("{path}.{key}"), "is not a string");
                    String::new()
                }
            },
            Ok(Some((Value::Object(ObjType::Text), id))) => self.doc.text(&id).unwrap_or_default(),
            Ok(None) => String::new(),
            _ => {
                self.problem(&format!("{path}.{key}"), "is not a string");
                String::new()
            }
        }
    }

    fn list(&mut self, obj: &automerge::ObjId, path: &str, key: &str) -> Option<automerge::ObjId> {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Object(ObjType::List), id))) => Some(id),
            Ok(None) => None,
            _ => {
                self.problem(&format!("{path}.{key}"), "is not a list");
                None
            }
        }
    }

    fn str_list(&mut self, obj: &automerge::ObjId, path: &str, key: &str) -> Vec<String> {
        let Some(list) = self.list(obj, path, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let items: Vec<(Value<'static>, automerge::ObjId)> = self
            .doc
            .list_range(&list, ..)
            .map(|item| (item.value.clone().into_value(), item.id()))
            .collect();
        for (i, (value, id)) in items.into_iter().enumerate() {
            match value {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Str(s) => out.push(s.to_string()),
                    _ => self.problem(&format!("{path}.{key}[{i}]"), "is not a string"),
                },
                Value::Object(ObjType::Text) => out.push(self.doc.text(&id).unwrap_or_default()),
                _ => self.problem(&format!("{path}.{key}[{i}]"), "is not a string"),
            }
        }
        out
    }

    fn bytes_field(&mut self, obj: &automerge::ObjId, path: &str, key: &str) -> Option<Vec<u8>> {
        match self.doc.get(obj, key) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Bytes(b) => Some(b.clone()),
                _ => {
                    self.problem(&format!("{path}.{key}"), "is not bytes");
                    None
                }
            },
            _ => {
                self.problem(&format!("{path}.{key}"), "is missing or not bytes");
                None
            }
        }
    }

    fn bytes_map(
        &mut self,
        obj: &automerge::ObjId,
        path: &str,
        key: &str,
    ) -> BTreeMap<String, Vec<u8>> {
        let m = match self.doc.get(obj, key) {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            Ok(None) => return BTreeMap::new(),
            _ => {
                self.problem(&format!("{path}.{key}"), "is not a map");
                return BTreeMap::new();
            }
        };
        let mut out = BTreeMap::new();
        for k in self.doc.keys(&m).collect::<Vec<_>>() {
            if let Some(b) = self.bytes_field(&m, &format!("{path}.{key}"), &k) {
                out.insert(k, b);
            }
        }
        out
    }
}
