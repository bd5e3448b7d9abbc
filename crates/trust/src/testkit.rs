//! Deterministic cooperatives for tests, benchmarks, attack vectors and simulations.
//!
//! Keys are derived from a label such as `uk.lead.0` and a generation (bumped when a key is
//! rotated), so a case can name "CA's lead key before the rotation" as `ca.lead~0` and get
//! the same key every run. Nothing here is for production keys.

use std::collections::BTreeMap;

use accord_protocol::root::{PublicKeyEntry, ROOT_TYPE};
use accord_protocol::statement::{Artifact, ReleasePredicate};
use accord_protocol::{
    Envelope, Principal, PrincipalId, Role, RoleKeys, RootBody, Rules, Statement, Timestamp,
};
use sha2::{Digest, Sha256};

use crate::error::TrustError;
use crate::keys::SecretKey;
use crate::root::root_envelope;
use crate::tally::sign_envelope;

pub const JURISDICTIONS: [(&str, &str); 4] = [
    ("uk", "United Kingdom"),
    ("eu", "European Union"),
    ("ca", "Canada"),
    ("au", "Australia"),
];

/// A fixed "now" for cases: 2026-11-22T00:00:00Z.
pub const NOW: Timestamp = Timestamp::from_unix(1_795_305_600);

/// The key for `label` (e.g. "uk.lead.0") at `generation`.
pub fn key(label: &str, generation: u32) -> SecretKey {
    let seed: [u8; 32] = Sha256::new()
        .chain_update(b"accord-testkit-v1\0")
        .chain_update(label.as_bytes())
        .chain_update(generation.to_be_bytes())
        .finalize()
        .into();
    // A hashed seed always gives a valid, non-weak key.
    SecretKey::from_seed(&seed).unwrap_or_else(|_| unreachable!("seeded keys are valid"))
}

/// How many keys each role of each principal has, and its k-of-n.
#[derive(Debug, Clone)]
pub struct Shape {
    pub keys_per_role: BTreeMap<Role, (u32, u32)>,
    pub expires: Timestamp,
    pub rules: Option<Rules>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            keys_per_role: Role::ALL.iter().map(|r| (*r, (1, 1))).collect(),
            expires: NOW.plus_days(365),
            rules: None,
        }
    }
}

/// A cooperative's key labels and their current generations, from which roots are built.
#[derive(Debug, Clone)]
pub struct Cooperative {
    pub shape: Shape,
    /// label -> generation
    pub generations: BTreeMap<String, u32>,
    /// label -> label whose key it borrows (to build "one key, two principals" roots)
    pub shared: BTreeMap<String, String>,
}

impl Cooperative {
    pub fn new(shape: Shape) -> Self {
        let mut generations = BTreeMap::new();
        for (p, _) in JURISDICTIONS {
            for (role, (n, _)) in &shape.keys_per_role {
                for i in 0..*n {
                    generations.insert(format!("{p}.{role}.{i}"), 0);
                }
            }
        }
        Cooperative {
            shape,
            generations,
            shared: BTreeMap::new(),
        }
    }

    /// Resolves "uk.lead" (index 0, current generation), "uk.lead.1", "uk.lead~0",
    /// "uk.lead.1~2" or "outsider" to a key.
    pub fn signer(&self, spec: &str) -> Result<SecretKey, TrustError> {
        if spec == "outsider" {
            return Ok(key("outsider", 0));
        }
        let (label, generation) = match spec.split_once('~') {
            Some((l, g)) => (
                l,
                Some(
                    g.parse::<u32>()
                        .map_err(|_| TrustError::Spec(format!("bad generation in {spec}")))?,
                ),
            ),
            None => (spec, None),
        };
        let label = if label.matches('.').count() == 1 {
            format!("{label}.0")
        } else {
            label.to_owned()
        };
        let label = self.shared.get(&label).cloned().unwrap_or(label);
        let current = *self
            .generations
            .get(&label)
            .ok_or_else(|| TrustError::Spec(format!("no key {label} in this cooperative")))?;
        Ok(key(&label, generation.unwrap_or(current)))
    }

    /// The root body at `version` for the current generations.
    pub fn root_body(&self, version: u64) -> Result<RootBody, TrustError> {
        let mut keys = BTreeMap::new();
        let mut principals = BTreeMap::new();
        for (p, name) in JURISDICTIONS {
            let mut roles = BTreeMap::new();
            for (role, (n, k)) in &self.shape.keys_per_role {
                if *n == 0 {
                    continue;
                }
                let mut ids = Vec::new();
                for i in 0..*n {
                    let sk = self.signer(&format!("{p}.{role}.{i}"))?;
                    keys.insert(sk.id().clone(), PublicKeyEntry::ed25519(&sk.public().raw()));
                    ids.push(sk.id().clone());
                }
                roles.insert(
                    *role,
                    RoleKeys {
                        keys: ids,
                        threshold: *k,
                    },
                );
            }
            principals.insert(
                PrincipalId::new(p)?,
                Principal {
                    name: name.into(),
                    roles,
                },
            );
        }
        Ok(RootBody {
            type_: ROOT_TYPE.into(),
            version,
            expires: self.shape.expires,
            keys,
            rules: self
                .shape
                .rules
                .clone()
                .unwrap_or_else(|| Rules::cooperative_default(principals.len())),
            principals,
        })
    }

    /// A root envelope signed by `signers`.
    pub fn signed_root(&self, version: u64, signers: &[&str]) -> Result<Envelope, TrustError> {
        let mut env = root_envelope(&self.root_body(version)?)?;
        for s in signers {
            sign_envelope(&mut env, &self.signer(s)?);
        }
        Ok(env)
    }

    /// Every steering key of the current generation.
    pub fn steering(&self) -> Vec<String> {
        JURISDICTIONS
            .iter()
            .map(|(p, _)| format!("{p}.steering"))
            .collect()
    }

    /// Bumps the generation of a key label ("ca.lead" or "ca.lead.1").
    pub fn rotate(&mut self, label: &str) -> Result<(), TrustError> {
        let label = if label.matches('.').count() == 1 {
            format!("{label}.0")
        } else {
            label.to_owned()
        };
        let g = self
            .generations
            .get_mut(&label)
            .ok_or_else(|| TrustError::Spec(format!("no key {label} to rotate")))?;
        *g += 1;
        Ok(())
    }
}

/// The default cooperative with its root v1 signed by every steering key, trusted.
pub fn anchored() -> Result<(Cooperative, crate::TrustedRoot), TrustError> {
    let coop = Cooperative::new(Shape::default());
    let steering = coop.steering();
    let refs: Vec<&str> = steering.iter().map(String::as_str).collect();
    let env = coop.signed_root(1, &refs)?;
    let root = crate::TrustedRoot::anchor(&env.to_json())?;
    Ok((coop, root))
}

/// Three small artifacts with real digests.
pub fn artifacts() -> Vec<Artifact> {
    ["chart.tgz", "image.oci.tar", "sbom.spdx.json"]
        .iter()
        .map(|name| {
            let data = format!("contents of {name}");
            Artifact {
                name: (*name).into(),
                sha256: Sha256::digest(data.as_bytes()).into(),
                blake3: *blake3::hash(data.as_bytes()).as_bytes(),
                size: data.len() as u64,
            }
        })
        .collect()
}

/// An unsigned release statement for `capability@version`.
pub fn release(capability: &str, version: &str, root_version: u64) -> Result<Envelope, TrustError> {
    let version = semver::Version::parse(version)
        .map_err(|e| TrustError::Spec(format!("bad version {version}: {e}")))?;
    let predicate = ReleasePredicate {
        capability: capability.into(),
        version,
        root_version,
        proposer: "eu supplier ci".into(),
        created: NOW,
        provenance: vec![],
    };
    Ok(Statement::release(&artifacts(), &predicate).to_envelope())
}
