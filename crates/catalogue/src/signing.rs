//! Signatures over catalogue changes: Ed25519 by the change's author over a domain-separated
//! change hash. The author is the change's Automerge actor, which is the node's 32-byte
//! public key, so a change cannot claim another node's actor without its key.

use accord_protocol::Role;
use accord_trust::{PublicKey, SecretKey, TrustedRoot};
use automerge::{ActorId, Change, ChangeHash};

use crate::genesis::GENESIS_ACTOR;

const DOMAIN: &[u8] = b"accord/catalogue-change/v1\0";

pub fn message(hash: &ChangeHash) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 32);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&hash.0);
    m
}

pub fn sign(key: &SecretKey, hash: &ChangeHash) -> [u8; 64] {
    key.sign(&message(hash))
}

/// The actor id a node writes with.
pub fn actor_of(key: &PublicKey) -> ActorId {
    ActorId::from(key.raw().as_slice())
}

/// Why a change may not be applied, or `Ok` when it may.
pub fn check(
    change: &Change,
    signature: Option<&[u8; 64]>,
    root: &TrustedRoot,
    genesis: &ChangeHash,
) -> Result<(), String> {
    let hash = change.hash();
    let short = hex::encode(&hash.0[..6]);
    if &hash == genesis {
        return Ok(());
    }
    let actor = change.actor_id().to_bytes();
    if actor == GENESIS_ACTOR {
        return Err(format!(
            "change {short} claims the genesis actor but is not this cooperative's genesis"
        ));
    }
    let raw: [u8; 32] = actor
        .try_into()
        .map_err(|_| format!("change {short} has an actor that is not a node key"))?;
    let key = PublicKey::from_raw(&raw).map_err(|e| format!("change {short}: {e}"))?;
    match root.body().place_of(key.id()) {
        Some((_, Role::Node)) => {}
        Some((p, role)) => {
            return Err(format!(
                "change {short} is by {p}'s {role} key; only node keys write the catalogue"
            ));
        }
        None => {
            return Err(format!(
                "change {short} is by key {} which is not in root v{}",
                key.id().short(),
                root.version()
            ));
        }
    }
    let sig = signature.ok_or_else(|| format!("change {short} arrived without its signature"))?;
    if key.verify(&message(&hash), sig) {
        Ok(())
    } else {
        Err(format!("change {short}: signature does not verify"))
    }
}
