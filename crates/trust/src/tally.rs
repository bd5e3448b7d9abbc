//! Which signatures on an envelope count, and for whom.
//!
//! The counting rules (docs/design.md "Trust model"): a signature counts once per key, a key
//! counts for one principal (the root guarantees it), a principal counts once per
//! requirement. Everything is collected into sets, so the order of signatures and any
//! repetition cannot change the outcome.

use std::collections::{BTreeMap, BTreeSet};

use accord_protocol::{Envelope, KeyId, PrincipalId, Role};
use serde::Serialize;

use crate::keys::{PublicKey, SecretKey};
use crate::root::TrustedRoot;

/// What became of one signature on an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    /// Position in the envelope's signature list.
    pub index: usize,
    /// The key that produced it, when known.
    pub keyid: Option<KeyId>,
    /// Who the key speaks for, when the signature verified.
    pub principal: Option<PrincipalId>,
    pub role: Option<Role>,
    /// `None` when the signature counts.
    pub ignored: Option<String>,
}

/// The keys whose signatures verified, each once.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub valid: BTreeSet<KeyId>,
    pub checks: Vec<SignatureCheck>,
}

impl Tally {
    /// Verifies every signature of `env` against the keys of `root`, strictly.
    pub fn of(env: &Envelope, root: &TrustedRoot) -> Tally {
        let message = env.pae();
        let mut tally = Tally::default();
        for (index, s) in env.signatures.iter().enumerate() {
            let mut check = SignatureCheck {
                index,
                keyid: None,
                principal: None,
                role: None,
                ignored: None,
            };
            let signer: Result<&PublicKey, String> = if s.keyid.is_empty() {
                // DSSE's keyid is optional: try every key of the root.
                root.keys()
                    .find(|k| k.verify(&message, &s.sig))
                    .ok_or_else(|| "no keyid and no key of the root verifies it".to_owned())
            } else {
                match KeyId::parse(&s.keyid) {
                    Err(_) => Err("keyid is not an Accord key id".to_owned()),
                    Ok(id) => match root.key(&id) {
                        None => {
                            check.keyid = Some(id.clone());
                            Err(format!(
                                "key {} is not in root v{}",
                                id.short(),
                                root.version()
                            ))
                        }
                        Some(k) if k.verify(&message, &s.sig) => Ok(k),
                        Some(k) => {
                            check.keyid = Some(k.id().clone());
                            Err(format!(
                                "signature by {} does not verify (forged, or the payload or payloadType was changed)",
                                k.id().short()
                            ))
                        }
                    },
                }
            };
            match signer {
                Err(reason) => check.ignored = Some(reason),
                Ok(k) => {
                    check.keyid = Some(k.id().clone());
                    if let Some((p, role)) = root.body().place_of(k.id()) {
                        check.principal = Some(p.clone());
                        check.role = Some(role);
                    }
                    if !tally.valid.insert(k.id().clone()) {
                        check.ignored = Some(format!(
                            "key {} already signed; a key counts once",
                            k.id().short()
                        ));
                    }
                }
            }
            tally.checks.push(check);
        }
        tally
    }

    /// Valid signers grouped by (principal, role).
    pub fn by_place<'r>(&self, root: &'r TrustedRoot) -> BTreeMap<(&'r PrincipalId, Role), usize> {
        let mut out = BTreeMap::new();
        for k in &self.valid {
            if let Some(place) = root.body().place_of(k) {
                *out.entry(place).or_insert(0) += 1;
            }
        }
        out
    }
}

/// Appends a signature by `key` over the envelope's PAE. Signing twice with one key is a
/// no-op, so re-running a signing step never inflates the list.
pub fn sign_envelope(env: &mut Envelope, key: &SecretKey) -> bool {
    let sig = key.sign(&env.pae()).to_vec();
    let keyid = key.id().to_string();
    if env
        .signatures
        .iter()
        .any(|s| s.keyid == keyid && key.public().verify(&env.pae(), &s.sig))
    {
        return false;
    }
    env.signatures
        .push(accord_protocol::EnvelopeSignature { keyid, sig });
    true
}
