//! The `release` scenario's moving parts: a release proposed with its artifacts, the leads
//! signing at their own sites, every node's mirror fetching the artifacts, and every node
//! promoting on its own. Every decision is the real core's: what to mirror (the engine's
//! plan), which provider to ask and when to ask again (its mirror queue, fed by the real
//! announcements), what a fetch's end means, when a release is live. Only the blob store
//! and the transfer are modelled: a set of complete blobs per node, and a blob's size at
//! the link's rate behind what else that link carries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use accord_mirror::{BlobHash, Limits, Outcome};
use accord_promote::inputs::Proposal;
use accord_protocol::statement::{Artifact, ReleasePredicate};
use accord_protocol::{Envelope, ReleaseId, Statement, Timestamp};
use accord_service::{Command, Reply};

use crate::world::{Event, NodeId, World};

/// Who must sign a release under the simulated root (every lead and security).
pub const SIGNERS: [&str; 5] = ["uk.lead", "eu.lead", "ca.lead", "au.lead", "uk.security"];

/// In `hostile`, the lead who never signs (the attacker forges this signature).
pub const MISSING: &str = "au.lead";

/// One node's blob store: the blobs it holds complete, with their sizes.
#[derive(Debug, Default, Clone)]
pub struct SimStore {
    pub held: BTreeMap<BlobHash, u64>,
}

/// The release being followed through a run.
#[derive(Debug, Clone)]
pub struct Followed {
    pub envelope: Envelope,
    pub id: ReleaseId,
    pub artifacts: Vec<Artifact>,
    /// When each signature was imported, in order.
    pub signed_at: Vec<Duration>,
    /// Per node: when its own store held every artifact.
    pub mirrored: Vec<Option<Duration>>,
    /// Per node: when it promoted the release.
    pub promoted: Vec<Option<Duration>>,
}

impl Followed {
    /// A release of `CAP-B01@2.0.0` with three artifacts of `mib` MiB in all.
    pub fn new(mib: u64, nodes: usize) -> Followed {
        let total = mib.max(3) << 20;
        let sizes = [(total - (2 << 20)), 1 << 20, 1 << 20];
        let artifacts: Vec<Artifact> = ["image.oci.tar", "chart.tgz", "sbom.spdx.json"]
            .iter()
            .zip(sizes)
            .map(|(name, size)| Artifact {
                name: (*name).into(),
                // The simulation moves no bytes: the digests only name the blobs.
                sha256: *blake3::hash(format!("sha256 of {name}").as_bytes()).as_bytes(),
                blake3: *blake3::hash(name.as_bytes()).as_bytes(),
                size,
            })
            .collect();
        let predicate = ReleasePredicate {
            capability: "CAP-B01".into(),
            version: semver::Version::new(2, 0, 0),
            root_version: 1,
            proposer: "eu supplier ci".into(),
            created: Timestamp::from_unix(1_800_000_000),
            provenance: vec![],
        };
        let envelope = Statement::release(&artifacts, &predicate).to_envelope();
        Followed {
            id: ReleaseId::of_payload(&envelope.payload),
            envelope,
            artifacts,
            signed_at: Vec::new(),
            mirrored: vec![None; nodes],
            promoted: vec![None; nodes],
        }
    }

    pub fn last_signature(&self) -> Option<Duration> {
        (self.signed_at.len() == SIGNERS.len())
            .then(|| self.signed_at.iter().max().copied())
            .flatten()
    }
}

impl World {
    /// Node `n` proposes the followed release: its statement into the catalogue, its
    /// artifacts into its own store (as `release propose` streams them in).
    pub fn propose(&mut self, n: NodeId) {
        let Some(r) = self.release.clone() else {
            return;
        };
        let now = self.now();
        // The artifacts are streamed into the proposer's store first, then the proposal
        // is the node's command, as the API does it.
        if let Some(store) = self.stores.get_mut(n as usize) {
            for a in &r.artifacts {
                store.held.insert(a.blake3, a.size);
            }
        }
        self.note_mirrored(n);
        let Some(node) = self.node_mut(n) else {
            return;
        };
        let Ok(proposal) = Proposal::check(&r.envelope.to_json(), &node.catalogue().0) else {
            return;
        };
        node.command(
            Command::Propose {
                proposal,
                reply: Reply::new(|_| {}),
            },
            now,
        );
        self.drain(n);
    }

    /// `signer` signs the release and imports the signature at node `n` (its own site).
    pub fn sign(&mut self, n: NodeId, signer: &str) {
        let (Some(r), Ok(key)) = (self.release.clone(), self.coop.signer(signer)) else {
            return;
        };
        let mut env = r.envelope.clone();
        accord_trust::sign_envelope(&mut env, &key);
        let now = self.now();
        let t = self.t;
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(node) = self.node_mut(n) {
            node.command(
                Command::Sign {
                    envelope: env.to_json(),
                    reply: Reply::new(move |answer| {
                        let _ = tx.send(answer.is_ok());
                    }),
                },
                now,
            );
        }
        if rx.try_recv().unwrap_or(false)
            && let Some(r) = &mut self.release
        {
            r.signed_at.push(t);
        }
        self.drain(n);
    }

    /// Node `n`'s core asks what its store holds of these blobs.
    pub(crate) fn probe(&mut self, n: NodeId, hashes: &[BlobHash]) {
        let Some(store) = self.stores.get(n as usize) else {
            return;
        };
        let local: Vec<(BlobHash, u64, bool)> = hashes
            .iter()
            .map(|h| match store.held.get(h) {
                Some(size) => (*h, *size, true),
                None => (*h, 0, false),
            })
            .collect();
        let now = self.now();
        if let Some(node) = self.node_mut(n) {
            node.blobs_local(&local, now);
        }
    }

    /// A fetch of `hash` by `n` from `from` ended: the core hears how.
    pub(crate) fn fetched(
        &mut self,
        n: NodeId,
        from: NodeId,
        hash: BlobHash,
        size: u64,
        refused: bool,
    ) {
        let now = self.now();
        let (outcome, bytes) = if refused {
            // Turned away at once (the provider serves enough already): the core backs off
            // from it for this blob and asks another, or this one again at a wakeup.
            (Outcome::Failed("busy".into()), 0)
        } else {
            if let Some(u) = self.uploads.get_mut(from as usize) {
                *u = u.saturating_sub(1);
            }
            // A node that announced blobs it lacks sends what fails verification (bao, as
            // the node's fetch checks it).
            match (self.is_up(from), self.hostile.contains(&from)) {
                (true, false) => (Outcome::Complete, size),
                (true, true) => {
                    self.corrupt_fetches += 1;
                    (Outcome::Corrupt, size)
                }
                (false, _) => (Outcome::Failed("provider went away".into()), 0),
            }
        };
        if outcome == Outcome::Complete
            && let Some(store) = self.stores.get_mut(n as usize)
        {
            store.held.insert(hash, size);
        }
        let complete = self
            .stores
            .get(n as usize)
            .is_some_and(|s| s.held.contains_key(&hash));
        let local = if complete { (size, true) } else { (0, false) };
        if let Some(node) = self.node_mut(n) {
            node.fetch_finished(hash, from, outcome, bytes, local, now);
        }
        self.note_mirrored(n);
        self.drain(n);
    }

    /// Notes when node `n`'s store first held every artifact of the followed release.
    fn note_mirrored(&mut self, n: NodeId) {
        let t = self.t;
        let Some(store) = self.stores.get(n as usize) else {
            return;
        };
        if let Some(r) = &mut self.release
            && r.mirrored[n as usize].is_none()
            && r.artifacts
                .iter()
                .all(|a| store.held.contains_key(&a.blake3))
        {
            r.mirrored[n as usize] = Some(t);
        }
    }

    /// Records the moment node `n` promoted the followed release.
    pub(crate) fn note_promotion(&mut self, n: NodeId) {
        let Some(r) = &self.release else {
            return;
        };
        if r.promoted[n as usize].is_some() {
            return;
        }
        let id = r.id;
        let live = self
            .node(n)
            .and_then(|s| s.promotion_state())
            .is_some_and(|s| s.releases.contains_key(&id));
        if live && let Some(r) = &mut self.release {
            r.promoted[n as usize] = Some(self.t);
        }
    }

    /// Promotions that break a rule: before the last signature existed, serving other bytes
    /// than the statement's, or not promotable under the node's own root and catalogue.
    pub fn promotion_violations(&self) -> Vec<String> {
        let Some(r) = &self.release else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let last = r.last_signature();
        let pinned: BTreeSet<(String, String, u64)> = r
            .artifacts
            .iter()
            .map(|a| (a.name.clone(), hex::encode(a.sha256), a.size))
            .collect();
        for (i, at) in r.promoted.iter().enumerate() {
            let Some(at) = at else {
                continue;
            };
            if last.is_none_or(|l| *at < l) {
                out.push(format!(
                    "node {i} promoted at {at:?}, before the last signature"
                ));
            }
            let Some(node) = self.node(i as NodeId) else {
                continue;
            };
            let Some(standing) = node.promotion_state().and_then(|s| s.releases.get(&r.id)) else {
                continue;
            };
            let serves: BTreeSet<(String, String, u64)> = standing
                .artifacts
                .iter()
                .map(|a| (a.name.clone(), a.sha256.clone(), a.size))
                .collect();
            if serves != pinned {
                out.push(format!("node {i} serves other bytes than the statement's"));
            }
            let cat = node.catalogue();
            let allowed = cat.0.release(&r.id).is_some_and(|rel| {
                accord_trust::evaluate(&accord_trust::PolicyInput {
                    root: node.replica().root(),
                    local_rules: &[],
                    jurisdiction: None,
                    release: &rel.signed_envelope(),
                    recalls: &[],
                    conditionals: &[],
                    production_version: None,
                    now: Timestamp::from_unix(self.now().unix()),
                })
                .promotable
            });
            if !allowed {
                out.push(format!(
                    "node {i} promoted a release its own root and catalogue do not allow"
                ));
            }
        }
        out
    }

    /// The blob transfer: the fetcher's request crosses first, then the blob at the link's
    /// rate behind what else that link carries, then the last byte's propagation.
    pub(crate) fn transfer(&mut self, from: NodeId, to: NodeId, size: u64, hash: BlobHash) {
        let request = self.model.one_way(self.site(to), self.site(from));
        if self.uploads[from as usize] >= Limits::default().serve_total {
            // The provider closes the connection at once: the answer is back after a
            // round trip.
            self.push(
                self.t + request + request,
                Event::Fetched {
                    node: to,
                    from,
                    hash,
                    size,
                    refused: true,
                },
            );
            return;
        }
        self.uploads[from as usize] += 1;
        let bytes = usize::try_from(size).unwrap_or(usize::MAX);
        self.send_after(
            request,
            from,
            to,
            bytes,
            Event::Fetched {
                node: to,
                from,
                hash,
                size,
                refused: false,
            },
        );
        self.traffic[from as usize].blob_bytes_out += size;
        self.traffic[to as usize].blob_bytes_in += size;
    }
}
