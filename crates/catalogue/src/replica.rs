//! `Replica`: the catalogue's sans-I/O sync state machine.
//!
//! Inputs are local edits, bytes from peers, roots and the time; outputs are bytes for
//! peers and a `Delta` of what to persist. No sockets, no files, no clock: the node and the
//! simulations drive the same code.
//!
//! Receiving is all or nothing, and nothing is applied before it is verified. For a
//! message's new changes, in causal order: every dependency is here or in the message
//! (nothing waits in Automerge's queue), the author is a node key of the root chain, each
//! author's newest change carries the author's signature and covers the others, a retired
//! key's changes are vouched for by a current key's change (ADR 0005 §4), and every
//! operation is one its author may write (`authority`). Only then are the changes applied,
//! to a copy that replaces the document.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use accord_protocol::{PrincipalId, ReleaseId, Timestamp};
use accord_trust::{KeyStanding, RootChain, SecretKey};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};

use crate::authority::{self, Author, Checker, StatementClass};
use crate::error::{CatalogueError, Refusal};
use crate::limits::Limits;
use crate::records::{Ack, History};
use crate::signing;
use crate::wire::WireMessage;

/// Largest sync message accepted or produced (a whole 10,000-change catalogue is ~0.2 MB).
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;
/// Most new changes one message may bring.
pub const MAX_CHANGES_PER_MESSAGE: usize = 50_000;

/// A change to persist: its bytes and its author's signature (`None` only for genesis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChange {
    pub hash: [u8; 32],
    pub bytes: Vec<u8>,
    pub signature: Option<[u8; 64]>,
}

/// What an operation asks the caller to persist, in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub changes: Vec<StoredChange>,
    /// Per-peer sync state (Automerge's encoded `sync::State`) for cheap reconnects.
    pub peer_states: Vec<(String, Vec<u8>)>,
    /// Roots the chain gained, oldest first: (version, envelope bytes).
    pub roots: Vec<(u64, Vec<u8>)>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.peer_states.is_empty() && self.roots.is_empty()
    }

    fn extend(&mut self, other: Delta) {
        self.changes.extend(other.changes);
        self.peer_states.extend(other.peer_states);
        self.roots.extend(other.roots);
    }
}

/// What a node keeps durably, handed back at start.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The compacted document (at least the genesis).
    pub snapshot: Option<Vec<u8>>,
    /// Changes since the snapshot.
    pub changes: Vec<StoredChange>,
    /// Signatures of every signed change, compacted ones included (they are relayed).
    pub signatures: Vec<([u8; 32], [u8; 64])>,
    pub peer_states: BTreeMap<String, Vec<u8>>,
}

pub struct Replica {
    doc: Automerge,
    key: SecretKey,
    actor: ActorId,
    chain: RootChain,
    genesis: ChangeHash,
    signatures: HashMap<ChangeHash, [u8; 64]>,
    /// What each statement in the document is (recalls must name a release, and so on).
    statements: HashMap<ReleaseId, StatementClass>,
    /// Live sync state per connected peer.
    peers: HashMap<String, sync::State>,
    /// Persisted states of peers not connected now.
    saved_peers: BTreeMap<String, Vec<u8>>,
    /// Per peer, dependencies its last message lacked: our next message asks for them by
    /// name. Its Bloom filter of what we hold can be wrong (a false positive makes it
    /// leave a change out), and the same filter is wrong the same way every time, so
    /// asking it to reset alone would loop for ever.
    missing: HashMap<String, Vec<ChangeHash>>,
    limits: Limits,
    /// Operations the document holds (for `Limits::max_document_ops`).
    ops: u64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("node", self.key.id())
            .field("root", &self.chain.current().version())
            .field("heads", &self.doc.get_heads().len())
            .finish()
    }
}

/// The new changes of one message, checked and in causal order.
struct Checked {
    changes: Vec<Change>,
    signatures: HashMap<ChangeHash, [u8; 64]>,
    chain: RootChain,
    added: authority::Added,
}

impl Replica {
    /// Opens a replica from what is stored: `stored.snapshot` is the base document (the
    /// genesis document right after `accord init`), `genesis` the hash this node computed
    /// for the cooperative's genesis change, `chain` the roots this node trusts.
    pub fn open(
        genesis: ChangeHash,
        stored: Stored,
        key: SecretKey,
        chain: RootChain,
    ) -> Result<Replica, CatalogueError> {
        let actor = signing::actor_of(key.public());
        let snapshot = stored
            .snapshot
            .as_deref()
            .ok_or_else(|| CatalogueError::Damaged("no stored catalogue snapshot".into()))?;
        let mut doc = Automerge::load(snapshot)?;
        if doc.get_change_by_hash(&genesis).is_none() {
            return Err(CatalogueError::Damaged(
                "the stored catalogue does not descend from this cooperative's genesis".into(),
            ));
        }
        let schema = match doc.get(automerge::ROOT, "schema") {
            Ok(Some((automerge::Value::Scalar(s), _))) => s.to_string(),
            _ => String::new(),
        };
        if schema.trim_matches('"') != crate::schema::SCHEMA {
            return Err(CatalogueError::Damaged(format!(
                "the stored catalogue is {schema}, this Accord reads {}; initialise a new data directory (ADR 0005)",
                crate::schema::SCHEMA
            )));
        }
        let mut signatures: HashMap<ChangeHash, [u8; 64]> = stored
            .signatures
            .iter()
            .map(|(h, s)| (ChangeHash(*h), *s))
            .collect();
        let mut joined = Vec::new();
        for c in &stored.changes {
            joined.extend_from_slice(&c.bytes);
            if let Some(s) = c.signature {
                signatures.insert(ChangeHash(c.hash), s);
            }
        }
        doc.load_incremental(&joined)?;
        doc.set_actor(actor.clone());
        let statements = authority::index(&doc);
        let ops = doc.get_changes(&[]).iter().map(|c| c.len() as u64).sum();
        Ok(Replica {
            doc,
            key,
            actor,
            chain,
            genesis,
            signatures,
            statements,
            peers: HashMap::new(),
            saved_peers: stored.peer_states,
            missing: HashMap::new(),
            limits: Limits::default(),
            ops,
        })
    }

    /// Sets what a message, a change and the document may cost.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Operations the document holds.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The genesis change every node's document starts from.
    pub fn genesis(&self) -> ChangeHash {
        self.genesis
    }

    /// The chain's current root.
    pub fn root(&self) -> &accord_trust::TrustedRoot {
        self.chain.current()
    }

    pub fn chain(&self) -> &RootChain {
        &self.chain
    }

    /// Whether `key` is this node's own key.
    pub fn is_own_key(&self, key: &accord_trust::PublicKey) -> bool {
        key.id() == self.key.id()
    }

    /// This node's jurisdiction and key under the current root, or `None` once a root has
    /// removed the key (the node may no longer write).
    pub fn me(&self) -> Option<PrincipalId> {
        match self.chain.node_key(self.key.id()) {
            Some(KeyStanding::Current { principal, .. }) => Some(principal.clone()),
            _ => None,
        }
    }

    /// Makes a local edit as one signed change. The change passes the same authority check
    /// a peer will apply to it; an error from `f` or from that check leaves the document
    /// untouched.
    pub fn edit<F>(&mut self, now: i64, message: &str, f: F) -> Result<Delta, CatalogueError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), CatalogueError>,
    {
        let Some(me) = self.me() else {
            return Err(CatalogueError::Retired {
                version: self.chain.current().version(),
            });
        };
        let mut scratch = self.doc.fork();
        // This change's own actor (ADR 0008).
        let nonce = signing::change_nonce(&self.doc.get_heads(), now, message);
        scratch.set_actor(signing::change_actor(self.key.public(), nonce));
        let result = scratch
            .transact_with(
                |_| {
                    CommitOptions::default()
                        .with_message(message)
                        .with_time(now)
                },
                f,
            )
            .map_err(|failure| failure.error)?;
        let Some(hash) = result.hash else {
            return Ok(Delta::default());
        };
        let change = scratch
            .get_change_by_hash(&hash)
            .ok_or_else(|| CatalogueError::Damaged("committed change not found".into()))?;
        let ops = change.len() as u64;
        if ops > self.limits.max_ops_per_change
            || self.ops.saturating_add(ops) > self.limits.max_document_ops
        {
            return Err(CatalogueError::InvalidValue {
                field: "edit".into(),
                detail: format!(
                    "{ops} operations: over the limit of {} per change, or the catalogue's {} in all",
                    self.limits.max_ops_per_change, self.limits.max_document_ops
                ),
            });
        }
        let mut checker = Checker::new(&self.doc, self.chain.clone(), &self.statements);
        checker.limits = self.limits;
        checker
            .check(
                &change,
                Author {
                    principal: &me,
                    key: self.key.public(),
                },
            )
            .map_err(|reason| CatalogueError::InvalidValue {
                field: "edit".into(),
                detail: format!("peers would refuse it: {reason}"),
            })?;
        let Checker { chain, added, .. } = checker;
        let signature = signing::sign(&self.key, &hash);
        self.signatures.insert(hash, signature);
        let roots = self.adopt(chain, &added);
        self.doc = scratch;
        self.ops += change.len() as u64;
        Ok(Delta {
            changes: vec![StoredChange {
                hash: hash.0,
                bytes: change.raw_bytes().to_vec(),
                signature: Some(signature),
            }],
            peer_states: Vec::new(),
            roots,
        })
    }

    /// Installs the next root (verified by the TUF rules against the current one), records
    /// it in the catalogue and acknowledges it, in one change. Refuses a root that no
    /// longer lists this node's key: that node would be retired by its own hand.
    pub fn adopt_root(&mut self, bytes: &[u8], now: i64) -> Result<Delta, CatalogueError> {
        let mut next = self.chain.clone();
        let advanced = next
            .extend(bytes)
            .map_err(|e| CatalogueError::InvalidValue {
                field: "root".into(),
                detail: e.to_string(),
            })?;
        if !advanced {
            return Err(CatalogueError::InvalidValue {
                field: "root".into(),
                detail: format!(
                    "root v{} is already installed (current is v{})",
                    accord_trust::TrustedRoot::inspect(bytes)
                        .map(|r| r.version())
                        .unwrap_or(0),
                    self.chain.current().version()
                ),
            });
        }
        if !matches!(
            next.node_key(self.key.id()),
            Some(KeyStanding::Current { .. })
        ) {
            return Err(CatalogueError::InvalidValue {
                field: "root".into(),
                detail: format!(
                    "root v{} no longer lists this node's key as a node key; refusing to install it here",
                    next.current().version()
                ),
            });
        }
        let version = next.current().version();
        let entry = bytes.to_vec();
        let ack = self.ack_for(&next, now)?;
        self.edit(now, &format!("adopt root v{version}"), |tx| {
            crate::edit::add_history(tx, History::Roots, &entry)?;
            crate::edit::add_history(tx, History::Acks, &ack)?;
            Ok(())
        })
    }

    /// Records what the catalogue lacks of this node's own standing: the roots of its chain
    /// and its acknowledgement of the current root. After `accord init` under a newer root,
    /// after an offline root install, and after a root arrived in a message.
    pub fn owed(&mut self, now: i64) -> Result<Delta, CatalogueError> {
        let Some(me) = self.me() else {
            return Ok(Delta::default());
        };
        let (cat, _) = crate::schema::read(&self.doc);
        let recorded: HashSet<[u8; 32]> = cat
            .roots
            .iter()
            .filter_map(|r| accord_trust::TrustedRoot::inspect(&r.value).ok())
            .map(|r| r.envelope().payload_digest())
            .collect();
        let missing: Vec<Vec<u8>> = self
            .chain
            .roots()
            .iter()
            .filter(|r| !recorded.contains(&r.envelope().payload_digest()))
            .map(|r| r.envelope().to_json())
            .collect();
        let current = self.chain.current();
        let digest = hex::encode(current.envelope().payload_digest());
        let acked = cat.acks.iter().any(|a| {
            a.value.jurisdiction == me
                && a.value.root == current.version()
                && a.value.root_sha256 == digest
        });
        if missing.is_empty() && acked {
            return Ok(Delta::default());
        }
        let ack = (!acked)
            .then(|| self.ack_for(&self.chain, now))
            .transpose()?;
        let version = current.version();
        self.edit(now, &format!("root v{version} recorded"), |tx| {
            for r in &missing {
                crate::edit::add_history(tx, History::Roots, r)?;
            }
            if let Some(a) = &ack {
                crate::edit::add_history(tx, History::Acks, a)?;
            }
            Ok(())
        })
    }

    fn ack_for(&self, chain: &RootChain, now: i64) -> Result<Vec<u8>, CatalogueError> {
        let jurisdiction = match chain.node_key(self.key.id()) {
            Some(s) => s.principal().clone(),
            None => {
                return Err(CatalogueError::Retired {
                    version: chain.current().version(),
                });
            }
        };
        Ok(Ack {
            root: chain.current().version(),
            root_sha256: hex::encode(chain.current().envelope().payload_digest()),
            jurisdiction,
            at: Timestamp::from_unix(now),
        }
        .to_bytes())
    }

    /// Adopts a chain a checked change extended; returns the roots to persist.
    fn adopt(&mut self, chain: RootChain, added: &authority::Added) -> Vec<(u64, Vec<u8>)> {
        for (id, class) in &added.statements {
            self.statements.insert(*id, *class);
        }
        let roots = added
            .roots
            .iter()
            .filter_map(|v| chain.get(*v))
            .map(|r| (r.version(), r.envelope().to_json()))
            .collect();
        self.chain = chain;
        roots
    }

    /// A peer connected: resume from its persisted state so history is not resent.
    pub fn connect(&mut self, peer: &str) {
        let state = self
            .saved_peers
            .get(peer)
            .and_then(|b| sync::State::decode(b).ok())
            .unwrap_or_default();
        self.peers.insert(peer.to_owned(), state);
    }

    /// Our last message to `peer` was lost (the request failed or timed out). Automerge
    /// believes it arrived and is waiting for an answer, and would say nothing more; start
    /// the conversation again from what both sides are known to share, as after a restart.
    pub fn message_lost(&mut self, peer: &str) {
        if let Some(state) = self.peers.get_mut(peer) {
            *state = sync::State::decode(&state.encode()).unwrap_or_default();
        }
    }

    /// `peer` announced these heads. If any is not here, the next message to that peer asks
    /// for them: Automerge only speaks when it believes the peer's heads differ from ours,
    /// and without this it would wait for the peer to speak first. Returns whether there is
    /// anything to ask for. The heads are unverified gossip: a peer that lies only gets
    /// asked for what it does not have, an exchange its sync budget pays for.
    pub fn heard_heads(&mut self, peer: &str, heads: &[ChangeHash]) -> bool {
        if heads
            .iter()
            .all(|h| self.doc.get_change_meta_by_hash(h).is_some())
        {
            return false;
        }
        if !self.peers.contains_key(peer) {
            self.connect(peer);
        }
        match self.peers.get_mut(peer) {
            Some(state) => {
                state.their_heads = Some(heads.to_vec());
                true
            }
            None => false,
        }
    }

    /// A peer went away: returns its state to persist.
    pub fn disconnect(&mut self, peer: &str) -> Delta {
        let Some(state) = self.peers.remove(peer) else {
            return Delta::default();
        };
        let bytes = state.encode();
        self.saved_peers.insert(peer.to_owned(), bytes.clone());
        Delta {
            peer_states: vec![(peer.to_owned(), bytes)],
            ..Delta::default()
        }
    }

    /// The next message for `peer`, if there is anything to say.
    pub fn generate_message(&mut self, peer: &str) -> Option<Vec<u8>> {
        if !self.peers.contains_key(peer) {
            self.connect(peer);
        }
        let state = self.peers.get_mut(peer)?;
        // Only changes travel, never a whole (compressed) document: a peer can then bound
        // what a message costs before loading it (`chunks::change_ops`).
        if let Some(caps) = state.their_capabilities.as_mut() {
            caps.retain(|c| *c != sync::Capability::MessageV2);
        }
        let before = state.sent_hashes.clone();
        let mut msg = self.doc.generate_sync_message(state)?;
        if let Some(lacking) = self.missing.remove(peer) {
            // Automerge encodes hash lists sorted.
            msg.need.extend(lacking);
            msg.need.sort();
            msg.need.dedup();
        }
        // One signature per author covers all of that author's changes in the message: an
        // author's changes are hash-linked (each depends on its previous one), so the
        // signature over the newest one authenticates its ancestors (ADR 0003).
        let sent: Vec<ChangeHash> = state.sent_hashes.difference(&before).copied().collect();
        let mut signatures: Vec<[u8; 64]> = self
            .newest_by_author(&sent)
            .into_iter()
            .filter_map(|h| self.signatures.get(&h).copied())
            .collect();
        signatures.sort();
        signatures.truncate(crate::wire::MAX_SIGNATURES);
        let wire = WireMessage {
            sync: msg.encode(),
            signatures,
        };
        let bytes = wire.encode();
        if bytes.len() > MAX_MESSAGE_BYTES {
            tracing::warn!(
                peer,
                size = bytes.len(),
                "sync message exceeds the limit; not sent"
            );
            return None;
        }
        Some(bytes)
    }

    /// Applies a message from `peer`, all or nothing. `now` stamps the acknowledgement this
    /// node writes when the message brings a new root.
    pub fn receive_message(
        &mut self,
        peer: &str,
        bytes: &[u8],
        now: i64,
    ) -> Result<Delta, CatalogueError> {
        let refuse = |kind: Refusal, reason: String| CatalogueError::Refused {
            peer: peer.to_owned(),
            reason,
            kind,
        };
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(refuse(
                Refusal::Violation,
                format!(
                    "{} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        let wire = WireMessage::decode(bytes, peer)?;
        let msg = sync::Message::decode(&wire.sync).map_err(|e| {
            refuse(
                Refusal::Violation,
                format!("not an Automerge sync message: {e}"),
            )
        })?;
        if !self.peers.contains_key(peer) {
            self.connect(peer);
        }
        let mut state = self.peers.get(peer).cloned().unwrap_or_default();

        let new = self
            .new_changes(&msg)
            .map_err(|r| refuse(Refusal::Violation, r))?;
        let mut delta = Delta::default();
        if new.is_empty() {
            self.doc
                .receive_sync_message(&mut state, msg)
                .map_err(|e| refuse(Refusal::Violation, format!("rejected by Automerge: {e}")))?;
        } else {
            // Dependencies: here already, or in the message. Nothing waits in a queue.
            let lacking = self.lacking(&new);
            let checked = match lacking.first() {
                Some((c, d)) => Err((
                    Refusal::Unverifiable,
                    format!(
                        "change {} depends on {}, which neither this node nor the message has",
                        hex::encode(&c.0[..6]),
                        hex::encode(&d.0[..6])
                    ),
                )),
                None => self.check(new, &wire.signatures),
            };
            let checked = match checked {
                Ok(c) => c,
                Err((Refusal::Unverifiable, reason)) => {
                    // An honest peer can send this (a Bloom-filter false positive left a
                    // dependency out, or it is behind on roots). Keep nothing of its
                    // changes, but learn its heads and ask it to reset, and ask for what
                    // was missing by name, so it resends everything that is needed.
                    if !lacking.is_empty() {
                        let mut need: Vec<ChangeHash> = lacking.iter().map(|(_, d)| *d).collect();
                        need.sort();
                        need.dedup();
                        need.truncate(256);
                        self.missing.insert(peer.to_owned(), need);
                    }
                    let mut bare = msg;
                    bare.changes = sync::ChunkList::from(Vec::<Vec<u8>>::new());
                    if self.doc.receive_sync_message(&mut state, bare).is_ok() {
                        state.needs_reset = true;
                        self.peers.insert(peer.to_owned(), state);
                    }
                    return Err(refuse(Refusal::Unverifiable, reason));
                }
                Err((kind, reason)) => return Err(refuse(kind, reason)),
            };
            let mut scratch = self.doc.fork();
            scratch.set_actor(self.actor.clone());
            scratch
                .apply_changes(checked.changes.iter().cloned())
                .map_err(|e| refuse(Refusal::Violation, format!("changes do not apply: {e}")))?;
            scratch
                .receive_sync_message(&mut state, msg)
                .map_err(|e| refuse(Refusal::Violation, format!("rejected by Automerge: {e}")))?;
            // Everything checked is in, and nothing unchecked came with it.
            if checked
                .changes
                .iter()
                .any(|c| scratch.get_change_by_hash(&c.hash()).is_none())
                || !scratch.get_missing_deps(&[]).is_empty()
                || self.doc.get_changes_added(&scratch).len() != checked.changes.len()
            {
                return Err(refuse(
                    Refusal::Violation,
                    "the message's changes did not apply as checked".into(),
                ));
            }
            self.doc = scratch;
            self.ops += checked.changes.iter().map(|c| c.len() as u64).sum::<u64>();
            for (h, s) in &checked.signatures {
                self.signatures.insert(*h, *s);
            }
            delta.roots = self.adopt(checked.chain, &checked.added);
            for change in &checked.changes {
                let hash = change.hash();
                delta.changes.push(StoredChange {
                    hash: hash.0,
                    bytes: change.raw_bytes().to_vec(),
                    signature: checked.signatures.get(&hash).copied(),
                });
            }
        }
        self.peers.insert(peer.to_owned(), state);
        if !delta.roots.is_empty() {
            // A root arrived: say so in the catalogue (this also vouches for the changes of
            // keys it retired that this node holds).
            let owed = self.owed(now)?;
            delta.extend(owed);
        }
        Ok(delta)
    }

    /// The changes a message brings that the document lacks, each once. What they cost is
    /// counted from their headers and column encodings before Automerge parses them: only
    /// plain change chunks are accepted, each and all within the limits.
    fn new_changes(&self, msg: &sync::Message) -> Result<Vec<Change>, String> {
        let mut out: Vec<Change> = Vec::new();
        let mut seen = HashSet::new();
        let mut ops: u64 = 0;
        for list in msg.changes.iter() {
            for (kind, chunk) in crate::chunks::split(list)? {
                if kind != crate::chunks::Kind::Change {
                    return Err(
                        "whole documents and compressed changes are not accepted from peers".into(),
                    );
                }
                let n = crate::chunks::change_ops(chunk, self.limits.max_ops_per_change)?;
                ops = ops
                    .checked_add(n)
                    .filter(|t| *t <= self.limits.max_ops_per_message)
                    .ok_or_else(|| {
                        format!(
                            "more than {} operations in one message",
                            self.limits.max_ops_per_message
                        )
                    })?;
                if out.len() >= MAX_CHANGES_PER_MESSAGE {
                    return Err(format!(
                        "more than {MAX_CHANGES_PER_MESSAGE} changes in one message"
                    ));
                }
                let c = Change::from_bytes(chunk.to_vec())
                    .map_err(|e| format!("a change does not parse: {e}"))?;
                if self.doc.get_change_by_hash(&c.hash()).is_none() && seen.insert(c.hash()) {
                    out.push(c);
                }
            }
        }
        let new_ops: u64 = out.iter().map(|c| c.len() as u64).sum();
        if self.ops.saturating_add(new_ops) > self.limits.max_document_ops {
            return Err(format!(
                "the catalogue would hold more than {} operations (the configured limit)",
                self.limits.max_document_ops
            ));
        }
        Ok(out)
    }

    /// (change, dependency) for every dependency of the new changes that neither this node
    /// nor the message has.
    fn lacking(&self, new: &[Change]) -> Vec<(ChangeHash, ChangeHash)> {
        let hashes: HashSet<ChangeHash> = new.iter().map(Change::hash).collect();
        new.iter()
            .flat_map(|c| c.deps().iter().map(move |d| (c.hash(), *d)))
            .filter(|(_, d)| !hashes.contains(d) && self.doc.get_change_by_hash(d).is_none())
            .collect()
    }

    /// Verifies a message's new changes before any is applied (see the module docs); the
    /// caller has found every dependency here or in the message (`lacking`).
    fn check(&self, new: Vec<Change>, attached: &[[u8; 64]]) -> Result<Checked, (Refusal, String)> {
        let violation = |r: String| (Refusal::Violation, r);
        let short = |h: &ChangeHash| hex::encode(&h.0[..6]);
        let order = causal_order(new);

        // Authors and write authority, in causal order: roots an earlier change adds count
        // for the changes after it.
        let mut checker = Checker::new(&self.doc, self.chain.clone(), &self.statements);
        let owned =
            |chain: &RootChain| -> HashMap<[u8; 16], (PrincipalId, accord_trust::PublicKey)> {
                signing::authors(chain)
                    .into_iter()
                    .map(|(a, s)| (a, (s.principal().clone(), s.key().clone())))
                    .collect()
            };
        let mut known_authors = owned(&checker.chain);
        let mut known_version = checker.chain.current().version();
        for c in &order {
            if checker.chain.current().version() != known_version {
                known_authors = owned(&checker.chain);
                known_version = checker.chain.current().version();
            }
            let actor = c.actor_id().to_bytes();
            if c.hash() == self.genesis || actor == crate::genesis::GENESIS_ACTOR {
                return Err(violation(format!(
                    "change {} claims the genesis actor but is not this cooperative's genesis",
                    short(&c.hash())
                )));
            }
            let standing = signing::author_prefix(actor).and_then(|a| known_authors.get(&a));
            let Some((principal, key)) = standing else {
                return Err(violation(format!(
                    "change {} is by actor {}, which is no node key of any root up to v{}",
                    short(&c.hash()),
                    hex::encode(actor),
                    checker.chain.current().version()
                )));
            };
            checker
                .check(c, Author { principal, key })
                .map_err(violation)?;
        }

        // Signatures: per author, each change that no other change of the same author in
        // the message descends from carries one, and together they cover the others. An
        // honest node's changes form one line (each is made on everything before it), so
        // that is one signature per author; a key that equivocates needs one per branch,
        // and each branch is checked on its own (ADR 0008).
        let by_hash: HashMap<ChangeHash, &Change> = order.iter().map(|c| (c.hash(), c)).collect();
        let mut by_author: BTreeMap<[u8; 16], Vec<&Change>> = BTreeMap::new();
        for c in &order {
            if let Some(a) = signing::author_prefix(c.actor_id().to_bytes()) {
                by_author.entry(a).or_default().push(c);
            }
        }
        let tips = author_tips(&order);
        let authors = signing::authors(&checker.chain);
        let mut keep = HashMap::new();
        let mut current_changes: Vec<ChangeHash> = Vec::new();
        let mut retired: Vec<(ChangeHash, String)> = Vec::new();
        for (actor, changes) in &by_author {
            let Some(standing) = authors.get(actor) else {
                return Err(violation(format!(
                    "actor {} is no node key of root v{}",
                    hex::encode(actor),
                    checker.chain.current().version()
                )));
            };
            let mut signed = Vec::new();
            for tip in changes.iter().filter(|c| tips.contains(&c.hash())) {
                let hash = tip.hash();
                let sig = self
                    .signatures
                    .get(&hash)
                    .into_iter()
                    .chain(attached.iter())
                    .find(|s| signing::verify(standing.key(), &hash, s))
                    .copied()
                    .ok_or_else(|| {
                        violation(format!(
                            "change {} by {}'s node key {} arrived without a valid signature",
                            short(&hash),
                            standing.principal(),
                            standing.key().id().short()
                        ))
                    })?;
                keep.insert(hash, sig);
                signed.push(hash);
            }
            if signed.len() > 1 {
                tracing::warn!(
                    author = %standing.principal(),
                    key = %standing.key().id().short(),
                    branches = signed.len(),
                    "a node key signed changes on parallel branches (equivocation); both kept, both attributable"
                );
            }
            let covered = ancestors(&signed, &by_hash);
            if let Some(stray) = changes.iter().find(|c| !covered.contains(&c.hash())) {
                return Err(violation(format!(
                    "change {} is not covered by its author's signature (not an ancestor of a signed change)",
                    short(&stray.hash()),
                )));
            }
            for c in changes {
                match standing {
                    KeyStanding::Current { .. } => current_changes.push(c.hash()),
                    KeyStanding::Retired { principal, key, .. } => retired.push((
                        c.hash(),
                        format!("{principal}'s retired node key {}", key.id().short()),
                    )),
                }
            }
        }

        // A retired key's changes count only when a current key's change vouches for them.
        if !retired.is_empty() {
            let vouched = ancestors(&current_changes, &by_hash);
            if let Some((h, who)) = retired.iter().find(|(h, _)| !vouched.contains(h)) {
                return Err((
                    Refusal::Unverifiable,
                    format!(
                        "change {} by {who} is vouched for by no current node key (made after its key was retired, or sent by a node on an older root)",
                        short(h)
                    ),
                ));
            }
        }
        let Checker { chain, added, .. } = checker;
        Ok(Checked {
            changes: order,
            signatures: keep,
            chain,
            added,
        })
    }

    /// For each author among `hashes`, the changes no other of its changes there descends
    /// from (one for an honest author): their signatures cover the others.
    fn newest_by_author(&self, hashes: &[ChangeHash]) -> Vec<ChangeHash> {
        let changes: Vec<Change> = hashes
            .iter()
            .filter_map(|h| self.doc.get_change_by_hash(h))
            .collect();
        let order = causal_order(changes);
        author_tips(&order).into_iter().collect()
    }

    /// The whole document in Automerge's standard binary format (`catalogue export`, and
    /// the snapshot for compaction).
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// Signatures of every signed change, for persisting after a compaction.
    pub fn signatures(&self) -> impl Iterator<Item = (&ChangeHash, &[u8; 64])> {
        self.signatures.iter()
    }
}

/// Every change of `doc` that `since` does not already hold (all but the genesis when
/// `since` is empty), as one message a replica takes like a peer's (an offline bundle,
/// issue 16): in causal order, with the signature that covers each author's changes,
/// from `signatures` (what a node stores). A change whose author's signature is not
/// stored cannot be carried: the export refuses rather than send what every node refuses.
pub fn export_message(
    doc: &Automerge,
    genesis: ChangeHash,
    signatures: &HashMap<ChangeHash, [u8; 64]>,
    since: &[ChangeHash],
) -> Result<Vec<u8>, CatalogueError> {
    // What the receiver holds: `since` and everything it depends on.
    let mut held: HashSet<ChangeHash> = HashSet::new();
    let mut stack: Vec<ChangeHash> = since.to_vec();
    while let Some(h) = stack.pop() {
        if !held.insert(h) {
            continue;
        }
        let c = doc.get_change_by_hash(&h).ok_or_else(|| {
            CatalogueError::Damaged(format!(
                "change {} is not in this document",
                hex::encode(&h.0[..6])
            ))
        })?;
        stack.extend(c.deps().iter().copied());
    }
    let changes: Vec<Change> = doc
        .get_changes(&[])
        .into_iter()
        .filter(|c| c.hash() != genesis && !held.contains(&c.hash()))
        .collect();
    let order = causal_order(changes);
    let mut sigs = Vec::new();
    for tip in author_tips(&order) {
        let s = signatures.get(&tip).ok_or_else(|| {
            CatalogueError::Damaged(format!(
                "no stored signature for change {}, which covers its author's changes",
                hex::encode(&tip.0[..6])
            ))
        })?;
        sigs.push(*s);
    }
    sigs.sort();
    if sigs.len() > crate::wire::MAX_SIGNATURES {
        return Err(CatalogueError::Damaged(format!(
            "{} authors' signatures exceed the {} one message carries",
            sigs.len(),
            crate::wire::MAX_SIGNATURES
        )));
    }
    let msg = sync::Message {
        heads: doc.get_heads(),
        need: Vec::new(),
        have: Vec::new(),
        changes: sync::ChunkList::from(
            order
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect::<Vec<_>>(),
        ),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    let bytes = WireMessage {
        sync: msg.encode(),
        signatures: sigs,
    }
    .encode();
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CatalogueError::Damaged(format!(
            "the catalogue's changes are {} bytes, more than one message carries ({MAX_MESSAGE_BYTES}); compact or export with --since",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The changes, among `order` (causally ordered), that no later change of the same author
/// in `order` descends from.
fn author_tips(order: &[Change]) -> BTreeSet<ChangeHash> {
    let index: HashMap<ChangeHash, usize> = order
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash(), i))
        .collect();
    let author = |c: &Change| signing::author_prefix(c.actor_id().to_bytes());
    // For each change, the authors of the changes in `order` that descend from it.
    let mut below: Vec<BTreeSet<[u8; 16]>> = vec![BTreeSet::new(); order.len()];
    for (i, c) in order.iter().enumerate().rev() {
        let mine = std::mem::take(&mut below[i]);
        let tip_of = author(c);
        for d in c.deps() {
            if let Some(&j) = index.get(d) {
                let into = &mut below[j];
                into.extend(mine.iter().copied());
                if let Some(a) = tip_of {
                    into.insert(a);
                }
            }
        }
        below[i] = mine;
    }
    order
        .iter()
        .enumerate()
        .filter(|(i, c)| author(c).is_some_and(|a| !below[*i].contains(&a)))
        .map(|(_, c)| c.hash())
        .collect()
}

/// `changes` in an order where each comes after its dependencies (Kahn's algorithm, ties
/// broken by hash so every node gets the same order).
fn causal_order(changes: Vec<Change>) -> Vec<Change> {
    let hashes: HashSet<ChangeHash> = changes.iter().map(Change::hash).collect();
    let mut waiting: HashMap<ChangeHash, usize> = HashMap::new();
    let mut children: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
    for c in &changes {
        let inside = c.deps().iter().filter(|d| hashes.contains(d)).count();
        waiting.insert(c.hash(), inside);
        for d in c.deps().iter().filter(|d| hashes.contains(d)) {
            children.entry(*d).or_default().push(c.hash());
        }
    }
    let mut by_hash: HashMap<ChangeHash, Change> =
        changes.into_iter().map(|c| (c.hash(), c)).collect();
    let mut ready: BTreeSet<ChangeHash> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(h, _)| *h)
        .collect();
    let mut out = Vec::with_capacity(by_hash.len());
    while let Some(h) = ready.pop_first() {
        if let Some(c) = by_hash.remove(&h) {
            out.push(c);
        }
        for child in children.get(&h).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(child) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(*child);
                }
            }
        }
    }
    // A cycle is impossible (hashes cover dependencies); anything left is appended as is.
    out.extend(by_hash.into_values());
    out
}

/// `from` and all their ancestors among `changes`.
fn ancestors(from: &[ChangeHash], changes: &HashMap<ChangeHash, &Change>) -> HashSet<ChangeHash> {
    let mut covered: HashSet<ChangeHash> = from.iter().copied().collect();
    let mut stack: Vec<ChangeHash> = from.to_vec();
    while let Some(h) = stack.pop() {
        if let Some(c) = changes.get(&h) {
            for d in c.deps() {
                if changes.contains_key(d) && covered.insert(*d) {
                    stack.push(*d);
                }
            }
        }
    }
    covered
}
