//! The typed view of the catalogue document, and how it is read back from Automerge.
//!
//! Layout of the document (`accord/catalogue/v2`, ADR 0005; keys are stable, values are
//! validated on every read):
//!
//! ```text
//! ROOT { schema: "accord/catalogue/v2", anchor: hex sha256 of the first root's payload,
//!        jurisdictions: { uk: { name } },
//!        domains: { A: { name } },
//!        working_groups: { WG1: { name, lead_jurisdiction, domains: [str] } },
//!        capabilities: { CAP-B01: { name: Text, domain, aws_equivalent, open_source_base,
//!                                   priority, effort, dependencies: [str], working_group,
//!                                   lead_jurisdiction, functional_requirements: [Text],
//!                                   non_functional_requirements: [Text], deliverables: [Text],
//!                                   status } },
//!        statements: { sha256(v): Bytes(in-toto payload) },     release, recall, conditional
//!        signatures: { sha256(v): Bytes(approval record) },
//!        notes:      { sha256(v): Bytes(promotion note envelope) },
//!        roots:      { sha256(v): Bytes(root envelope) },
//!        acks:       { sha256(v): Bytes(root adoption record) },
//!        checkpoints: { sha256(v): Bytes(audit checkpoint envelope) } }
//! ```
//!
//! Content written by other nodes is untrusted even when it passed `authority` on receipt
//! (the data dir may have been tampered with since): an entry that does not fit is reported
//! as a `Problem` and skipped, never a panic and never a silently wrong value.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use accord_protocol::dsse::PAYLOAD_TYPE_IN_TOTO;
use accord_protocol::statement::Artifact;
use accord_protocol::{
    Envelope, EnvelopeSignature, Note, ReleaseId, Selector, Statement, StatementKind,
};
use automerge::{ObjId as ExId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use crate::error::CatalogueError;
use crate::records::{Ack, Approval, History, entry_key};

pub const SCHEMA: &str = "accord/catalogue/v2";

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

/// A value in a history map with the actors (hex) of every change that wrote it: several
/// nodes may write the same entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Authored<T> {
    pub value: T,
    pub authors: Vec<String>,
}

/// A release statement and everything the catalogue holds about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// SHA-256 of the statement payload: the release's identity.
    pub id: ReleaseId,
    pub capability: String,
    pub version: semver::Version,
    /// Actors (hex) of the changes that wrote the statement: who proposed it.
    pub authors: Vec<String>,
    /// The exact signed payload.
    #[serde(skip)]
    pub payload: Vec<u8>,
    #[serde(skip)]
    pub artifacts: Vec<Artifact>,
    /// Upstream provenance: for some artifacts, which other artifact is its Sigstore
    /// bundle (checked against the subjects when the statement was read).
    #[serde(skip)]
    pub provenance: Vec<accord_protocol::statement::ProvenanceRef>,
    /// Approval records naming this statement.
    #[serde(skip)]
    pub approvals: Vec<Authored<Approval>>,
    /// Recall and conditional statements naming this release.
    #[serde(skip)]
    pub about: Vec<AboutRelease>,
    /// Promotion notes naming this release (unverified bytes; readers check them).
    #[serde(skip)]
    pub notes: Vec<Authored<Vec<u8>>>,
}

/// A recall or conditional statement about a release, with its approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AboutRelease {
    pub id: ReleaseId,
    pub payload: Vec<u8>,
    /// "recall" or "conditional"
    pub kind: &'static str,
    pub authors: Vec<String>,
    pub approvals: Vec<Authored<Approval>>,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            id: ReleaseId([0; 32]),
            capability: String::new(),
            version: semver::Version::new(0, 0, 0),
            authors: Vec::new(),
            payload: Vec::new(),
            artifacts: Vec::new(),
            provenance: Vec::new(),
            approvals: Vec::new(),
            about: Vec::new(),
            notes: Vec::new(),
        }
    }
}

impl Release {
    /// `CAP@VER`, for people (not unique when statements conflict).
    pub fn key(&self) -> String {
        accord_protocol::release::display_key(&self.capability, &self.version)
    }

    /// `CAP@VER#<12 hex>`: unique.
    pub fn label(&self) -> String {
        format!("{}#{}", self.key(), self.id.short())
    }

    /// The statement with every approval collected so far as a DSSE signature; whether
    /// each counts is the trust crate's decision, never this function's.
    pub fn signed_envelope(&self) -> Envelope {
        with_approvals(&self.payload, &self.approvals)
    }
}

impl AboutRelease {
    pub fn signed_envelope(&self) -> Envelope {
        with_approvals(&self.payload, &self.approvals)
    }
}

fn with_approvals(payload: &[u8], approvals: &[Authored<Approval>]) -> Envelope {
    let mut env = Envelope::new(PAYLOAD_TYPE_IN_TOTO, payload.to_vec());
    for a in approvals {
        let sig = a.value.sig.to_vec();
        if !env.signatures.iter().any(|s| s.sig == sig) {
            env.signatures.push(EnvelopeSignature {
                keyid: a.value.keyid.to_string(),
                sig,
            });
        }
    }
    env
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
    /// Release statements, ordered by capability, version, then id.
    pub releases: Vec<Release>,
    /// Root envelopes recorded in the catalogue.
    #[serde(skip)]
    pub roots: Vec<Authored<Vec<u8>>>,
    /// Which jurisdiction adopted which root.
    pub acks: Vec<Authored<Ack>>,
    /// Audit checkpoints (signed envelopes, unverified here).
    #[serde(default)]
    pub checkpoints: Vec<Authored<Vec<u8>>>,
}

impl Catalogue {
    pub fn capability(&self, id: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.id == id)
    }

    pub fn release(&self, id: &ReleaseId) -> Option<&Release> {
        self.releases.iter().find(|r| &r.id == id)
    }

    /// The releases a selector names (several when statements for one `CAP@VER` conflict).
    pub fn select(&self, sel: &Selector) -> Vec<&Release> {
        self.releases
            .iter()
            .filter(|r| sel.matches(&r.id, &r.capability, &r.version))
            .collect()
    }

    /// Every `CAP@VER` that more than one release statement claims, with those statements.
    pub fn equivocations(&self) -> Vec<(String, Vec<&Release>)> {
        let mut by_key: BTreeMap<String, Vec<&Release>> = BTreeMap::new();
        for r in &self.releases {
            by_key.entry(r.key()).or_default().push(r);
        }
        by_key.into_iter().filter(|(_, v)| v.len() > 1).collect()
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
    read_history(&mut r, &mut cat);
    let problems = r.problems;
    (cat, problems)
}

/// The history maps: statements grouped into releases, with their approvals, recalls,
/// conditionals and notes; roots and acks.
fn read_history<D: ReadDoc>(r: &mut Reader<'_, D>, cat: &mut Catalogue) {
    let mut abouts: Vec<(ReleaseId, AboutRelease)> = Vec::new();
    for (id, entry) in r.history(History::Statements) {
        let rid = ReleaseId::of_payload(&entry.value);
        match Statement::from_payload(&entry.value) {
            Ok(StatementKind::Release {
                artifacts,
                predicate,
            }) => cat.releases.push(Release {
                id: rid,
                capability: predicate.capability,
                version: predicate.version,
                authors: entry.authors,
                payload: entry.value,
                artifacts,
                provenance: predicate.provenance,
                ..Release::default()
            }),
            Ok(kind) => match kind.names_release() {
                Some(target) => abouts.push((
                    target,
                    AboutRelease {
                        id: rid,
                        kind: kind.name(),
                        payload: entry.value,
                        authors: entry.authors,
                        approvals: Vec::new(),
                    },
                )),
                None => r.problem(&format!("statements.{id}"), "names no release"),
            },
            Err(e) => r.problem(&format!("statements.{id}"), e.to_string()),
        }
    }
    cat.releases.sort_by(|a, b| {
        (&a.capability, &a.version, &a.id).cmp(&(&b.capability, &b.version, &b.id))
    });
    for (target, about) in abouts {
        match cat.releases.iter_mut().find(|x| x.id == target) {
            Some(rel) => rel.about.push(about),
            None => r.problem(
                &format!("statements.{}", about.id.hex()),
                format!(
                    "names release {}, which the catalogue does not hold",
                    target.short()
                ),
            ),
        }
    }
    for (id, entry) in r.history(History::Signatures) {
        let approval = match Approval::parse(&entry.value) {
            Ok(a) => a,
            Err(e) => {
                r.problem(&format!("signatures.{id}"), e);
                continue;
            }
        };
        let authored = Authored {
            value: approval,
            authors: entry.authors,
        };
        let target = authored.value.statement;
        if let Some(rel) = cat.releases.iter_mut().find(|x| x.id == target) {
            rel.approvals.push(authored);
        } else if let Some(about) = cat
            .releases
            .iter_mut()
            .flat_map(|x| x.about.iter_mut())
            .find(|a| a.id == target)
        {
            about.approvals.push(authored);
        } else {
            r.problem(
                &format!("signatures.{id}"),
                format!(
                    "signs {}, which the catalogue does not hold",
                    target.short()
                ),
            );
        }
    }
    for (id, entry) in r.history(History::Notes) {
        match Note::parse(&entry.value) {
            Ok((_, note)) => match cat.releases.iter_mut().find(|x| x.id == note.release) {
                Some(rel) => rel.notes.push(entry),
                None => r.problem(
                    &format!("notes.{id}"),
                    format!(
                        "names release {}, which the catalogue does not hold",
                        note.release.short()
                    ),
                ),
            },
            Err(e) => r.problem(&format!("notes.{id}"), e.to_string()),
        }
    }
    cat.roots = r
        .history(History::Roots)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    cat.checkpoints = r
        .history(History::Checkpoints)
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    for (id, entry) in r.history(History::Acks) {
        match Ack::parse(&entry.value) {
            Ok(a) => cat.acks.push(Authored {
                value: a,
                authors: entry.authors,
            }),
            Err(e) => r.problem(&format!("acks.{id}"), e),
        }
    }
}

/// The value stored under `key` in a history map, if it is there and hashes to its key.
pub fn history_value<D: ReadDoc>(doc: &D, map: History, key: &str) -> Option<Vec<u8>> {
    let obj = match doc.get(ROOT, map.key()) {
        Ok(Some((Value::Object(ObjType::Map), id))) => id,
        _ => return None,
    };
    doc.get_all(&obj, key)
        .ok()?
        .into_iter()
        .find_map(|(v, _)| match v {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Bytes(b) if entry_key(b) == key => Some(b.clone()),
                _ => None,
            },
            _ => None,
        })
}

/// The actor (hex) that made an operation.
fn actor_of(id: &ExId) -> Option<String> {
    match id {
        ExId::Id(_, actor, _) => Some(hex::encode(actor.to_bytes())),
        ExId::Root => None,
    }
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

    /// Every entry of a history map whose value hashes to its key, with its authors;
    /// anything else is reported.
    fn history(&mut self, map: History) -> Vec<(String, Authored<Vec<u8>>)> {
        let obj = match self.doc.get(ROOT, map.key()) {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            _ => {
                self.problem(map.key(), "is missing or not a map");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for k in self.doc.keys(&obj).collect::<Vec<_>>() {
            let mut value: Option<Vec<u8>> = None;
            let mut authors = Vec::new();
            for (v, id) in self.doc.get_all(&obj, k.as_str()).unwrap_or_default() {
                if let Value::Scalar(s) = v
                    && let ScalarValue::Bytes(b) = s.as_ref()
                    && entry_key(b) == k
                {
                    value.get_or_insert_with(|| b.clone());
                    authors.extend(actor_of(&id));
                }
            }
            match value {
                Some(value) => {
                    authors.sort();
                    authors.dedup();
                    out.push((k, Authored { value, authors }));
                }
                None => self.problem(
                    &format!("{}.{}", map.key(), k.chars().take(16).collect::<String>()),
                    "holds no value that hashes to its key",
                ),
            }
        }
        out
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
}
