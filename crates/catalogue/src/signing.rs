//! Signatures over catalogue changes: Ed25519 by the change's author over a domain-separated
//! change hash. The change's Automerge actor is derived from the author's public key
//! (16 bytes of a domain-separated SHA-256, the size of Automerge's own random actors), so
//! the root chain's key list tells which key must have signed, and a change cannot claim
//! another node's actor without that node's key.

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

/// The actor id a node writes with.
pub fn actor_of(key: &PublicKey) -> ActorId {
    ActorId::from(actor_bytes(key).as_slice())
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
    let bytes = hex::decode(actor_hex).ok()?;
    chain
        .node_keys()
        .find(|s| actor_bytes(s.key()).as_slice() == bytes.as_slice())
}
