//! The cooperative's root document: who the principals are, which keys act for them in
//! which role, and the rules that combine their signatures.
//!
//! A root travels as the payload of a DSSE envelope (`PAYLOAD_TYPE_ROOT`). This module checks
//! the structure (every rule can be met, every key sits in exactly one place); the
//! signatures and the key material are checked by `accord-trust`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::ids::{KeyId, PrincipalId, Role};
use crate::limits::{MAX_PRINCIPALS, MAX_ROOT_KEYS};
use crate::time::Timestamp;

pub const ROOT_TYPE: &str = "https://accord.coop/root/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootBody {
    #[serde(rename = "_type")]
    pub type_: String,
    /// Starts at 1 and goes up by exactly one per rotation.
    pub version: u64,
    pub expires: Timestamp,
    /// Every key the root trusts, by id.
    pub keys: BTreeMap<KeyId, PublicKeyEntry>,
    pub principals: BTreeMap<PrincipalId, Principal>,
    pub rules: Rules,
}

/// An Ed25519 public key in TUF's notation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    pub keytype: String,
    pub scheme: String,
    /// Lower-case hex of the 32-byte public key.
    pub public: String,
}

impl PublicKeyEntry {
    pub fn ed25519(raw: &[u8; 32]) -> Self {
        PublicKeyEntry {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            public: hex::encode(raw),
        }
    }

    /// The raw key bytes, if the entry is a well-formed Ed25519 key whose id matches.
    pub fn raw(&self, id: &KeyId) -> Result<[u8; 32], ProtocolError> {
        if self.keytype != "ed25519" || self.scheme != "ed25519" {
            return Err(ProtocolError::invalid(
                "root key",
                format!(
                    "key {} has type {}/{}, only ed25519/ed25519 is supported",
                    id.short(),
                    self.keytype,
                    self.scheme
                ),
            ));
        }
        let mut raw = [0u8; 32];
        hex::decode_to_slice(&self.public, &mut raw).map_err(|_| {
            ProtocolError::invalid(
                "root key",
                format!("key {} is not 64 hex digits", id.short()),
            )
        })?;
        if &KeyId::from_public_key(&raw) != id {
            return Err(ProtocolError::invalid(
                "root key",
                format!(
                    "key {} is listed under an id that is not its own",
                    id.short()
                ),
            ));
        }
        Ok(raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Human name, e.g. "United Kingdom".
    pub name: String,
    pub roles: BTreeMap<Role, RoleKeys>,
}

/// The keys of one role inside one principal, and how many of them make that principal's
/// decision (k-of-n inside the jurisdiction, default 1-of-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleKeys {
    pub keys: Vec<KeyId>,
    pub threshold: u32,
}

/// The cooperative rules, one per kind of decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Release to production.
    pub promote: Rule,
    /// Withdraw a promoted release.
    pub recall: Rule,
    /// Let a release go to the consenting jurisdictions only (dispute resolution).
    pub conditional: Rule,
    /// Accept the next root version.
    pub root: Rule,
}

/// All requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub all_of: Vec<Requirement>,
}

/// `threshold` distinct principals, drawn from `principals` (all of the root's when absent),
/// must each have met their own k-of-n for `role`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub role: Role,
    pub threshold: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<PrincipalId>>,
}

impl Requirement {
    pub fn new(role: Role, threshold: u32) -> Self {
        Requirement {
            role,
            threshold,
            principals: None,
        }
    }

    /// "lead of 4 of 4 jurisdictions", "security of uk".
    pub fn describe(&self, root: &RootBody) -> String {
        match &self.principals {
            Some(ps) if ps.len() == 1 && self.threshold == 1 => {
                format!("{} of {}", self.role, ps[0])
            }
            Some(ps) => format!(
                "{} of {} of [{}]",
                self.role,
                self.threshold,
                ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            ),
            None => format!(
                "{} of {} of {} jurisdictions",
                self.role,
                self.threshold,
                root.principals.len()
            ),
        }
    }

    /// The principals this requirement draws from, in order.
    pub fn candidates<'a>(&'a self, root: &'a RootBody) -> Vec<&'a PrincipalId> {
        match &self.principals {
            Some(ps) => ps.iter().collect(),
            None => root.principals.keys().collect(),
        }
    }
}

impl Rules {
    /// The defaults from the cooperative's approval gate (seeds, procurement framework §7):
    /// every jurisdiction lead and one security lead for production and recall; a steering
    /// majority for root changes and conditional deployment.
    pub fn cooperative_default(principals: usize) -> Self {
        let n = u32::try_from(principals).unwrap_or(u32::MAX);
        let majority = n / 2 + 1;
        let promote = Rule {
            all_of: vec![
                Requirement::new(Role::Lead, n),
                Requirement::new(Role::Security, 1),
            ],
        };
        Rules {
            recall: promote.clone(),
            promote,
            conditional: Rule {
                all_of: vec![Requirement::new(Role::Steering, majority)],
            },
            root: Rule {
                all_of: vec![Requirement::new(Role::Steering, majority)],
            },
        }
    }
}

impl RootBody {
    /// Checks the structure of a root: its type, that every key sits in exactly one
    /// (principal, role) slot, that every k-of-n and every rule can be met, and limits.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |d: String| Err(ProtocolError::invalid("root", d));
        if self.type_ != ROOT_TYPE {
            return bad(format!("_type is {:?}, expected {ROOT_TYPE:?}", self.type_));
        }
        if self.version == 0 {
            return bad("version must start at 1".into());
        }
        if self.keys.len() > MAX_ROOT_KEYS || self.principals.len() > MAX_PRINCIPALS {
            return bad(format!(
                "more than {MAX_ROOT_KEYS} keys or {MAX_PRINCIPALS} principals"
            ));
        }
        if self.principals.is_empty() {
            return bad("lists no principals".into());
        }
        for (id, key) in &self.keys {
            key.raw(id)?;
        }
        // A key counts for one principal and one role: otherwise one signature could stand
        // for two jurisdictions, or a lead's key could double as the security council.
        let mut placed: BTreeMap<&KeyId, (&PrincipalId, Role)> = BTreeMap::new();
        for (pid, p) in &self.principals {
            for (role, rk) in &p.roles {
                if rk.keys.is_empty() || rk.threshold == 0 || rk.threshold as usize > rk.keys.len()
                {
                    return bad(format!(
                        "{pid} {role}: threshold {} of {} keys cannot be met",
                        rk.threshold,
                        rk.keys.len()
                    ));
                }
                for k in &rk.keys {
                    if !self.keys.contains_key(k) {
                        return bad(format!(
                            "{pid} {role} names key {} that is not in keys",
                            k.short()
                        ));
                    }
                    if let Some((other, other_role)) = placed.insert(k, (pid, *role)) {
                        return bad(format!(
                            "key {} is listed under {other} {other_role} and again under {pid} {role}; a key may serve one principal in one role",
                            k.short()
                        ));
                    }
                }
            }
        }
        if let Some(unused) = self.keys.keys().find(|k| !placed.contains_key(k)) {
            return bad(format!(
                "key {} is not used by any principal",
                unused.short()
            ));
        }
        for (name, rule) in [
            ("promote", &self.rules.promote),
            ("recall", &self.rules.recall),
            ("conditional", &self.rules.conditional),
            ("root", &self.rules.root),
        ] {
            self.check_rule(name, rule)?;
        }
        Ok(())
    }

    /// A rule is usable when it is not empty and each requirement can be met by this root.
    pub fn check_rule(&self, name: &str, rule: &Rule) -> Result<(), ProtocolError> {
        if rule.all_of.is_empty() {
            return Err(ProtocolError::invalid(
                "rule",
                format!("{name} has no requirements; an empty rule would accept anything"),
            ));
        }
        for req in &rule.all_of {
            let candidates = req.candidates(self);
            let distinct: BTreeSet<_> = candidates.iter().collect();
            if distinct.len() != candidates.len() {
                return Err(ProtocolError::invalid(
                    "rule",
                    format!("{name}: a principal is named twice"),
                ));
            }
            for c in &candidates {
                if !self.principals.contains_key(*c) {
                    return Err(ProtocolError::invalid(
                        "rule",
                        format!("{name} names principal {c} that the root does not list"),
                    ));
                }
            }
            let able = candidates
                .iter()
                .filter(|c| {
                    self.principals
                        .get(**c)
                        .is_some_and(|p| p.roles.contains_key(&req.role))
                })
                .count();
            if req.threshold == 0 || req.threshold as usize > able {
                return Err(ProtocolError::invalid(
                    "rule",
                    format!(
                        "{name}: needs {} of {} but only {able} of those principals have {} keys",
                        req.role, req.threshold, req.role
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Which principal and role a key serves, if any.
    pub fn place_of(&self, key: &KeyId) -> Option<(&PrincipalId, Role)> {
        self.principals.iter().find_map(|(pid, p)| {
            p.roles
                .iter()
                .find(|(_, rk)| rk.keys.contains(key))
                .map(|(role, _)| (pid, *role))
        })
    }

    /// Parses the payload of a root envelope (exact bytes) and checks its structure.
    pub fn from_payload(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let body: RootBody =
            serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed {
                what: "root document",
                detail: e.to_string(),
            })?;
        body.validate()?;
        Ok(body)
    }

    /// Canonical bytes for signing: compact JSON with sorted maps (serde_json keeps struct
    /// field order and BTreeMap order, so the same root always gives the same bytes).
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
