//! Evaluating a rule (all of its requirements) against the signatures that counted.

use accord_protocol::{PrincipalId, Requirement, Role};
use serde::Serialize;

use crate::root::TrustedRoot;
use crate::tally::Tally;

/// How one requirement fared, in terms an auditor reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequirementOutcome {
    /// e.g. "lead of 4 of 4 jurisdictions".
    pub requirement: String,
    /// Where it comes from: "cooperative", "local", or "conditional".
    pub source: String,
    pub role: Role,
    pub met: bool,
    /// Principals whose role threshold is met.
    pub satisfied: Vec<PrincipalId>,
    /// Principals that could still satisfy it, with (valid signatures, needed).
    pub missing: Vec<(PrincipalId, usize, usize)>,
    /// How many more principals are needed (0 when met).
    pub short_by: usize,
}

impl RequirementOutcome {
    /// One line: "missing lead signature from ca, au" or "met by uk, eu, ca, au".
    pub fn explain(&self) -> String {
        if self.met {
            let who: Vec<_> = self.satisfied.iter().map(|p| p.as_str()).collect();
            return format!(
                "{} [{}]: met by {}",
                self.requirement,
                self.source,
                who.join(", ")
            );
        }
        let who: Vec<String> = self
            .missing
            .iter()
            .map(|(p, have, need)| {
                if *need > 1 {
                    format!("{p} ({have} of {need})")
                } else {
                    p.to_string()
                }
            })
            .collect();
        let from = if who.is_empty() {
            "no principal can still provide it".to_owned()
        } else if self.short_by == self.missing.len() {
            format!("from {}", who.join(", "))
        } else {
            format!("{} more from any of {}", self.short_by, who.join(", "))
        };
        format!(
            "{} [{}]: missing {} signature {from}",
            self.requirement, self.source, self.role
        )
    }
}

/// Evaluates each requirement; the rule is met when all are.
pub fn evaluate(
    root: &TrustedRoot,
    requirements: &[(Requirement, &str)],
    tally: &Tally,
) -> Vec<RequirementOutcome> {
    let counted = tally.by_place(root);
    requirements
        .iter()
        .map(|(req, source)| {
            let mut satisfied = Vec::new();
            let mut missing = Vec::new();
            for p in req.candidates(root.body()) {
                let Some(rk) = root
                    .body()
                    .principals
                    .get(p)
                    .and_then(|pr| pr.roles.get(&req.role))
                else {
                    continue;
                };
                let have = counted.get(&(p, req.role)).copied().unwrap_or(0);
                let need = rk.threshold as usize;
                if have >= need {
                    satisfied.push(p.clone());
                } else {
                    missing.push((p.clone(), have, need));
                }
            }
            let threshold = req.threshold as usize;
            let met = threshold > 0 && satisfied.len() >= threshold;
            RequirementOutcome {
                requirement: req.describe(root.body()),
                source: (*source).to_owned(),
                role: req.role,
                met,
                short_by: threshold.saturating_sub(satisfied.len()),
                satisfied,
                missing,
            }
        })
        .collect()
}

/// Valid signatures whose (principal, role) no requirement asks for: reported as ignored
/// ("wrong role") so a node key signing a release is visible rather than silently useless.
pub fn mark_unused_roles(
    root: &TrustedRoot,
    requirements: &[(Requirement, &str)],
    tally: &mut Tally,
) {
    for check in &mut tally.checks {
        if check.ignored.is_some() {
            continue;
        }
        let (Some(p), Some(role)) = (&check.principal, check.role) else {
            continue;
        };
        let wanted = requirements
            .iter()
            .any(|(r, _)| r.role == role && r.candidates(root.body()).contains(&p));
        if !wanted {
            check.ignored = Some(format!(
                "{p} {role} key: no requirement of this rule counts {role} signatures"
            ));
        }
    }
}
