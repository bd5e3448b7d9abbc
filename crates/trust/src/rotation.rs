//! The next root from the current one and a change (`accord root propose`): keys added,
//! removed (rotated out, revoked) or replaced, thresholds changed, a new expiry. The result
//! is the current root with version + 1 and only the asked-for differences, checked like
//! any root (`RootBody::validate`); it still needs the steering majority's signatures
//! (`accord root sign`, online or air-gapped), and nodes walk to it by the TUF rules.

use accord_protocol::root::PublicKeyEntry;
use accord_protocol::{KeyId, PrincipalId, Role, RoleKeys, RootBody, Timestamp};

use crate::error::TrustError;
use crate::keys::PublicKey;

/// One change to a root.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add `key` to `principal`'s `role` (creating the role if it has none).
    AddKey {
        principal: PrincipalId,
        role: Role,
        key: Box<PublicKey>,
    },
    /// Remove the key with this id from wherever it sits (rotated out or revoked): it no
    /// longer counts for anything under the next root.
    RemoveKey(KeyId),
    /// How many of `principal`'s `role` keys make its decision.
    Threshold {
        principal: PrincipalId,
        role: Role,
        threshold: u32,
    },
    /// When the next root expires.
    Expires(Timestamp),
}

/// The successor of `current` with `changes` applied, in order.
pub fn propose(current: &RootBody, changes: &[Change]) -> Result<RootBody, TrustError> {
    let mut next = current.clone();
    next.version = current
        .version
        .checked_add(1)
        .ok_or_else(|| TrustError::Spec("root version overflow".into()))?;
    for change in changes {
        apply(&mut next, change)?;
    }
    next.validate()
        .map_err(|e| TrustError::Spec(format!("the proposed root is not valid: {e}")))?;
    let unchanged = RootBody {
        version: next.version,
        ..current.clone()
    };
    if next == unchanged {
        return Err(TrustError::Spec(
            "the change leaves the root as it is (nothing to propose)".into(),
        ));
    }
    Ok(next)
}

fn apply(root: &mut RootBody, change: &Change) -> Result<(), TrustError> {
    match change {
        Change::AddKey {
            principal,
            role,
            key,
        } => {
            let id = key.id().clone();
            if let Some((p, r)) = root.place_of(&id) {
                return Err(TrustError::Spec(format!(
                    "key {} is already {p}'s {r} key; a key sits in one place only",
                    id.short()
                )));
            }
            let Some(p) = root.principals.get_mut(principal) else {
                return Err(TrustError::Spec(format!(
                    "no principal {principal} in root v{}",
                    root.version - 1
                )));
            };
            p.roles
                .entry(*role)
                .or_insert_with(|| RoleKeys {
                    keys: Vec::new(),
                    threshold: 1,
                })
                .keys
                .push(id.clone());
            root.keys.insert(id, PublicKeyEntry::ed25519(&key.raw()));
        }
        Change::RemoveKey(id) => {
            if root.keys.remove(id).is_none() {
                return Err(TrustError::Spec(format!(
                    "key {} is not in root v{}",
                    id.short(),
                    root.version - 1
                )));
            }
            for p in root.principals.values_mut() {
                for keys in p.roles.values_mut() {
                    keys.keys.retain(|k| k != id);
                }
                p.roles.retain(|_, keys| !keys.keys.is_empty());
            }
        }
        Change::Threshold {
            principal,
            role,
            threshold,
        } => {
            let keys = root
                .principals
                .get_mut(principal)
                .and_then(|p| p.roles.get_mut(role))
                .ok_or_else(|| {
                    TrustError::Spec(format!(
                        "{principal} has no {role} keys to set a threshold for"
                    ))
                })?;
            keys.threshold = *threshold;
        }
        Change::Expires(at) => root.expires = *at,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Cooperative, Shape, key};

    fn current() -> RootBody {
        Cooperative::new(Shape::default())
            .root_body(1)
            .expect("root")
    }

    #[test]
    fn replacing_a_leads_key_moves_only_that_key() {
        let root = current();
        let uk = PrincipalId::new("uk").expect("uk");
        let old = root.principals[&uk].roles[&Role::Lead].keys[0].clone();
        let new = key("uk.lead.next", 0);
        let next = propose(
            &root,
            &[
                Change::RemoveKey(old.clone()),
                Change::AddKey {
                    principal: uk.clone(),
                    role: Role::Lead,
                    key: Box::new(new.public().clone()),
                },
            ],
        )
        .expect("valid");
        assert_eq!(next.version, 2);
        assert!(!next.keys.contains_key(&old));
        assert_eq!(
            next.principals[&uk].roles[&Role::Lead].keys,
            vec![new.id().clone()]
        );
        assert_eq!(next.rules, root.rules);
        assert_eq!(next.expires, root.expires);
        let mut others = next.clone();
        others.principals.remove(&uk);
        let mut before = root.clone();
        before.principals.remove(&uk);
        assert_eq!(others.principals, before.principals);
    }

    #[test]
    fn a_change_that_breaks_the_root_or_changes_nothing_is_refused() {
        let root = current();
        let uk = PrincipalId::new("uk").expect("uk");
        // Two of one key.
        let err = propose(
            &root,
            &[Change::Threshold {
                principal: uk.clone(),
                role: Role::Lead,
                threshold: 2,
            }],
        )
        .expect_err("2-of-1");
        assert!(err.to_string().contains("not valid"), "{err}");
        // A key already placed elsewhere.
        let node = root.principals[&uk].roles[&Role::Node].keys[0].clone();
        let raw = root.keys[&node].raw(&node).expect("raw");
        let err = propose(
            &root,
            &[Change::AddKey {
                principal: uk.clone(),
                role: Role::Lead,
                key: Box::new(PublicKey::from_raw(&raw).expect("key")),
            }],
        )
        .expect_err("one place only");
        assert!(err.to_string().contains("one place only"), "{err}");
        let err = propose(&root, &[Change::Expires(root.expires)]).expect_err("nothing");
        assert!(err.to_string().contains("nothing to propose"), "{err}");
        let later = propose(&root, &[Change::Expires(root.expires.plus_days(365))]).expect("ok");
        assert_eq!(later.expires, root.expires.plus_days(365));
    }
}
