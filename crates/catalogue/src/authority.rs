//! Write authority: who may write what in the catalogue (ADR 0005 §3), checked operation by
//! operation for every change a node would add — from a peer, from a bundle, or made here —
//! before anything is applied. Every node runs this same code, so every node refuses the
//! same changes, and the simulator runs it too.
//!
//! The rules, by where an operation writes:
//!
//! - the document root, `schema`, `anchor`, `jurisdictions`, `domains`, `working_groups` and
//!   the `capabilities` map itself: genesis only;
//! - a capability: known fields, values that exist (status, domain, working group,
//!   jurisdiction, dependencies), strings of at most 4 KiB, no deleted fields;
//! - the history maps (`records::History`): one `put` of bytes at `sha256(bytes)` that
//!   overwrites nothing, with content rules per map (see `Checker::history`).

use std::collections::{BTreeSet, HashMap};

use accord_protocol::dsse::{PAYLOAD_TYPE_IN_TOTO, pae};
use accord_protocol::{Note, PrincipalId, ReleaseId, Role, Statement, StatementKind};
use accord_trust::{PublicKey, RootChain};
use automerge::legacy::{ObjectId, OpId, OpType};
use automerge::{Automerge, Change, ObjType, Prop, ROOT, ReadDoc, ScalarValue, Value};

use crate::edit::{PLAIN_FIELDS, TEXT_LISTS};
use crate::records::{Ack, Approval, History, entry_key};
use crate::schema::Status;

/// Longest string a capability field or list item may hold.
pub const MAX_TEXT_BYTES: usize = 4096;

/// The author of a change, as the root chain places its key.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub principal: &'a PrincipalId,
    pub key: &'a PublicKey,
}

/// Where in the document an object sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Zone {
    /// Written by the genesis only: the root map, the seed's reference maps, `capabilities`.
    Frozen(String),
    /// One capability's map.
    Capability(String),
    /// A list or text inside a capability field.
    CapabilityContent {
        capability: String,
        field: String,
    },
    History(History),
}

/// What a statement is, as far as other entries need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementClass {
    Release,
    About,
}

/// What a set of checked changes adds, for the caller's indexes.
#[derive(Debug, Default)]
pub struct Added {
    pub statements: Vec<(ReleaseId, StatementClass)>,
    /// Root versions the chain gained.
    pub roots: Vec<u64>,
}

/// Checks the operations of changes against the document they would be added to.
pub struct Checker<'a> {
    doc: &'a Automerge,
    /// Extended as root entries arrive, so later changes see the roots earlier ones added.
    pub chain: RootChain,
    known: &'a HashMap<ReleaseId, StatementClass>,
    /// Statements added by the changes checked so far, with their payloads.
    new_statements: HashMap<ReleaseId, (StatementClass, Vec<u8>)>,
    /// Objects the checked changes created, and objects already looked up.
    zones: HashMap<(u64, Vec<u8>), Zone>,
    /// Reference data fixed by the genesis.
    capabilities: BTreeSet<String>,
    domains: BTreeSet<String>,
    working_groups: BTreeSet<String>,
    jurisdictions: BTreeSet<String>,
    pub added: Added,
    /// Caps on releases and artifacts.
    pub limits: crate::limits::Limits,
    /// Release statements the document and the checked changes hold.
    releases: usize,
}

impl std::fmt::Debug for Checker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("root", &self.chain.current().version())
            .finish_non_exhaustive()
    }
}

fn keys_of(doc: &Automerge, map: &str) -> BTreeSet<String> {
    match doc.get(ROOT, map) {
        Ok(Some((Value::Object(ObjType::Map), id))) => doc.keys(&id).collect(),
        _ => BTreeSet::new(),
    }
}

impl<'a> Checker<'a> {
    pub fn new(
        doc: &'a Automerge,
        chain: RootChain,
        known: &'a HashMap<ReleaseId, StatementClass>,
    ) -> Checker<'a> {
        Checker {
            doc,
            chain,
            known,
            new_statements: HashMap::new(),
            zones: HashMap::new(),
            capabilities: keys_of(doc, "capabilities"),
            domains: keys_of(doc, "domains"),
            working_groups: keys_of(doc, "working_groups"),
            jurisdictions: keys_of(doc, "jurisdictions"),
            added: Added::default(),
            limits: crate::limits::Limits::default(),
            releases: known
                .values()
                .filter(|c| **c == StatementClass::Release)
                .count(),
        }
    }

    /// Checks one change by `author`. Changes must be offered in causal order.
    pub fn check(&mut self, change: &Change, author: Author<'_>) -> Result<(), String> {
        let short = hex::encode(&change.hash().0[..6]);
        let expanded = change.decode();
        let start = change.start_op().get();
        for (i, op) in expanded.operations.iter().enumerate() {
            let zone = self
                .zone(&op.obj)
                .map_err(|e| format!("change {short}: {e}"))?;
            self.op(&zone, op, author)
                .map_err(|e| format!("change {short} by {}: {e}", author.principal))?;
            if let OpType::Make(_) = op.action {
                let id = (start + i as u64, change.actor_id().to_bytes().to_vec());
                let child = match (&zone, &op.key) {
                    (Zone::Capability(c), automerge::legacy::Key::Map(f)) => {
                        Zone::CapabilityContent {
                            capability: c.clone(),
                            field: f.to_string(),
                        }
                    }
                    (z @ Zone::CapabilityContent { .. }, _) => z.clone(),
                    // `op` refused every other Make already.
                    (other, _) => other.clone(),
                };
                self.zones.insert(id, child);
            }
        }
        Ok(())
    }

    /// The zone of an object: created by a change checked here, or found in the document.
    fn zone(&mut self, obj: &ObjectId) -> Result<Zone, String> {
        let OpId(counter, actor) = match obj {
            ObjectId::Root => return Ok(Zone::Frozen("the document root".into())),
            ObjectId::Id(id) => id,
        };
        let k = (*counter, actor.to_bytes().to_vec());
        if let Some(z) = self.zones.get(&k) {
            return Ok(z.clone());
        }
        let zone = existing_zone(self.doc, *counter, actor.to_bytes())?;
        self.zones.insert(k, zone.clone());
        Ok(zone)
    }

    fn op(
        &mut self,
        zone: &Zone,
        op: &automerge::legacy::Op,
        author: Author<'_>,
    ) -> Result<(), String> {
        let key = match &op.key {
            automerge::legacy::Key::Map(k) => Some(k.to_string()),
            automerge::legacy::Key::Seq(_) => None,
        };
        match zone {
            Zone::Frozen(what) => Err(format!(
                "writes {what}{}, which only the genesis writes",
                key.map(|k| format!(".{}", cut(&k))).unwrap_or_default()
            )),
            Zone::Capability(cap) => {
                let field = key.ok_or_else(|| format!("writes {cap} as a list"))?;
                self.capability_field(cap, &field, &op.action)
            }
            Zone::CapabilityContent { capability, field } => match &op.action {
                OpType::Put(ScalarValue::Str(s)) => {
                    if s.len() > MAX_TEXT_BYTES {
                        return Err(format!(
                            "writes {} bytes into {capability}.{field} (at most {MAX_TEXT_BYTES})",
                            s.len()
                        ));
                    }
                    if field == "dependencies" && !self.capabilities.contains(s.as_str()) {
                        return Err(format!(
                            "makes {capability} depend on {:?}, which is not in the catalogue",
                            cut(s)
                        ));
                    }
                    Ok(())
                }
                OpType::Make(ObjType::Text) if TEXT_LISTS.contains(&field.as_str()) => Ok(()),
                OpType::Delete => Ok(()),
                other => Err(format!(
                    "writes {} into {capability}.{field}",
                    action_name(other)
                )),
            },
            Zone::History(map) => {
                let key = key.ok_or_else(|| format!("writes {} as a list", map.key()))?;
                let OpType::Put(ScalarValue::Bytes(value)) = &op.action else {
                    return Err(format!(
                        "{}s {}.{}: history is append-only",
                        action_name(&op.action),
                        map.key(),
                        cut(&key)
                    ));
                };
                if !op.pred.is_empty() {
                    return Err(format!(
                        "overwrites {}.{}: history is append-only",
                        map.key(),
                        cut(&key)
                    ));
                }
                if value.len() > map.max_bytes() {
                    return Err(format!(
                        "adds {} bytes to {} (at most {})",
                        value.len(),
                        map.key(),
                        map.max_bytes()
                    ));
                }
                if entry_key(value) != key {
                    return Err(format!(
                        "files an entry of {} under {}, not under its SHA-256",
                        map.key(),
                        cut(&key)
                    ));
                }
                self.history(*map, value, author)
                    .map_err(|e| format!("{} entry {}: {e}", map.key(), cut(&key)))
            }
        }
    }

    fn capability_field(&self, cap: &str, field: &str, action: &OpType) -> Result<(), String> {
        let known = field == "name"
            || field == "status"
            || field == "dependencies"
            || PLAIN_FIELDS.contains(&field)
            || TEXT_LISTS.contains(&field);
        if !known {
            return Err(format!("writes unknown field {cap}.{}", cut(field)));
        }
        match action {
            OpType::Put(ScalarValue::Str(v)) => {
                if v.len() > MAX_TEXT_BYTES {
                    return Err(format!("writes {} bytes into {cap}.{field}", v.len()));
                }
                let exists = |set: &BTreeSet<String>| v.is_empty() || set.contains(v.as_str());
                let ok = match field {
                    "status" => v.parse::<Status>().is_ok(),
                    "domain" => !v.is_empty() && self.domains.contains(v.as_str()),
                    "working_group" => exists(&self.working_groups),
                    "lead_jurisdiction" => exists(&self.jurisdictions),
                    "name" | "dependencies" => false,
                    f => !TEXT_LISTS.contains(&f),
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!("sets {cap}.{field} to {:?}", cut(v)))
                }
            }
            OpType::Make(ObjType::Text) if field == "name" => Ok(()),
            OpType::Make(ObjType::List)
                if field == "dependencies" || TEXT_LISTS.contains(&field) =>
            {
                Ok(())
            }
            other => Err(format!("{}s {cap}.{field}", action_name(other))),
        }
    }

    /// Content rules of the history maps.
    fn history(&mut self, map: History, value: &[u8], author: Author<'_>) -> Result<(), String> {
        match map {
            History::Statements => {
                let kind = Statement::from_payload(value).map_err(|e| e.to_string())?;
                let class = match &kind {
                    StatementKind::Release { artifacts, .. } => {
                        if artifacts.len() > self.limits.max_artifacts_per_release {
                            return Err(format!(
                                "names {} artifacts (at most {} per release)",
                                artifacts.len(),
                                self.limits.max_artifacts_per_release
                            ));
                        }
                        if self.releases >= self.limits.max_releases {
                            return Err(format!(
                                "the catalogue already holds {} releases (at most {})",
                                self.releases, self.limits.max_releases
                            ));
                        }
                        self.releases += 1;
                        StatementClass::Release
                    }
                    _ => {
                        let target = kind
                            .names_release()
                            .ok_or("names no release by its digest")?;
                        if self.class(&target) != Some(StatementClass::Release) {
                            return Err(format!(
                                "a {} of release {}, which the catalogue does not hold",
                                kind.name(),
                                target.short()
                            ));
                        }
                        StatementClass::About
                    }
                };
                let id = ReleaseId::of_payload(value);
                self.new_statements.insert(id, (class, value.to_vec()));
                self.added.statements.push((id, class));
                Ok(())
            }
            History::Signatures => {
                let a = Approval::parse(value)?;
                let payload = self.payload(&a.statement).ok_or_else(|| {
                    format!(
                        "signs statement {}, which the catalogue does not hold",
                        a.statement.short()
                    )
                })?;
                let (key, principal, role) = self.chain.any_key(&a.keyid).ok_or_else(|| {
                    format!(
                        "is by key {}, which no root of the chain lists",
                        a.keyid.short()
                    )
                })?;
                if role == Role::Node {
                    return Err(format!(
                        "is by {principal}'s node key; node keys do not approve statements"
                    ));
                }
                if !key.verify(&pae(PAYLOAD_TYPE_IN_TOTO, &payload), &a.sig) {
                    return Err(format!(
                        "{principal}'s {role} signature does not verify over statement {}",
                        a.statement.short()
                    ));
                }
                Ok(())
            }
            History::Notes => {
                let (env, note) = Note::parse(value).map_err(|e| e.to_string())?;
                if &note.jurisdiction != author.principal {
                    return Err(format!(
                        "a node of {} writes a note that speaks for {}",
                        author.principal, note.jurisdiction
                    ));
                }
                let signed = env
                    .signatures
                    .iter()
                    .any(|s| author.key.verify(&env.pae(), &s.sig));
                if !signed {
                    return Err("the note is not signed by the node key that writes it".into());
                }
                if self.class(&note.release) != Some(StatementClass::Release) {
                    return Err(format!(
                        "names release {}, which the catalogue does not hold",
                        note.release.short()
                    ));
                }
                Ok(())
            }
            History::Roots => {
                let advanced = self.chain.extend(value).map_err(|e| e.to_string())?;
                if advanced {
                    self.added.roots.push(self.chain.current().version());
                }
                Ok(())
            }
            History::Checkpoints => {
                let (env, c) =
                    accord_protocol::AuditCheckpoint::parse(value).map_err(|e| e.to_string())?;
                if &c.jurisdiction != author.principal {
                    return Err(format!(
                        "a node of {} writes an audit checkpoint for {}",
                        author.principal, c.jurisdiction
                    ));
                }
                if !env
                    .signatures
                    .iter()
                    .any(|s| author.key.verify(&env.pae(), &s.sig))
                {
                    return Err(
                        "the checkpoint is not signed by the node key that writes it".into(),
                    );
                }
                Ok(())
            }
            History::Acks => {
                let ack = Ack::parse(value)?;
                if &ack.jurisdiction != author.principal {
                    return Err(format!(
                        "a node of {} records a root adoption for {}",
                        author.principal, ack.jurisdiction
                    ));
                }
                let root = self
                    .chain
                    .get(ack.root)
                    .ok_or_else(|| format!("names root v{}, which the chain lacks", ack.root))?;
                if hex::encode(root.envelope().payload_digest()) != ack.root_sha256 {
                    return Err(format!(
                        "names a root v{} that is not the chain's",
                        ack.root
                    ));
                }
                Ok(())
            }
        }
    }

    fn class(&self, id: &ReleaseId) -> Option<StatementClass> {
        self.new_statements
            .get(id)
            .map(|(c, _)| *c)
            .or_else(|| self.known.get(id).copied())
    }

    fn payload(&self, id: &ReleaseId) -> Option<Vec<u8>> {
        if let Some((_, p)) = self.new_statements.get(id) {
            return Some(p.clone());
        }
        crate::schema::history_value(self.doc, History::Statements, &id.hex())
    }
}

/// The zone of an object the document already holds, found from its path.
pub(crate) fn existing_zone(doc: &Automerge, counter: u64, actor: &[u8]) -> Result<Zone, String> {
    let missing = || {
        format!(
            "writes to object {counter}@{} which does not exist",
            hex::encode(actor)
        )
    };
    let exid = doc
        .import_obj(&format!("{counter}@{}", hex::encode(actor)))
        .map_err(|_| missing())?;
    let path = doc.parents(&exid).map_err(|_| missing())?.path();
    let names: Vec<String> = path
        .iter()
        .map(|(_, p)| match p {
            Prop::Map(m) => m.clone(),
            Prop::Seq(i) => i.to_string(),
        })
        .collect();
    Ok(match names.as_slice() {
        [top] => match History::from_key(top) {
            Some(h) => Zone::History(h),
            None => Zone::Frozen(top.clone()),
        },
        [top, cap] if top == "capabilities" => Zone::Capability(cap.clone()),
        [top, cap, field, ..] if top == "capabilities" => Zone::CapabilityContent {
            capability: cap.clone(),
            field: field.clone(),
        },
        _ => Zone::Frozen(names.join(".")),
    })
}

fn action_name(a: &OpType) -> &'static str {
    match a {
        OpType::Make(_) => "create",
        OpType::Delete => "delete",
        OpType::Increment(_) => "increment",
        OpType::Put(_) => "put",
        OpType::MarkBegin(_) | OpType::MarkEnd(_) => "mark",
    }
}

/// Cuts peer-supplied text for an error message, on character boundaries.
fn cut(s: &str) -> String {
    let mut out: String = s.chars().take(24).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// The statement classes of everything the document's `statements` map holds.
pub fn index(doc: &Automerge) -> HashMap<ReleaseId, StatementClass> {
    let mut out = HashMap::new();
    let Ok(Some((Value::Object(ObjType::Map), obj))) = doc.get(ROOT, History::Statements.key())
    else {
        return out;
    };
    for k in doc.keys(&obj) {
        if let Some(v) = crate::schema::history_value(doc, History::Statements, &k)
            && let Ok(kind) = Statement::from_payload(&v)
        {
            let class = match kind {
                StatementKind::Release { .. } => StatementClass::Release,
                _ => StatementClass::About,
            };
            out.insert(ReleaseId::of_payload(&v), class);
        }
    }
    out
}
