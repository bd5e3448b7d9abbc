//! Signatures over catalogue changes: Ed25519 by the change's author over a domain-separated
//! change hash. Every change has its own Automerge actor (ADR 0008): 16 bytes derived from
//! the author's public key (a domain-separated SHA-256, so the root chain's key list tells
//! which key must have signed, and a change cannot claim another node's key without it),
//! then 8 bytes that make the actor unique to the change. Two changes by one key are two
//! actors, which Automerge merges like any concurrent edits: a key that signs two different
//! changes on the same history ("equivocates") cannot split the cooperative in two.

use std::collections::HashMap;

use accord_trust::{KeyStanding, PublicKey, RootChain, SecretKey};
use automerge::{ActorId, ChangeHash};
use sha2::{Digest, Sha256};

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

pub fn verify(key: &PublicKey, hash: &ChangeHash, signature: &[u8; 64]) -> bool {
    key.verify(&message(hash), signature)
}

/// The 16 bytes naming `key` at the start of every actor it writes with.
pub fn actor_of(key: &PublicKey) -> ActorId {
    ActorId::from(actor_bytes(key).as_slice())
}

/// The actor of one change by `key`: its 16 bytes, then `nonce`.
pub fn change_actor(key: &PublicKey, nonce: [u8; 8]) -> ActorId {
    let mut a = [0u8; 24];
    a[..16].copy_from_slice(&actor_bytes(key));
    a[16..].copy_from_slice(&nonce);
    ActorId::from(a.as_slice())
}

/// The nonce of a change made on `heads` at `time` with `message`: what tells two changes
/// by one key apart, the same on every machine for the same change (simulations replay).
pub fn change_nonce(heads: &[ChangeHash], time: i64, message: &str) -> [u8; 8] {
    let mut h = Sha256::new().chain_update(b"accord/change-nonce/v1\0");
    for head in heads {
        h.update(head.0);
    }
    h.update(time.to_le_bytes());
    h.update(message.as_bytes());
    let d = h.finalize();
    let mut n = [0u8; 8];
    n.copy_from_slice(&d[..8]);
    n
}

/// The key part of a change's actor (`change_actor`), or `None` if the actor is not one a
/// node writes with.
pub fn author_prefix(actor: &[u8]) -> Option<[u8; 16]> {
    if actor.len() != 24 {
        return None;
    }
    <[u8; 16]>::try_from(&actor[..16]).ok()
}

pub fn actor_bytes(key: &PublicKey) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(b"accord/catalogue-actor/v1\0")
        .chain_update(key.raw())
        .finalize();
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[..16]);
    a
}

/// Every node key of the chain by the actor it writes with.
pub fn authors(chain: &RootChain) -> HashMap<[u8; 16], KeyStanding<'_>> {
    chain
        .node_keys()
        .map(|s| (actor_bytes(s.key()), s))
        .collect()
}

/// The standing of the key behind an actor given in hex (as `schema` reports authors).
pub fn author_of<'c>(chain: &'c RootChain, actor_hex: &str) -> Option<KeyStanding<'c>> {
    let prefix = author_prefix(&hex::decode(actor_hex).ok()?)?;
    chain.node_keys().find(|s| actor_bytes(s.key()) == prefix)
}
