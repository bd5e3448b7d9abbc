//! Sigstore trusted-root updates (issue 17): the Sigstore trusted root a node verifies
//! upstream provenance against changes only when the steering committee says so, by the
//! same rule that changes the cooperative root.
//!
//! An update is a DSSE envelope whose payload names a sequence number, the SHA-256 of the
//! trusted root it replaces, and carries the new `trusted_root.json` byte for byte (base64)
//! with its SHA-256. Steering representatives sign it online or air-gapped like anything
//! else (`accord sigstore-root sign`); a node applies it only when its signatures meet the
//! `root` rule of the node's current cooperative root, it replaces exactly the trusted root
//! the node uses now, and its sequence is above the one applied before. Updates thus form a
//! chain, like roots: an old update replayed cannot roll a node back, not even one that
//! never applied an update. Nothing is fetched: the update is carried to the node.

use accord_protocol::{Envelope, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::TrustError;
use crate::root::TrustedRoot;
use crate::rule::RequirementOutcome;

/// The DSSE payload type of an update.
pub const PAYLOAD_TYPE: &str = "application/vnd.accord.sigstore-trusted-root+json";
/// `_type` of the payload.
const TYPE: &str = "https://accord.example/sigstore-trusted-root/v1";
/// Sigstore trusted roots are tens of kilobytes; an update carrying more is refused.
pub const MAX_TRUSTED_ROOT_BYTES: usize = 256 << 10;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(rename = "_type")]
    type_: String,
    sequence: u64,
    created: Timestamp,
    /// SHA-256 (hex) of the trusted root this one replaces.
    previous: String,
    sha256: String,
    trusted_root: String,
}

/// What an update says, read from its payload (not yet a statement about its signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreRootUpdate {
    /// Goes up with every update the committee signs.
    pub sequence: u64,
    pub created: Timestamp,
    /// SHA-256 of the trusted root it replaces.
    pub previous: [u8; 32],
    /// The new `trusted_root.json`, exactly.
    pub trusted_root: Vec<u8>,
    pub sha256: [u8; 32],
}

fn invalid(why: impl Into<String>) -> TrustError {
    TrustError::SigstoreRoot(why.into())
}

/// The unsigned update carrying `trusted_root` as number `sequence`, to replace the
/// trusted root `previous`.
pub fn propose(
    trusted_root: &[u8],
    previous: &[u8],
    sequence: u64,
    created: Timestamp,
) -> Result<Envelope, TrustError> {
    if trusted_root.len() > MAX_TRUSTED_ROOT_BYTES {
        return Err(invalid(format!(
            "the trusted root is {} bytes, more than {MAX_TRUSTED_ROOT_BYTES}",
            trusted_root.len()
        )));
    }
    let payload = Payload {
        type_: TYPE.into(),
        sequence,
        created,
        previous: hex::encode(Sha256::digest(previous)),
        sha256: hex::encode(Sha256::digest(trusted_root)),
        trusted_root: STANDARD.encode(trusted_root),
    };
    let bytes = serde_json::to_vec(&payload).map_err(|e| invalid(e.to_string()))?;
    Ok(Envelope::new(PAYLOAD_TYPE, bytes))
}

/// Reads an update's payload: its type, sequence and the trusted root matching its
/// SHA-256. Says nothing about who signed it; see [`verify`].
pub fn read(env: &Envelope) -> Result<SigstoreRootUpdate, TrustError> {
    if env.payload_type != PAYLOAD_TYPE {
        return Err(invalid(format!(
            "payload type is {:?}, not {PAYLOAD_TYPE:?}",
            env.payload_type
        )));
    }
    let p: Payload = serde_json::from_slice(&env.payload).map_err(|e| invalid(e.to_string()))?;
    if p.type_ != TYPE {
        return Err(invalid(format!("_type is {:?}, not {TYPE:?}", p.type_)));
    }
    // Bounded before decoding: base64 is 4/3 of the bytes.
    if p.trusted_root.len() > MAX_TRUSTED_ROOT_BYTES / 3 * 4 + 4 {
        return Err(invalid("the trusted root is too large"));
    }
    let trusted_root = STANDARD
        .decode(&p.trusted_root)
        .map_err(|_| invalid("trusted_root is not base64"))?;
    let sha256: [u8; 32] = Sha256::digest(&trusted_root).into();
    if hex::encode(sha256) != p.sha256 {
        return Err(invalid("the trusted root does not match its sha256"));
    }
    let mut previous = [0u8; 32];
    hex::decode_to_slice(&p.previous, &mut previous)
        .map_err(|_| invalid("previous is not a SHA-256"))?;
    Ok(SigstoreRootUpdate {
        sequence: p.sequence,
        created: p.created,
        previous,
        trusted_root,
        sha256,
    })
}

/// The update, if it is well formed, signed as the cooperative root's `root` rule requires,
/// a successor of `current` (the trusted root the node uses now), and newer than `applied`
/// (the sequence applied before, if any).
pub fn verify(
    env: &Envelope,
    root: &TrustedRoot,
    current: &[u8],
    applied: Option<u64>,
) -> Result<SigstoreRootUpdate, TrustError> {
    let update = read(env)?;
    let current: [u8; 32] = Sha256::digest(current).into();
    if update.previous != current {
        return Err(invalid(format!(
            "update {} replaces trusted root {}, but this node uses {}: apply the updates in order (rollback refused)",
            update.sequence,
            hex::encode(update.previous),
            hex::encode(current)
        )));
    }
    if let Some(applied) = applied
        && update.sequence <= applied
    {
        return Err(invalid(format!(
            "update {} is not newer than the one applied ({applied}); rollback refused",
            update.sequence
        )));
    }
    let unmet: Vec<String> = root
        .root_rule_over(env)
        .iter()
        .filter(|o| !o.met)
        .map(RequirementOutcome::explain)
        .collect();
    if !unmet.is_empty() {
        return Err(invalid(format!(
            "not signed as root v{}'s root rule requires: {}",
            root.version(),
            unmet.join("; ")
        )));
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign_envelope;
    use crate::testkit::{Cooperative, Shape};

    const OLD: &[u8] = b"{\"mediaType\":\"old\"}";
    const NEW: &[u8] = b"{\"mediaType\":\"x\"}";

    fn coop_root(coop: &Cooperative) -> TrustedRoot {
        let steering = coop.steering();
        let refs: Vec<&str> = steering.iter().map(String::as_str).collect();
        let bytes = coop.signed_root(1, &refs).expect("root").to_json();
        TrustedRoot::anchor(&bytes).expect("anchor")
    }

    fn signed(coop: &Cooperative, sequence: u64, by: &[String]) -> Envelope {
        let mut env = propose(NEW, OLD, sequence, Timestamp::from_unix(1)).expect("update");
        for s in by {
            sign_envelope(&mut env, &coop.signer(s).expect("key"));
        }
        env
    }

    #[test]
    fn a_steering_majority_applies_an_update_and_fewer_do_not() {
        let coop = Cooperative::new(Shape::default());
        let root = coop_root(&coop);
        let steering = coop.steering();
        let all = signed(&coop, 2, &steering);
        let update = verify(&all, &root, OLD, Some(1)).expect("majority");
        assert_eq!(update.trusted_root, NEW);
        let one = signed(&coop, 2, &steering[..1]);
        let e = verify(&one, &root, OLD, Some(1)).expect_err("one signature");
        assert!(e.to_string().contains("root rule"), "{e}");
        // A lead's signature is not a steering one.
        let lead = signed(&coop, 2, &["uk.lead".to_owned()]);
        assert!(verify(&lead, &root, OLD, None).is_err());
    }

    #[test]
    fn replays_and_tampering_are_refused() {
        let coop = Cooperative::new(Shape::default());
        let root = coop_root(&coop);
        let env = signed(&coop, 2, &coop.steering());
        let e = verify(&env, &root, OLD, Some(2)).expect_err("replay");
        assert!(e.to_string().contains("rollback"), "{e}");
        // Replayed on a node that never applied an update but moved past OLD another way.
        let e = verify(&env, &root, b"{\"mediaType\":\"newer\"}", None).expect_err("replay");
        assert!(e.to_string().contains("in order"), "{e}");
        let mut tampered = env.clone();
        tampered.payload = String::from_utf8(tampered.payload)
            .expect("utf-8")
            .replace("\"sequence\":2", "\"sequence\":9")
            .into_bytes();
        assert!(verify(&tampered, &root, OLD, Some(2)).is_err());
        let mut wrong_type = env;
        wrong_type.payload_type = "application/vnd.in-toto+json".into();
        assert!(verify(&wrong_type, &root, OLD, None).is_err());
    }
}
