//! Signatures over catalogue changes: Ed25519 by the change's author over a domain-separated
//! change hash. The change's Automerge actor is derived from the author's public key
//! (16 bytes of a domain-separated SHA-256, the size of Automerge's own random actors), so
//! the root's key list tells which key must have signed, and a change cannot claim another
//! node's actor without that node's key.

use accord_protocol::Role;
use accord_trust::{PublicKey, SecretKey, TrustedRoot};
use automerge::{ActorId, Change, ChangeHash};
use sha2::{Digest, Sha256};

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
    ActorId::from(actor_bytes(key).as_slice())
}

fn actor_bytes(key: &PublicKey) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(b"accord/catalogue-actor/v1\0")
        .chain_update(key.raw())
        .finalize();
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[..16]);
    a
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
    let Some(key) = root.keys().find(|k| actor_bytes(k).as_slice() == actor) else {
        return Err(format!(
            "change {short} is by actor {} which is no key of root v{}",
            hex::encode(actor),
            root.version()
        ));
    };
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
