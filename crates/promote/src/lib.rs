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

pub mod note;

use std::collections::BTreeMap;

use accord_protocol::{Envelope, PrincipalId, Requirement, Timestamp};
use accord_trust::{Blocker, Decision, PolicyInput, TrustedRoot, evaluate};
use serde::{Deserialize, Serialize};

pub use note::{Note, NoteError, NoteState};

/// A release as the node sees it right now.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `CAP@VERSION`
    pub key: String,
    /// The release envelope with every approval collected so far as a signature.
    pub envelope: Envelope,
    /// Recall and conditional statements about it, with their signatures.
    pub statements: Vec<Envelope>,
    pub mirror: Mirror,
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
pub struct State {
    /// Capability -> highest version ever promoted here. Never goes down, not even on a
    /// recall: a recalled 1.5.0 does not bring back 1.4.0.
    #[serde(default)]
    pub high_water: BTreeMap<String, semver::Version>,
    /// Release key -> its standing here.
    #[serde(default)]
    pub releases: BTreeMap<String, Standing>,
    /// Releases whose `on_promote` hook has not yet succeeded.
    #[serde(default)]
    pub hooks_owed: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub capability: String,
    pub version: semver::Version,
    pub payload_sha256: String,
    pub promoted_at: Timestamp,
    /// Set when a recall took the release out of production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled: Option<Recalled>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recalled {
    pub at: Timestamp,
    pub reason: String,
}

/// Something to do, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Promote {
        key: String,
        capability: String,
        version: semver::Version,
        payload_sha256: String,
    },
    Recall {
        key: String,
        reason: String,
    },
}

impl Action {
    pub fn key(&self) -> &str {
        match self {
            Action::Promote { key, .. } | Action::Recall { key, .. } => key,
        }
    }
}

/// Where a release stands on this node, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub key: String,
    pub state: Status,
    /// Every reason it is not promoted here yet (empty once promoted).
    pub reasons: Vec<String>,
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
    /// Fully approved and mirrored, but a newer version is already in production here.
    Superseded,
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
                key,
                capability,
                version,
                payload_sha256,
            } => {
                let hw = self
                    .high_water
                    .entry(capability.clone())
                    .or_insert_with(|| version.clone());
                if *version > *hw {
                    *hw = version.clone();
                }
                self.releases.insert(
                    key.clone(),
                    Standing {
                        capability: capability.clone(),
                        version: version.clone(),
                        payload_sha256: payload_sha256.clone(),
                        promoted_at: now,
                        recalled: None,
                    },
                );
                self.hooks_owed.insert(key.clone(), 0);
            }
            Action::Recall { key, reason } => {
                if let Some(s) = self.releases.get_mut(key) {
                    s.recalled = Some(Recalled {
                        at: now,
                        reason: reason.clone(),
                    });
                }
                self.hooks_owed.remove(key);
            }
        }
    }

    /// Whether `key` is in production here (promoted and not recalled).
    pub fn is_live(&self, key: &str) -> bool {
        self.releases.get(key).is_some_and(|s| s.recalled.is_none())
    }
}

/// Decides what to do about every candidate. Within a capability the newest promotable
/// version wins: older ones become `Superseded`, never promoted over it.
pub fn plan(state: &State, ctx: &Context<'_>, candidates: &[Candidate]) -> Plan {
    let mut high_water = state.high_water.clone();
    let mut actions = Vec::new();
    let mut explanations = Vec::new();

    let mut order: Vec<(&Candidate, Option<(String, semver::Version)>)> = candidates
        .iter()
        .map(|c| (c, identity(&c.envelope)))
        .collect();
    // Newest first within a capability, so one plan never promotes 1.4.0 and then 1.5.0.
    order.sort_by(|(a, ia), (b, ib)| match (ia, ib) {
        (Some((ca, va)), Some((cb, vb))) => ca.cmp(cb).then(vb.cmp(va)),
        _ => a.key.cmp(&b.key),
    });

    for (c, id) in order {
        let standing = state.releases.get(&c.key);
        let decide = |production: Option<&semver::Version>| {
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
        match standing {
            Some(s) if s.recalled.is_some() => {
                let decision = decide(None);
                let why = s
                    .recalled
                    .as_ref()
                    .map(|r| r.reason.clone())
                    .unwrap_or_default();
                explanations.push(Explanation {
                    key: c.key.clone(),
                    state: Status::Recalled,
                    reasons: vec![format!("recalled: {why}")],
                    mirror: c.mirror.clone(),
                    decision,
                });
            }
            Some(_) => {
                // Live: only a recall that meets its rule takes it out.
                let decision = decide(None);
                let recall = decision.blockers.iter().find_map(|b| match b {
                    Blocker::Recalled { reason } => Some(reason.clone()),
                    _ => None,
                });
                let state = match recall {
                    Some(reason) => {
                        actions.push(Action::Recall {
                            key: c.key.clone(),
                            reason: reason.clone(),
                        });
                        Status::Recalled
                    }
                    None => Status::Live,
                };
                explanations.push(Explanation {
                    key: c.key.clone(),
                    state,
                    reasons: Vec::new(),
                    mirror: c.mirror.clone(),
                    decision,
                });
            }
            None => {
                let production = id.as_ref().and_then(|(cap, _)| high_water.get(cap));
                let decision = decide(production);
                let mut reasons: Vec<String> =
                    decision.blockers.iter().map(ToString::to_string).collect();
                if let Mirror::Incomplete { missing } = &c.mirror {
                    reasons.extend(missing.iter().cloned());
                }
                let superseded = decision.blockers.len() == 1
                    && matches!(decision.blockers[0], Blocker::NotNewer { .. })
                    && c.mirror == Mirror::Complete;
                let state = if reasons.is_empty() {
                    match (&id, &decision.release) {
                        (Some((capability, version)), Some(summary)) => {
                            high_water.insert(capability.clone(), version.clone());
                            actions.push(Action::Promote {
                                key: c.key.clone(),
                                capability: capability.clone(),
                                version: version.clone(),
                                payload_sha256: summary.payload_sha256.clone(),
                            });
                            Status::Live
                        }
                        // A promotable decision always has a parsed release.
                        _ => Status::Waiting,
                    }
                } else if superseded {
                    Status::Superseded
                } else {
                    Status::Waiting
                };
                explanations.push(Explanation {
                    key: c.key.clone(),
                    state,
                    reasons,
                    mirror: c.mirror.clone(),
                    decision,
                });
            }
        }
    }
    explanations.sort_by(|a, b| a.key.cmp(&b.key));
    Plan {
        actions,
        explanations,
    }
}

/// Capability and version of a release envelope, if it is one.
fn identity(env: &Envelope) -> Option<(String, semver::Version)> {
    match accord_protocol::Statement::from_envelope(env).ok()? {
        accord_protocol::StatementKind::Release { predicate, .. } => {
            Some((predicate.capability, predicate.version))
        }
        _ => None,
    }
}
