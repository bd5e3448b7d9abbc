//! The promotion engine: a node's own, sovereign decision to put a release into its
//! production, to take it out again on a recall, and the explanation when it does neither.
//!
//! Sans-I/O: [`plan`] is a pure function of the persisted [`State`], the current root, the
//! node's local rules, the releases the catalogue holds (with their signatures and any
//! recall or conditional statements) and what the mirror has verified. It returns the
//! [`Action`]s to take; the node commits each one durably (state and audit record in one
//! transaction) and then calls [`State::apply`]. The simulations drive the same function.
//!
//! The promotion decision itself is `accord_trust::evaluate`; this crate adds what only a
//! node knows: whether the artifacts are here, the capability's production high-water mark
//! (rollback protection that survives restarts), and which releases are live here.

pub mod admit;
pub mod channel;
pub mod inputs;
pub mod note;
pub mod provenance;
pub mod reason;
pub mod status;

use std::collections::BTreeMap;

use accord_protocol::statement::Artifact;
use accord_protocol::{Envelope, PrincipalId, ReleaseId, Requirement, Timestamp};
use accord_trust::{Blocker, Decision, PolicyInput, TrustedRoot, evaluate};
use serde::{Deserialize, Serialize};

pub use accord_protocol::{Note, NoteState};
pub use inputs::{MirrorPlan, candidates, hook_backoff, mirror_plan, notes_owed, retired};
pub use note::NoteError;
pub use reason::Reason;

/// A release statement as the node sees it right now.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// SHA-256 of the statement payload: the release's identity.
    pub id: ReleaseId,
    pub capability: String,
    pub version: semver::Version,
    /// The artifacts the statement names (what production will serve if promoted).
    pub artifacts: Vec<Artifact>,
    /// The release envelope with every approval collected so far as a signature.
    pub envelope: Envelope,
    /// Recall and conditional statements about it, with their signatures.
    pub statements: Vec<Envelope>,
    /// Whether this node's own store holds every artifact, verified.
    pub mirror: Mirror,
}

impl Candidate {
    /// `CAP@VER`.
    pub fn key(&self) -> String {
        accord_protocol::release::display_key(&self.capability, &self.version)
    }
}

/// Whether the release's artifacts are all here and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Mirror {
    Complete,
    /// One line per artifact not yet here, e.g. "image.tar 40% mirrored".
    Incomplete {
        missing: Vec<String>,
    },
}

/// What the node has done, persisted (serde JSON) so it survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Capability -> highest version ever promoted here. Never goes down, not even on a
    /// recall: a recalled 1.5.0 does not bring back 1.4.0.
    #[serde(default)]
    pub high_water: BTreeMap<String, semver::Version>,
    /// Release statement -> its standing here, pinned at promotion.
    #[serde(default)]
    pub releases: BTreeMap<ReleaseId, Standing>,
    /// Releases whose `on_promote` hook has not yet succeeded.
    #[serde(default)]
    pub hooks_owed: BTreeMap<ReleaseId, u32>,
}

/// A release this node promoted, and exactly what it promoted: the statement's capability,
/// version and artifacts as they were at the moment of promotion. Production serves this
/// record, never the catalogue's current view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standing {
    pub capability: String,
    pub version: semver::Version,
    pub promoted_at: Timestamp,
    pub artifacts: Vec<Pinned>,
    /// Set when a recall took the release out of production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled: Option<Recalled>,
}

impl Standing {
    /// `CAP@VER`.
    pub fn key(&self) -> String {
        accord_protocol::release::display_key(&self.capability, &self.version)
    }

    /// The pinned artifacts as protocol artifacts (digests checked when pinned).
    pub fn artifacts(&self) -> Vec<Artifact> {
        self.artifacts.iter().filter_map(Pinned::artifact).collect()
    }
}

/// One artifact of a promoted release, pinned: name, size and both digests (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinned {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub blake3: String,
}

impl Pinned {
    pub fn of(a: &Artifact) -> Pinned {
        Pinned {
            name: a.name.clone(),
            size: a.size,
            sha256: hex::encode(a.sha256),
            blake3: hex::encode(a.blake3),
        }
    }

    fn artifact(&self) -> Option<Artifact> {
        let mut sha256 = [0u8; 32];
        let mut blake3 = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut sha256).ok()?;
        hex::decode_to_slice(&self.blake3, &mut blake3).ok()?;
        Some(Artifact {
            name: self.name.clone(),
            sha256,
            blake3,
            size: self.size,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recalled {
    pub at: Timestamp,
    pub reason: String,
}

/// Something to do, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Promote {
        id: ReleaseId,
        capability: String,
        version: semver::Version,
        artifacts: Vec<Artifact>,
    },
    Recall {
        id: ReleaseId,
        reason: String,
    },
}

impl Action {
    pub fn id(&self) -> &ReleaseId {
        match self {
            Action::Promote { id, .. } | Action::Recall { id, .. } => id,
        }
    }
}

/// Where a release stands on this node, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub id: ReleaseId,
    /// `CAP@VER`
    pub key: String,
    pub state: Status,
    /// Every reason it is not promoted here yet (empty once promoted).
    pub reasons: Vec<Reason>,
    pub mirror: Mirror,
    pub decision: Decision,
}

/// The short form of a release's state on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Promoted here and not recalled.
    Live,
    Recalled,
    /// Not promoted here (yet).
    Waiting,
    /// Fully approved, but a newer version is already in production here: never promoted
    /// (and not mirrored).
    Superseded,
    /// Another statement claims the same `CAP@VER`: this one was not, and will not be,
    /// promoted while that conflict stands.
    Conflict,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Recalled => "recalled",
            Status::Waiting => "waiting",
            Status::Superseded => "superseded",
            Status::Conflict => "conflict",
        }
    }
}

/// The node-specific inputs of a plan.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub root: &'a TrustedRoot,
    pub local_rules: &'a [Requirement],
    pub jurisdiction: &'a PrincipalId,
    pub now: Timestamp,
}

/// The actions to take and the explanation of every release.
#[derive(Debug, Clone)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub explanations: Vec<Explanation>,
}

impl State {
    pub fn from_json(bytes: &[u8]) -> Result<State, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A map of strings, versions and timestamps always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Records an action the node has taken (after it is durable).
    pub fn apply(&mut self, action: &Action, now: Timestamp) {
        match action {
            Action::Promote {
                id,
                capability,
                version,
                artifacts,
            } => {
                let hw = self
                    .high_water
                    .entry(capability.clone())
                    .or_insert_with(|| version.clone());
                if *version > *hw {
                    *hw = version.clone();
                }
                self.releases.insert(
                    *id,
                    Standing {
                        capability: capability.clone(),
                        version: version.clone(),
                        promoted_at: now,
                        artifacts: artifacts.iter().map(Pinned::of).collect(),
                        recalled: None,
                    },
                );
                self.hooks_owed.insert(*id, 0);
            }
            Action::Recall { id, reason } => {
                if let Some(s) = self.releases.get_mut(id) {
                    s.recalled = Some(Recalled {
                        at: now,
                        reason: reason.clone(),
                    });
                }
                self.hooks_owed.remove(id);
            }
        }
    }

    /// Whether the statement `id` is in production here (promoted and not recalled).
    pub fn is_live(&self, id: &ReleaseId) -> bool {
        self.releases.get(id).is_some_and(|s| s.recalled.is_none())
    }

    /// The statement of `capability@version` live here, if any (at most one: a second
    /// statement of the same version is never promoted).
    pub fn live(
        &self,
        capability: &str,
        version: &semver::Version,
    ) -> Option<(&ReleaseId, &Standing)> {
        self.releases.iter().find(|(_, s)| {
            s.recalled.is_none() && s.capability == capability && &s.version == version
        })
    }
}

/// Decides what to do about every candidate. Within a capability the newest promotable
/// version wins: older ones become `Superseded`, never promoted over it. Two statements of
/// one `CAP@VER` are never both promoted (ADR 0005 §6).
pub fn plan(state: &State, ctx: &Context<'_>, candidates: &[Candidate]) -> Plan {
    let mut high_water = state.high_water.clone();
    let mut actions = Vec::new();
    let mut explanations = Vec::new();

    // Statements per CAP@VER, and whether one of them already stands here.
    let mut claims: BTreeMap<(String, semver::Version), Vec<ReleaseId>> = BTreeMap::new();
    for c in candidates {
        claims
            .entry((c.capability.clone(), c.version.clone()))
            .or_default()
            .push(c.id);
    }
    let stood = |cap: &str, v: &semver::Version, other_than: &ReleaseId| {
        state
            .releases
            .iter()
            .find(|(id, s)| *id != other_than && s.capability == cap && &s.version == v)
            .map(|(id, _)| *id)
    };

    let mut order: Vec<&Candidate> = candidates.iter().collect();
    // Newest first within a capability, so one plan never promotes 1.4.0 and then 1.5.0.
    order.sort_by(|a, b| {
        a.capability
            .cmp(&b.capability)
            .then(b.version.cmp(&a.version))
            .then(a.id.cmp(&b.id))
    });

    let decide = |c: &Candidate, production: Option<&semver::Version>| {
        evaluate(&PolicyInput {
            root: ctx.root,
            local_rules: ctx.local_rules,
            jurisdiction: Some(ctx.jurisdiction),
            release: &c.envelope,
            recalls: &c.statements,
            conditionals: &c.statements,
            production_version: production,
            now: ctx.now,
        })
    };

    // Statements whose CAP@VER has more than one promotable statement and none standing:
    // promote neither (a recall of all but one lets the last through).
    let mut contested: BTreeMap<ReleaseId, Vec<ReleaseId>> = BTreeMap::new();
    for ((cap, v), ids) in &claims {
        if ids.len() < 2
            || ids
                .iter()
                .any(|id| stood(cap, v, id).is_some() || state.releases.contains_key(id))
        {
            continue;
        }
        let ready: Vec<ReleaseId> = ids
            .iter()
            .filter(|id| {
                candidates.iter().any(|c| {
                    &c.id == *id
                        && c.mirror == Mirror::Complete
                        && decide(c, high_water.get(cap)).promotable
                })
            })
            .copied()
            .collect();
        if ready.len() > 1 {
            for id in &ready {
                contested.insert(*id, ready.clone());
            }
        }
    }

    for c in order {
        let key = c.key();
        let explain = |state: Status, reasons: Vec<Reason>, decision: Decision| Explanation {
            id: c.id,
            key: key.clone(),
            state,
            reasons,
            mirror: c.mirror.clone(),
            decision,
        };
        match state.releases.get(&c.id) {
            Some(s) if s.recalled.is_some() => {
                let why = s
                    .recalled
                    .as_ref()
                    .map(|r| r.reason.clone())
                    .unwrap_or_default();
                explanations.push(explain(
                    Status::Recalled,
                    vec![Reason::Recalled(why)],
                    decide(c, None),
                ));
            }
            Some(_) => {
                // Live: only a recall that meets its rule takes it out.
                let decision = decide(c, None);
                let recall = decision.blockers.iter().find_map(|b| match b {
                    Blocker::Recalled { reason } => Some(reason.clone()),
                    _ => None,
                });
                let status = match recall {
                    Some(reason) => {
                        actions.push(Action::Recall { id: c.id, reason });
                        Status::Recalled
                    }
                    None => Status::Live,
                };
                explanations.push(explain(status, Vec::new(), decision));
            }
            None => {
                let production = high_water.get(&c.capability);
                let decision = decide(c, production);
                if let Some(other) = stood(&c.capability, &c.version, &c.id) {
                    explanations.push(explain(
                        Status::Conflict,
                        vec![Reason::OtherPromoted {
                            key: key.clone(),
                            other,
                            this: c.id,
                        }],
                        decision,
                    ));
                    continue;
                }
                if let Some(rivals) = contested.get(&c.id) {
                    explanations.push(explain(
                        Status::Conflict,
                        vec![Reason::Contested {
                            key: key.clone(),
                            rivals: rivals.clone(),
                        }],
                        decision,
                    ));
                    continue;
                }
                let mut reasons: Vec<Reason> = decision
                    .blockers
                    .iter()
                    .cloned()
                    .map(Reason::Blocked)
                    .collect();
                if let Mirror::Incomplete { missing } = &c.mirror {
                    reasons.extend(missing.iter().cloned().map(Reason::NotHere));
                }
                // Newer production here means never, whatever else is missing (the mirror
                // does not even fetch it).
                let superseded = decision.blockers.len() == 1
                    && matches!(decision.blockers[0], Blocker::NotNewer { .. });
                let status = if reasons.is_empty() && decision.promotable {
                    high_water.insert(c.capability.clone(), c.version.clone());
                    actions.push(Action::Promote {
                        id: c.id,
                        capability: c.capability.clone(),
                        version: c.version.clone(),
                        artifacts: c.artifacts.clone(),
                    });
                    Status::Live
                } else if superseded {
                    Status::Superseded
                } else {
                    Status::Waiting
                };
                explanations.push(explain(status, reasons, decision));
            }
        }
    }
    explanations.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
    Plan {
        actions,
        explanations,
    }
}
