//! The promotion decision: a pure function of the trusted root, the node's local rules, the
//! release envelope, any recall and conditional statements, the capability's production
//! version and the time. No I/O, no clock: the node, the CLI and the simulations all call
//! this one function and get the same answer with the same reasons.

use accord_protocol::statement::{
    Artifact, ConditionalPredicate, RecallPredicate, ReleasePredicate,
};
use accord_protocol::{Envelope, PrincipalId, Requirement, Statement, StatementKind, Timestamp};
use serde::Serialize;

use crate::root::TrustedRoot;
use crate::rule::{self, RequirementOutcome};
use crate::tally::{SignatureCheck, Tally};

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub root: &'a TrustedRoot,
    /// Extra requirements from the node's config; they are added to the cooperative rule,
    /// so they can only make promotion harder.
    pub local_rules: &'a [Requirement],
    /// The jurisdiction deciding (matters for conditional releases); `None` for a
    /// cooperative-wide view.
    pub jurisdiction: Option<&'a PrincipalId>,
    pub release: &'a Envelope,
    pub recalls: &'a [Envelope],
    pub conditionals: &'a [Envelope],
    /// Highest version of this capability ever promoted here (rollback protection).
    pub production_version: Option<&'a semver::Version>,
    pub now: Timestamp,
}

/// A reason the release is not promotable. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Blocker {
    InvalidStatement {
        detail: String,
    },
    NotARelease {
        found: String,
    },
    RootExpired {
        version: u64,
        expired: String,
    },
    RootTooOld {
        release_root: u64,
        current: u64,
    },
    RuleNotMet {
        missing: Vec<String>,
    },
    LocalRuleInvalid {
        detail: String,
    },
    Recalled {
        reason: String,
    },
    ExcludedByConditional {
        jurisdiction: String,
        consenting: Vec<String>,
    },
    NotNewer {
        version: String,
        production: String,
    },
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::InvalidStatement { detail } => {
                write!(f, "the envelope is not a valid release: {detail}")
            }
            Blocker::NotARelease { found } => {
                write!(f, "the envelope holds a {found} statement, not a release")
            }
            Blocker::RootExpired { version, expired } => write!(
                f,
                "root v{version} expired at {expired}; nothing is promoted under an expired root — apply the next root"
            ),
            Blocker::RootTooOld {
                release_root,
                current,
            } => write!(
                f,
                "release was made under root v{release_root} but this root is v{current} — apply the newer root first"
            ),
            Blocker::RuleNotMet { missing } => write!(f, "{}", missing.join("; ")),
            Blocker::LocalRuleInvalid { detail } => write!(
                f,
                "local rule cannot be evaluated: {detail} — fix the node config"
            ),
            Blocker::Recalled { reason } => write!(f, "recalled: {reason}"),
            Blocker::ExcludedByConditional {
                jurisdiction,
                consenting,
            } => write!(
                f,
                "a conditional go-ahead lets this release go only to {}; {jurisdiction} is not among them",
                consenting.join(", ")
            ),
            Blocker::NotNewer {
                version,
                production,
            } => write!(
                f,
                "version {version} is not newer than production {production} (rollback protection)"
            ),
        }
    }
}

/// What the release is, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseSummary {
    pub capability: String,
    pub version: String,
    pub root_version: u64,
    pub proposer: String,
    pub created: String,
    pub payload_sha256: String,
    pub artifacts: Vec<ArtifactSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactSummary {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub blake3: String,
}

/// The decision with every reason behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub promotable: bool,
    pub jurisdiction: Option<PrincipalId>,
    pub root_version: u64,
    pub release: Option<ReleaseSummary>,
    pub requirements: Vec<RequirementOutcome>,
    pub signatures: Vec<SignatureCheck>,
    pub blockers: Vec<Blocker>,
    /// Things worth knowing that do not block: ignored recalls, applied conditionals.
    pub notes: Vec<String>,
}

/// Decides whether the release may be promoted, and says why (not).
pub fn evaluate(input: &PolicyInput<'_>) -> Decision {
    let root = input.root;
    let mut d = Decision {
        promotable: false,
        jurisdiction: input.jurisdiction.cloned(),
        root_version: root.version(),
        release: None,
        requirements: Vec::new(),
        signatures: Vec::new(),
        blockers: Vec::new(),
        notes: Vec::new(),
    };

    let (artifacts, predicate) = match Statement::from_envelope(input.release) {
        Ok(StatementKind::Release {
            artifacts,
            predicate,
        }) => (artifacts, predicate),
        Ok(other) => {
            d.blockers.push(Blocker::NotARelease {
                found: kind_name(&other).into(),
            });
            return d;
        }
        Err(e) => {
            d.blockers.push(Blocker::InvalidStatement {
                detail: e.to_string(),
            });
            return d;
        }
    };
    let payload_sha256 = hex::encode(input.release.payload_digest());
    d.release = Some(summary(&artifacts, &predicate, &payload_sha256));

    if root.is_expired(input.now) {
        d.blockers.push(Blocker::RootExpired {
            version: root.version(),
            expired: root.body().expires.to_string(),
        });
    }
    if predicate.root_version > root.version() {
        d.blockers.push(Blocker::RootTooOld {
            release_root: predicate.root_version,
            current: root.version(),
        });
    }

    // Recalls: only those that meet the recall rule count.
    for env in input.recalls {
        match about(env, &payload_sha256, &predicate) {
            Ok(Some(About::Recall(p))) => {
                let (met, why) = statement_rule_met(root, env, &root.body().rules.recall.all_of);
                if met {
                    d.blockers.push(Blocker::Recalled {
                        reason: p.reason.clone(),
                    });
                } else {
                    d.notes
                        .push(format!("a recall statement was ignored: {why}"));
                }
            }
            Ok(_) => {}
            Err(e) => d.notes.push(format!("a recall statement was ignored: {e}")),
        }
    }

    // Conditionals: the newest valid one for this release applies.
    let mut conditional: Option<ConditionalPredicate> = None;
    for env in input.conditionals {
        match about(env, &payload_sha256, &predicate) {
            Ok(Some(About::Conditional(p))) => {
                let (met, why) =
                    statement_rule_met(root, env, &root.body().rules.conditional.all_of);
                if !met {
                    d.notes
                        .push(format!("a conditional statement was ignored: {why}"));
                } else if conditional.as_ref().is_none_or(|c| p.created > c.created) {
                    conditional = Some(p);
                }
            }
            Ok(_) => {}
            Err(e) => d
                .notes
                .push(format!("a conditional statement was ignored: {e}")),
        }
    }

    let mut requirements: Vec<(Requirement, &str)> = Vec::new();
    match &conditional {
        None => requirements.extend(
            root.body()
                .rules
                .promote
                .all_of
                .iter()
                .map(|r| (r.clone(), "cooperative")),
        ),
        Some(c) => {
            let consenting: Vec<String> = c.consenting.iter().map(|p| p.to_string()).collect();
            d.notes.push(format!(
                "conditional go-ahead ({}): the promote rule is narrowed to {}",
                c.reason,
                consenting.join(", ")
            ));
            if let Some(j) = input.jurisdiction
                && !c.consenting.contains(j)
            {
                d.blockers.push(Blocker::ExcludedByConditional {
                    jurisdiction: j.to_string(),
                    consenting,
                });
            }
            requirements.extend(
                root.body()
                    .rules
                    .promote
                    .all_of
                    .iter()
                    .map(|r| (narrow(r, &c.consenting, root), "conditional")),
            );
        }
    }
    let local = accord_protocol::Rule {
        all_of: input.local_rules.to_vec(),
    };
    if !input.local_rules.is_empty()
        && let Err(e) = root.body().check_rule("local", &local)
    {
        d.blockers.push(Blocker::LocalRuleInvalid {
            detail: e.to_string(),
        });
    }
    requirements.extend(input.local_rules.iter().map(|r| (r.clone(), "local")));

    let mut tally = Tally::of(input.release, root);
    rule::mark_unused_roles(root, &requirements, &mut tally);
    d.requirements = rule::evaluate(root, &requirements, &tally);
    d.signatures = tally.checks;
    let missing: Vec<String> = d
        .requirements
        .iter()
        .filter(|o| !o.met)
        .map(RequirementOutcome::explain)
        .collect();
    if !missing.is_empty() {
        d.blockers.push(Blocker::RuleNotMet { missing });
    }

    if let Some(prod) = input.production_version
        && predicate.version <= *prod
    {
        d.blockers.push(Blocker::NotNewer {
            version: predicate.version.to_string(),
            production: prod.to_string(),
        });
    }

    d.promotable = d.blockers.is_empty();
    d
}

/// Under a conditional, each promote requirement draws only from the consenting
/// principals, and asks for no more of them than there are.
fn narrow(req: &Requirement, consenting: &[PrincipalId], root: &TrustedRoot) -> Requirement {
    let pool: Vec<PrincipalId> = req
        .candidates(root.body())
        .into_iter()
        .filter(|p| consenting.contains(p))
        .cloned()
        .collect();
    let available = u32::try_from(pool.len()).unwrap_or(u32::MAX);
    Requirement {
        role: req.role,
        // An empty pool keeps the original threshold: unmeetable, and explained as such.
        threshold: if available == 0 {
            req.threshold
        } else {
            req.threshold.min(available)
        },
        principals: Some(pool),
    }
}

enum About {
    Recall(RecallPredicate),
    Conditional(ConditionalPredicate),
}

/// Parses a recall/conditional envelope and returns it if it names this release.
fn about(
    env: &Envelope,
    payload_sha256: &str,
    release: &ReleasePredicate,
) -> Result<Option<About>, String> {
    let kind = Statement::from_envelope(env).map_err(|e| e.to_string())?;
    let (digest, about, r) = match kind {
        StatementKind::Recall {
            release_payload_sha256,
            predicate,
        } => {
            let r = predicate.release.clone();
            (release_payload_sha256, About::Recall(predicate), r)
        }
        StatementKind::Conditional {
            release_payload_sha256,
            predicate,
        } => {
            let r = predicate.release.clone();
            (release_payload_sha256, About::Conditional(predicate), r)
        }
        StatementKind::Release { .. } => return Ok(None),
    };
    if digest != payload_sha256
        || r.capability != release.capability
        || r.version != release.version
    {
        return Ok(None);
    }
    Ok(Some(about))
}

/// Whether a statement's own signatures meet a rule of the root.
fn statement_rule_met(root: &TrustedRoot, env: &Envelope, reqs: &[Requirement]) -> (bool, String) {
    let tally = Tally::of(env, root);
    let reqs: Vec<_> = reqs.iter().map(|r| (r.clone(), "cooperative")).collect();
    let outcomes = rule::evaluate(root, &reqs, &tally);
    let unmet: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.met)
        .map(RequirementOutcome::explain)
        .collect();
    (unmet.is_empty(), unmet.join("; "))
}

fn kind_name(k: &StatementKind) -> &'static str {
    match k {
        StatementKind::Release { .. } => "release",
        StatementKind::Recall { .. } => "recall",
        StatementKind::Conditional { .. } => "conditional",
    }
}

fn summary(artifacts: &[Artifact], p: &ReleasePredicate, payload_sha256: &str) -> ReleaseSummary {
    ReleaseSummary {
        capability: p.capability.clone(),
        version: p.version.to_string(),
        root_version: p.root_version,
        proposer: p.proposer.clone(),
        created: p.created.to_string(),
        payload_sha256: payload_sha256.to_owned(),
        artifacts: artifacts
            .iter()
            .map(|a| ArtifactSummary {
                name: a.name.clone(),
                size: a.size,
                sha256: hex::encode(a.sha256),
                blake3: hex::encode(a.blake3),
            })
            .collect(),
    }
}
