//! The root chain a node trusts: its first root (whose payload digest anchors the
//! catalogue's genesis) and every root after it, each accepted by the TUF rotation rules.
//!
//! The chain, not only the current root, answers "whose key is this?": a node key removed in
//! a later root is *retired*, and its changes made before the removal still verify (ADR 0005).

use accord_protocol::limits::MAX_ROOT_HOPS;
use accord_protocol::{KeyId, PrincipalId, Role};

use crate::error::TrustError;
use crate::keys::PublicKey;
use crate::root::TrustedRoot;

/// A verified chain of roots, oldest first; never empty.
#[derive(Debug, Clone)]
pub struct RootChain {
    roots: Vec<TrustedRoot>,
}

/// Where a node key stands in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStanding<'a> {
    /// A node key of the current root.
    Current {
        principal: &'a PrincipalId,
        key: &'a PublicKey,
    },
    /// A node key of an earlier root only; `last` is the newest root that listed it.
    Retired {
        principal: &'a PrincipalId,
        key: &'a PublicKey,
        last: u64,
    },
}

impl<'a> KeyStanding<'a> {
    pub fn principal(&self) -> &'a PrincipalId {
        match self {
            KeyStanding::Current { principal, .. } | KeyStanding::Retired { principal, .. } => {
                principal
            }
        }
    }

    pub fn key(&self) -> &'a PublicKey {
        match self {
            KeyStanding::Current { key, .. } | KeyStanding::Retired { key, .. } => key,
        }
    }

    pub fn is_current(&self) -> bool {
        matches!(self, KeyStanding::Current { .. })
    }
}

impl RootChain {
    /// Starts a chain at a first root, checked against itself (installed out of band).
    pub fn anchor(first: &[u8]) -> Result<RootChain, TrustError> {
        Ok(RootChain {
            roots: vec![TrustedRoot::anchor(first)?],
        })
    }

    /// A chain from its first root through every successor, in order.
    pub fn walk<'b>(
        first: &[u8],
        rest: impl IntoIterator<Item = &'b [u8]>,
    ) -> Result<RootChain, TrustError> {
        let mut chain = RootChain::anchor(first)?;
        for bytes in rest {
            chain.extend(bytes)?;
        }
        Ok(chain)
    }

    /// A chain of one already-trusted root.
    pub fn from_trusted(root: TrustedRoot) -> RootChain {
        RootChain { roots: vec![root] }
    }

    /// Offers a root. The next version is verified (TUF rules) and appended: `Ok(true)`. A
    /// version the chain already holds must be the same document (its signatures may
    /// differ): `Ok(false)`. Anything else is refused: a different root under a known
    /// version, or a gap.
    pub fn extend(&mut self, bytes: &[u8]) -> Result<bool, TrustError> {
        let current = self.current();
        let next = match current.update(bytes) {
            Ok(next) => next,
            Err(e) => {
                let offered = TrustedRoot::inspect(bytes)?;
                if let Some(known) = self.get(offered.version()) {
                    if known.envelope().payload == offered.envelope().payload {
                        return Ok(false);
                    }
                    return Err(TrustError::RootSequence {
                        trusted: current.version(),
                        got: offered.version(),
                        detail: format!(
                            "this is not the root v{} of this chain (its content differs)",
                            offered.version()
                        ),
                    });
                }
                return Err(e);
            }
        };
        if self.roots.len() >= MAX_ROOT_HOPS {
            return Err(TrustError::RootChainTooLong {
                limit: MAX_ROOT_HOPS,
            });
        }
        self.roots.push(next);
        Ok(true)
    }

    pub fn current(&self) -> &TrustedRoot {
        // Never empty: every constructor starts with one root.
        &self.roots[self.roots.len() - 1]
    }

    pub fn first(&self) -> &TrustedRoot {
        &self.roots[0]
    }

    /// Oldest first.
    pub fn roots(&self) -> &[TrustedRoot] {
        &self.roots
    }

    pub fn get(&self, version: u64) -> Option<&TrustedRoot> {
        self.roots.iter().find(|r| r.version() == version)
    }

    /// SHA-256 of the first root's payload: the catalogue's anchor.
    pub fn anchor_digest(&self) -> [u8; 32] {
        self.first().envelope().payload_digest()
    }

    /// Where the node key `id` stands, if any root of the chain lists it as a node key.
    pub fn node_key(&self, id: &KeyId) -> Option<KeyStanding<'_>> {
        self.node_keys().find(|s| s.key().id() == id)
    }

    /// Every node key any root of the chain lists, each once: current ones with their
    /// principal now, retired ones with the principal of the newest root that listed them.
    pub fn node_keys(&self) -> impl Iterator<Item = KeyStanding<'_>> {
        let current = self.current();
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for root in self.roots.iter().rev() {
            for (principal, key) in root.node_keys() {
                if !seen.insert(key.id().clone()) {
                    continue;
                }
                out.push(if root.version() == current.version() {
                    KeyStanding::Current { principal, key }
                } else {
                    KeyStanding::Retired {
                        principal,
                        key,
                        last: root.version(),
                    }
                });
            }
        }
        out.into_iter()
    }

    /// The key `id` with its role and principal in the newest root of the chain that lists
    /// it (approvals stay checkable after a lead's key is rotated out).
    pub fn any_key(&self, id: &KeyId) -> Option<(&PublicKey, &PrincipalId, Role)> {
        self.roots.iter().rev().find_map(|r| {
            let (p, role) = r.body().place_of(id)?;
            Some((r.key(id)?, p, role))
        })
    }
}

impl TrustedRoot {
    /// The node keys this root lists, with their principals.
    pub fn node_keys(&self) -> Vec<(&PrincipalId, &PublicKey)> {
        let mut out = Vec::new();
        for (pid, p) in &self.body().principals {
            if let Some(rk) = p.roles.get(&Role::Node) {
                for id in &rk.keys {
                    if let Some(k) = self.key(id) {
                        out.push((pid, k));
                    }
                }
            }
        }
        out
    }

    /// Whether `id` is a node key of `jurisdiction` in this root.
    pub fn is_node_key_of(&self, id: &KeyId, jurisdiction: &str) -> bool {
        matches!(self.body().place_of(id), Some((p, Role::Node)) if p.as_str() == jurisdiction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Cooperative, Shape};

    fn coop() -> Cooperative {
        Cooperative::new(Shape::default())
    }

    #[test]
    fn a_rotated_node_key_is_retired_not_forgotten() {
        let mut c = coop();
        let steering = c.steering();
        let s: Vec<&str> = steering.iter().map(String::as_str).collect();
        let v1 = c.signed_root(1, &s).expect("v1").to_json();
        let old = c.signer("uk.node").expect("key");
        c.rotate("uk.node").expect("rotate");
        let v2 = c.signed_root(2, &s).expect("v2").to_json();
        let new = c.signer("uk.node").expect("key");

        let mut chain = RootChain::anchor(&v1).expect("anchor");
        assert!(chain.node_key(old.id()).expect("old").is_current());
        assert!(chain.extend(&v2).expect("v2 follows"));
        assert!(
            !chain.extend(&v2).expect("known again"),
            "v2 twice is no change"
        );
        assert!(!chain.extend(&v1).expect("v1 known"));
        match chain.node_key(old.id()).expect("old") {
            KeyStanding::Retired {
                principal, last, ..
            } => {
                assert_eq!(principal.as_str(), "uk");
                assert_eq!(last, 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(chain.node_key(new.id()).expect("new").is_current());
        assert_eq!(chain.node_keys().count(), 5);
        assert_eq!(
            chain.anchor_digest(),
            chain.first().envelope().payload_digest()
        );
    }

    #[test]
    fn a_different_root_under_a_known_version_or_a_gap_is_refused() {
        let mut c = coop();
        let steering = c.steering();
        let s: Vec<&str> = steering.iter().map(String::as_str).collect();
        let v1 = c.signed_root(1, &s).expect("v1").to_json();
        let mut chain = RootChain::anchor(&v1).expect("anchor");
        c.rotate("eu.lead").expect("rotate");
        let other_v1 = c.signed_root(1, &s).expect("other v1").to_json();
        assert!(chain.extend(&other_v1).is_err());
        let v3 = c.signed_root(3, &s).expect("v3").to_json();
        assert!(chain.extend(&v3).is_err());
        assert_eq!(chain.current().version(), 1);
    }
}
