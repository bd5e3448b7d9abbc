//! The readable root spec (`accord root new --spec root.toml`): principals with the public
//! key files of each role, and optionally the rules. Key paths are relative to the spec.
//!
//! ```toml
//! version = 1
//! expires = "2027-12-31T00:00:00Z"
//!
//! [principals.uk]
//! name = "United Kingdom"
//! lead = { keys = ["keys/uk-lead.pub"] }          # threshold defaults to 1
//! security = { keys = ["keys/uk-security.pub"] }
//! steering = { keys = ["keys/uk-steering.pub"] }
//! node = { keys = ["keys/uk-node.pub"] }
//!
//! [rules]                                          # optional: the cooperative defaults
//! promote = [{ role = "lead", threshold = 4 }, { role = "security", threshold = 1 }]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use accord_protocol::root::{PublicKeyEntry, ROOT_TYPE};
use accord_protocol::{PrincipalId, Requirement, Role, RoleKeys, RootBody, Rule, Rules, Timestamp};
use serde::Deserialize;

use crate::error::TrustError;
use crate::keys::PublicKey;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSpec {
    pub version: u64,
    pub expires: Timestamp,
    pub principals: BTreeMap<PrincipalId, PrincipalSpec>,
    #[serde(default)]
    pub rules: RulesSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    pub name: String,
    pub lead: Option<RoleSpec>,
    pub security: Option<RoleSpec>,
    pub steering: Option<RoleSpec>,
    pub node: Option<RoleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    pub keys: Vec<String>,
    #[serde(default = "one")]
    pub threshold: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSpec {
    pub promote: Option<Vec<Requirement>>,
    pub recall: Option<Vec<Requirement>>,
    pub conditional: Option<Vec<Requirement>>,
    pub root: Option<Vec<Requirement>>,
}

impl RootSpec {
    pub fn parse(text: &str, path: &str) -> Result<RootSpec, TrustError> {
        toml::from_str(text).map_err(|e| TrustError::Spec(format!("{path}: {e}")))
    }

    /// Resolves key files (relative to `base`) into a root body, checked for structure.
    pub fn build(&self, base: &Path) -> Result<RootBody, TrustError> {
        self.build_with(|p| PublicKey::read(&base.join(p)))
    }

    /// Like `build`, with the key lookup supplied (tests and generators use in-memory keys).
    pub fn build_with(
        &self,
        mut load: impl FnMut(&str) -> Result<PublicKey, TrustError>,
    ) -> Result<RootBody, TrustError> {
        let mut keys = BTreeMap::new();
        let mut principals = BTreeMap::new();
        for (pid, ps) in &self.principals {
            let mut roles = BTreeMap::new();
            for (role, spec) in [
                (Role::Lead, &ps.lead),
                (Role::Security, &ps.security),
                (Role::Steering, &ps.steering),
                (Role::Node, &ps.node),
            ] {
                let Some(spec) = spec else { continue };
                let mut ids = Vec::new();
                for path in &spec.keys {
                    let key = load(path)?;
                    keys.insert(key.id().clone(), PublicKeyEntry::ed25519(&key.raw()));
                    ids.push(key.id().clone());
                }
                roles.insert(
                    role,
                    RoleKeys {
                        keys: ids,
                        threshold: spec.threshold,
                    },
                );
            }
            principals.insert(
                pid.clone(),
                accord_protocol::Principal {
                    name: ps.name.clone(),
                    roles,
                },
            );
        }
        let defaults = Rules::cooperative_default(principals.len());
        let pick = |r: &Option<Vec<Requirement>>, d: Rule| match r {
            Some(all_of) => Rule {
                all_of: all_of.clone(),
            },
            None => d,
        };
        let rules = Rules {
            promote: pick(&self.rules.promote, defaults.promote),
            recall: pick(&self.rules.recall, defaults.recall),
            conditional: pick(&self.rules.conditional, defaults.conditional),
            root: pick(&self.rules.root, defaults.root),
        };
        let body = RootBody {
            type_: ROOT_TYPE.into(),
            version: self.version,
            expires: self.expires,
            keys,
            principals,
            rules,
        };
        body.validate()?;
        Ok(body)
    }
}
