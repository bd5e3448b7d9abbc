//! The `release` scenario's moving parts: a release proposed with its artifacts, the leads
//! signing at their own sites, every node's mirror fetching the artifacts, and every node
//! promoting on its own. What a node decides (what to mirror, when it is promoted) is the
//! real core's (`Io::Wants`, the engine); which provider to ask is the real mirror queue's
//! (`accord_mirror::MirrorQueue`), fed by the real announcement format. Only the blob
//! transfer is modelled: its size at the link's rate, behind what else that link carries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use accord_catalogue::History;
use accord_mirror::wants::{ReleaseBlobs, wants};
use accord_mirror::{Action as Fetch, Announce, BlobHash, Limits, MirrorQueue, Outcome};
use accord_promote::{Mirror, MirrorPlan};
use accord_protocol::statement::{Artifact, ReleasePredicate};
use accord_protocol::{Envelope, ReleaseId, Statement, Timestamp};
use accord_service::Topic;

use crate::world::{Event, NodeId, World};

/// Who must sign a release under the simulated root (every lead and security).
pub const SIGNERS: [&str; 5] = ["uk.lead", "eu.lead", "ca.lead", "au.lead", "uk.security"];

/// In `hostile`, the lead who never signs (the attacker forges this signature).
pub const MISSING: &str = "au.lead";

/// One node's blob mirror: the real queue, and the blobs its store holds complete.
#[derive(Debug)]
pub struct SimMirror {
    queue: MirrorQueue<NodeId>,
    held: BTreeMap<BlobHash, u64>,
}

impl SimMirror {
    /// Node `n`'s mirror: its ties between providers broken by its own number, as a node
    /// breaks them by its endpoint id.
    pub fn new(n: NodeId) -> SimMirror {
        SimMirror {
            queue: MirrorQueue::new(Limits::default()).with_salt(u64::from(n)),
            held: BTreeMap::new(),
        }
    }
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
        let payload = r.envelope.payload.clone();
        let Some(node) = self.node_mut(n) else {
            return;
        };
        if node
            .edit(now, "propose CAP-B01@2.0.0", |tx| {
                accord_catalogue::edit::add_history(tx, History::Statements, &payload).map(|_| ())
            })
            .is_err()
        {
            return;
        }
        if let Some(m) = self.mirrors.get_mut(n as usize) {
            for a in &r.artifacts {
                m.held.insert(a.blake3, a.size);
            }
        }
        self.report_held(n);
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
        let ok = self
            .node_mut(n)
            .is_some_and(|node| node.import_signatures(&env.to_json(), now).is_ok());
        if ok && let Some(r) = &mut self.release {
            r.signed_at.push(t);
        }
        self.drain(n);
    }

    /// The core's plan for what node `n` mirrors: the real queue gets the blobs of the
    /// wanted releases, then starts what it can.
    pub(crate) fn mirror_wants(&mut self, n: NodeId, plan: &MirrorPlan) {
        let Some(node) = self.node(n) else {
            return;
        };
        let cat = node.catalogue();
        let releases: Vec<ReleaseBlobs> = cat
            .0
            .releases
            .iter()
            .filter(|r| plan.wanted.contains(&r.id))
            .map(|r| ReleaseBlobs {
                id: r.id,
                label: r.label(),
                artifacts: r.artifacts.clone(),
            })
            .collect();
        let Some(m) = self.mirrors.get_mut(n as usize) else {
            return;
        };
        m.queue.set_wanted(wants(&releases));
        for (hash, size) in &m.held {
            m.queue.set_local(hash, *size, true);
        }
        self.report_held(n);
        // As the daemon does after handing the mirror new wants.
        let now = self.now();
        if let Some(node) = self.node_mut(n) {
            node.announce_blobs(now);
        }
        self.dispatch(n);
    }

    /// Node `n`'s blob announcement, in the node's format, gossiped like the node's.
    pub(crate) fn announce_blobs(&mut self, n: NodeId) {
        let Some(m) = self.mirrors.get(n as usize) else {
            return;
        };
        let a = Announce::new(Vec::new(), m.held.iter().map(|(h, s)| (*h, (*s, *s))));
        self.publish(n, Topic::Blobs, a.to_bytes());
    }

    /// A blob announcement from `author` reached node `n`.
    pub(crate) fn heard_blobs(&mut self, n: NodeId, author: NodeId, data: &[u8]) {
        let Ok(a) = Announce::parse(data) else {
            return;
        };
        let near = u8::from(self.site(author) != self.site(n));
        if let Some(m) = self.mirrors.get_mut(n as usize) {
            m.queue.set_nearness(author, near);
            m.queue.set_provider(author, a.complete_hashes());
        }
        self.dispatch(n);
    }

    /// Starts the fetches node `n`'s queue asks for: the request crosses to the provider,
    /// the blob comes back at the link's rate.
    pub(crate) fn dispatch(&mut self, n: NodeId) {
        let now = self.now();
        let Some(m) = self.mirrors.get_mut(n as usize) else {
            return;
        };
        let sizes: BTreeMap<BlobHash, u64> = m
            .queue
            .status()
            .into_iter()
            .map(|s| (s.hash, s.size))
            .collect();
        for Fetch::Fetch { hash, from } in m.queue.poll(now.mono) {
            let size = sizes.get(&hash).copied().unwrap_or(0);
            self.transfer(from, n, size, hash);
        }
    }

    /// A fetch of `hash` by `n` from `from` ended.
    pub(crate) fn fetched(
        &mut self,
        n: NodeId,
        from: NodeId,
        hash: BlobHash,
        size: u64,
        refused: bool,
    ) {
        let now = self.now();
        if refused {
            // Turned away: the queue backs off from this provider for this blob and asks
            // another now, or this one again when the backoff has passed.
            if let Some(m) = self.mirrors.get_mut(n as usize) {
                m.queue
                    .finished(&hash, &from, Outcome::Failed("busy".into()), 0, now.mono);
            }
            let again = self.t + Limits::default().retry_after;
            self.push(again, Event::Redispatch(n));
            self.dispatch(n);
            return;
        }
        if let Some(u) = self.uploads.get_mut(from as usize) {
            *u = u.saturating_sub(1);
        }
        let provider_up = self.is_up(from);
        // A node that announced blobs it lacks sends what fails verification (bao, as the
        // node's fetch checks it): the queue penalises it and asks someone else.
        let lied = self.hostile.contains(&from);
        let Some(m) = self.mirrors.get_mut(n as usize) else {
            return;
        };
        let outcome = match (provider_up, lied) {
            (true, false) => Outcome::Complete,
            (true, true) => Outcome::Corrupt,
            (false, _) => Outcome::Failed("provider went away".into()),
        };
        let complete = outcome == Outcome::Complete;
        let have = if complete { size } else { 0 };
        m.queue.finished(&hash, &from, outcome, have, now.mono);
        if complete {
            m.held.insert(hash, size);
            self.report_held(n);
            if let Some(node) = self.node_mut(n) {
                node.announce_blobs(now);
            }
            self.drain(n);
        } else if provider_up {
            self.corrupt_fetches += 1;
        }
        self.dispatch(n);
    }

    /// Tells node `n`'s core what its store holds of each release (as the daemon's mirror
    /// does after every fetch), and notes when it first held the followed release.
    pub(crate) fn report_held(&mut self, n: NodeId) {
        let (Some(node), Some(m)) = (self.node(n), self.mirrors.get(n as usize)) else {
            return;
        };
        let cat = node.catalogue();
        let held: BTreeMap<ReleaseId, Mirror> = cat
            .0
            .releases
            .iter()
            .map(|r| {
                let missing: Vec<String> = r
                    .artifacts
                    .iter()
                    .filter(|a| !m.held.contains_key(&a.blake3))
                    .map(|a| format!("artifact {} not here yet", a.name))
                    .collect();
                let state = if missing.is_empty() {
                    Mirror::Complete
                } else {
                    Mirror::Incomplete { missing }
                };
                (r.id, state)
            })
            .collect();
        let t = self.t;
        let now = self.now();
        if let Some(r) = &mut self.release
            && held.get(&r.id) == Some(&Mirror::Complete)
            && r.mirrored[n as usize].is_none()
        {
            r.mirrored[n as usize] = Some(t);
        }
        if let Some(node) = self.node_mut(n) {
            node.mirror_progress(held, now);
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
    fn transfer(&mut self, from: NodeId, to: NodeId, size: u64, hash: BlobHash) {
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
