//! `Replica`: the catalogue's sans-I/O sync state machine.
//!
//! Inputs are local edits and bytes from peers; outputs are bytes for peers and a `Delta`
//! of what to persist. No sockets, no files, no clock: the node and the simulations drive
//! the same code.
//!
//! Receiving is all-or-nothing: the message's changes are loaded into a scratch fork, every
//! change the fork gained is checked (signature by its author, author a `node` key of the
//! current root, or the genesis this node computed itself), and only then does the fork
//! become the document. A message with one bad change applies none.

use std::collections::{BTreeMap, HashMap};

use accord_trust::{SecretKey, TrustedRoot};
use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};

use crate::error::CatalogueError;
use crate::signing;
use crate::wire::WireMessage;

/// Largest sync message accepted or produced (a whole 10,000-change catalogue is ~0.2 MB).
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// Signatures kept for changes that are not applied yet (see `Replica::pending`); each
/// is a candidate tried by verification, so the list stays short.
pub const MAX_PENDING_SIGNATURES: usize = 16;

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
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.peer_states.is_empty()
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
    root: TrustedRoot,
    genesis: ChangeHash,
    signatures: HashMap<ChangeHash, [u8; 64]>,
    /// Signatures that arrived with changes Automerge queued for missing dependencies; they
    /// are tried when such a change is applied. Bounded by `MAX_PENDING_SIGNATURES`.
    pending: Vec<[u8; 64]>,
    /// Live sync state per connected peer.
    peers: HashMap<String, sync::State>,
    /// Persisted states of peers not connected now.
    saved_peers: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("node", self.key.id())
            .field("heads", &self.doc.get_heads().len())
            .finish()
    }
}

impl Replica {
    /// Opens a replica from what is stored: `stored.snapshot` is the base document (the
    /// genesis document right after `accord init`), `genesis` the hash this node computed
    /// for the cooperative's genesis change.
    pub fn open(
        genesis: ChangeHash,
        stored: Stored,
        key: SecretKey,
        root: TrustedRoot,
    ) -> Result<Replica, CatalogueError> {
        let genesis_hash = genesis;
        let actor = signing::actor_of(key.public());
        let snapshot = stored
            .snapshot
            .as_deref()
            .ok_or_else(|| CatalogueError::Damaged("no stored catalogue snapshot".into()))?;
        let mut doc = Automerge::load(snapshot)?;
        if doc.get_change_by_hash(&genesis_hash).is_none() {
            return Err(CatalogueError::Damaged(
                "the stored catalogue does not descend from this cooperative's genesis".into(),
            ));
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
        Ok(Replica {
            doc,
            key,
            actor,
            root,
            genesis: genesis_hash,
            signatures,
            pending: Vec::new(),
            peers: HashMap::new(),
            saved_peers: stored.peer_states,
        })
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    pub fn root(&self) -> &TrustedRoot {
        &self.root
    }

    /// Adopts a newer root (already verified by the caller through `TrustedRoot::update`).
    pub fn set_root(&mut self, root: TrustedRoot) {
        self.root = root;
    }

    /// Makes a local edit as one signed change. `f` writes through the transaction;
    /// an error from `f` leaves the document untouched.
    pub fn edit<F>(&mut self, now: i64, message: &str, f: F) -> Result<Delta, CatalogueError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), CatalogueError>,
    {
        let result = self
            .doc
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
        let change = self
            .doc
            .get_change_by_hash(&hash)
            .ok_or_else(|| CatalogueError::Damaged("committed change not found".into()))?;
        let signature = signing::sign(&self.key, &hash);
        self.signatures.insert(hash, signature);
        Ok(Delta {
            changes: vec![StoredChange {
                hash: hash.0,
                bytes: change.raw_bytes().to_vec(),
                signature: Some(signature),
            }],
            peer_states: Vec::new(),
        })
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

    /// A peer went away: returns its state to persist.
    pub fn disconnect(&mut self, peer: &str) -> Delta {
        let Some(state) = self.peers.remove(peer) else {
            return Delta::default();
        };
        let bytes = state.encode();
        self.saved_peers.insert(peer.to_owned(), bytes.clone());
        Delta {
            changes: Vec::new(),
            peer_states: vec![(peer.to_owned(), bytes)],
        }
    }

    /// The next message for `peer`, if there is anything to say.
    pub fn generate_message(&mut self, peer: &str) -> Option<Vec<u8>> {
        if !self.peers.contains_key(peer) {
            self.connect(peer);
        }
        let state = self.peers.get_mut(peer)?;
        let before = state.sent_hashes.clone();
        let msg = self.doc.generate_sync_message(state)?;
        // One signature per author covers all of that author's changes in the message: an
        // author's changes are hash-linked (each depends on its previous one), so the
        // signature over the newest one authenticates its ancestors (ADR 0003).
        let whole_doc = msg.changes.iter().any(is_document_chunk);
        let sent: Vec<ChangeHash> = state.sent_hashes.difference(&before).copied().collect();
        let mut signatures: Vec<[u8; 64]> = self
            .newest_by_author(&sent, whole_doc)
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

    /// Applies a message from `peer`, all or nothing.
    pub fn receive_message(&mut self, peer: &str, bytes: &[u8]) -> Result<Delta, CatalogueError> {
        let refuse = |reason: String| CatalogueError::Refused {
            peer: peer.to_owned(),
            reason,
        };
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(refuse(format!(
                "{} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let wire = WireMessage::decode(bytes, peer)?;
        let msg = sync::Message::decode(&wire.sync)
            .map_err(|e| refuse(format!("not an Automerge sync message: {e}")))?;
        let attached = wire.signatures;
        if !self.peers.contains_key(peer) {
            self.connect(peer);
        }
        let mut state = self.peers.get(peer).cloned().unwrap_or_default();

        let mut delta = Delta::default();
        if msg.changes.is_empty() {
            self.doc
                .receive_sync_message(&mut state, msg)
                .map_err(|e| refuse(format!("rejected by Automerge: {e}")))?;
        } else {
            let mut scratch = self.doc.fork();
            let joined: Vec<u8> = msg.changes.iter().flatten().copied().collect();
            scratch
                .load_incremental(&joined)
                .map_err(|e| refuse(format!("changes do not load: {e}")))?;
            let added: Vec<Change> = self.doc.get_changes_added(&scratch);
            let signed = self.verify_added(&added, &attached).map_err(&refuse)?;
            scratch
                .receive_sync_message(&mut state, msg)
                .map_err(|e| refuse(format!("rejected by Automerge: {e}")))?;
            scratch.set_actor(self.actor.clone());
            self.doc = scratch;
            for change in &added {
                let hash = change.hash();
                let signature = signed.get(&hash).copied();
                if let Some(sig) = signature {
                    self.signatures.insert(hash, sig);
                }
                delta.changes.push(StoredChange {
                    hash: hash.0,
                    bytes: change.raw_bytes().to_vec(),
                    signature,
                });
            }
        }
        // Keep signatures of changes this message carried that are still waiting for their
        // dependencies, so a later message that completes them does not need them again.
        let used: std::collections::HashSet<[u8; 64]> =
            delta.changes.iter().filter_map(|c| c.signature).collect();
        for sig in attached {
            if !used.contains(&sig) && !self.pending.contains(&sig) {
                if self.pending.len() >= MAX_PENDING_SIGNATURES {
                    self.pending.remove(0);
                }
                self.pending.push(sig);
            }
        }
        self.peers.insert(peer.to_owned(), state);
        Ok(delta)
    }

    /// Checks every change a message would add. Per author, the newest added change must
    /// carry a valid signature by that author (a `node` key of the current root), and every
    /// other added change of that author must be one of its ancestors, hence covered by the
    /// signed hash. Returns the signatures to keep (one per author).
    fn verify_added(
        &self,
        added: &[Change],
        attached: &[[u8; 64]],
    ) -> Result<HashMap<ChangeHash, [u8; 64]>, String> {
        let by_hash: HashMap<ChangeHash, &Change> = added.iter().map(|c| (c.hash(), c)).collect();
        let mut by_actor: HashMap<&[u8], Vec<&Change>> = HashMap::new();
        for c in added {
            by_actor.entry(c.actor_id().to_bytes()).or_default().push(c);
        }
        let mut keep = HashMap::new();
        for changes in by_actor.values() {
            let Some(newest) = changes.iter().max_by_key(|c| c.seq()) else {
                continue;
            };
            let hash = newest.hash();
            // The signature is matched by verifying: known ones first, then those attached
            // and those kept from earlier messages.
            let candidates: Vec<&[u8; 64]> = self
                .signatures
                .get(&hash)
                .into_iter()
                .chain(attached.iter())
                .chain(self.pending.iter())
                .collect();
            let sig = candidates
                .iter()
                .find(|s| signing::check(newest, Some(s), &self.root, &self.genesis).is_ok())
                .copied();
            // When none verifies, report against the first candidate (or none) so the reason
            // names what is wrong: the author, or the signature.
            signing::check(
                newest,
                sig.or(candidates.first().copied()),
                &self.root,
                &self.genesis,
            )?;
            if let Some(s) = sig {
                keep.insert(hash, *s);
            }
            // Everything else by this author must be an ancestor of the signed change.
            let mut covered = std::collections::HashSet::from([hash]);
            let mut stack = vec![hash];
            while let Some(h) = stack.pop() {
                if let Some(c) = by_hash.get(&h) {
                    for d in c.deps() {
                        if covered.insert(*d) {
                            stack.push(*d);
                        }
                    }
                }
            }
            if let Some(stray) = changes.iter().find(|c| !covered.contains(&c.hash())) {
                return Err(format!(
                    "change {} is not covered by its author's signature (not an ancestor of the signed change {})",
                    hex::encode(&stray.hash().0[..6]),
                    hex::encode(&hash.0[..6])
                ));
            }
        }
        Ok(keep)
    }

    /// For each author among `hashes` (or among all changes when `all`), its newest change.
    fn newest_by_author(&self, hashes: &[ChangeHash], all: bool) -> Vec<ChangeHash> {
        let changes: Vec<Change> = if all {
            self.doc.get_changes(&[])
        } else {
            hashes
                .iter()
                .filter_map(|h| self.doc.get_change_by_hash(h))
                .collect()
        };
        let mut newest: HashMap<Vec<u8>, (u64, ChangeHash)> = HashMap::new();
        for c in &changes {
            let e = newest
                .entry(c.actor_id().to_bytes().to_vec())
                .or_insert((0, c.hash()));
            if c.seq() >= e.0 {
                *e = (c.seq(), c.hash());
            }
        }
        newest.into_values().map(|(_, h)| h).collect()
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

/// Automerge chunk header: 4 magic bytes, 4 checksum bytes, then the chunk type
/// (0 = document).
fn is_document_chunk(chunk: &[u8]) -> bool {
    chunk.len() > 8 && chunk[..4] == [0x85, 0x6f, 0x4a, 0x83] && chunk[8] == 0
}
