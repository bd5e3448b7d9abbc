//! Trusted roots and TUF-style rotation.
//!
//! The first root is installed out of band and checked against itself. Every later root
//! v(N+1) is accepted only when (1) its version is exactly N+1, (2) its signatures meet the
//! `root` rule of v(N) with v(N)'s keys, and (3) they meet the `root` rule of v(N+1) with
//! v(N+1)'s keys — the TUF specification's §5.3 steps, so neither the old keys alone nor
//! the new keys alone can move the cooperative.

use std::collections::BTreeMap;

use accord_protocol::dsse::PAYLOAD_TYPE_ROOT;
use accord_protocol::limits::{MAX_ROOT_BYTES, MAX_ROOT_HOPS};
use accord_protocol::{Envelope, KeyId, ProtocolError, RootBody, Timestamp};

use crate::error::TrustError;
use crate::keys::PublicKey;
use crate::rule::{self, RequirementOutcome};
use crate::tally::Tally;

/// A root whose structure, keys and signatures have been checked.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    body: RootBody,
    keys: BTreeMap<KeyId, PublicKey>,
    envelope: Envelope,
}

/// A root parsed and checked for structure and key material, signatures not yet counted.
#[derive(Debug, Clone)]
struct Candidate(TrustedRoot);

impl Candidate {
    fn parse(bytes: &[u8]) -> Result<Candidate, TrustError> {
        if bytes.len() > MAX_ROOT_BYTES {
            return Err(ProtocolError::TooLarge {
                what: "root",
                size: bytes.len(),
                limit: MAX_ROOT_BYTES,
            }
            .into());
        }
        let envelope = Envelope::from_json(bytes)?;
        Self::from_envelope(envelope)
    }

    fn from_envelope(envelope: Envelope) -> Result<Candidate, TrustError> {
        if envelope.payload_type != PAYLOAD_TYPE_ROOT {
            return Err(ProtocolError::Invalid {
                what: "root",
                detail: format!("payloadType must be {PAYLOAD_TYPE_ROOT:?}"),
            }
            .into());
        }
        let body = RootBody::from_payload(&envelope.payload)?;
        let mut keys = BTreeMap::new();
        for (id, entry) in &body.keys {
            let key = PublicKey::from_raw(&entry.raw(id)?)?;
            keys.insert(id.clone(), key);
        }
        Ok(Candidate(TrustedRoot {
            body,
            keys,
            envelope,
        }))
    }
}

impl TrustedRoot {
    /// Installs the first root (out of band): it must be well formed and meet its own
    /// `root` rule. This is the only root trusted without a predecessor.
    pub fn anchor(bytes: &[u8]) -> Result<TrustedRoot, TrustError> {
        let Candidate(root) = Candidate::parse(bytes)?;
        root.require_root_rule(&root, "its own")?;
        Ok(root)
    }

    /// Parses a root without checking signatures: for showing a root that is being
    /// assembled, never for trusting it.
    pub fn inspect(bytes: &[u8]) -> Result<TrustedRoot, TrustError> {
        Ok(Candidate::parse(bytes)?.0)
    }

    /// Accepts the next root if and only if the rotation rules hold.
    pub fn update(&self, bytes: &[u8]) -> Result<TrustedRoot, TrustError> {
        let Candidate(next) = Candidate::parse(bytes)?;
        let (trusted, got) = (self.version(), next.version());
        if got <= trusted {
            return Err(TrustError::RootSequence {
                trusted,
                got,
                detail: "a root may only move forward (rollback refused)".into(),
            });
        }
        if got != trusted + 1 {
            return Err(TrustError::RootSequence {
                trusted,
                got,
                detail: format!(
                    "versions go up by exactly one; apply v{} first",
                    trusted + 1
                ),
            });
        }
        next.require_root_rule(self, &format!("the trusted v{trusted}"))?;
        next.require_root_rule(&next, "its own")?;
        Ok(next)
    }

    /// Walks from this root through every root in `chain`, in order. Returns the newest.
    pub fn walk<'a>(
        &self,
        chain: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<TrustedRoot, TrustError> {
        let mut current = self.clone();
        for (hops, bytes) in chain.into_iter().enumerate() {
            if hops >= MAX_ROOT_HOPS {
                return Err(TrustError::RootChainTooLong {
                    limit: MAX_ROOT_HOPS,
                });
            }
            current = current.update(bytes)?;
        }
        Ok(current)
    }

    /// Checks that this root's own signatures meet the `root` rule of `under`.
    fn require_root_rule(&self, under: &TrustedRoot, whose: &str) -> Result<(), TrustError> {
        let outcomes = self.root_rule_outcome(under);
        if outcomes.iter().all(|o| o.met) {
            return Ok(());
        }
        let detail = outcomes
            .iter()
            .filter(|o| !o.met)
            .map(RequirementOutcome::explain)
            .collect::<Vec<_>>()
            .join("; ");
        Err(TrustError::RootSignatures {
            version: self.version(),
            detail: format!("under {whose} root rule: {detail}"),
        })
    }

    /// How this root's signatures fare against the `root` rule of `under`.
    pub fn root_rule_outcome(&self, under: &TrustedRoot) -> Vec<RequirementOutcome> {
        under.root_rule_over(&self.envelope)
    }

    /// How the signatures on `env` fare against this root's `root` rule (what a successor
    /// root, or anything else only the steering committee may decide, must meet).
    pub fn root_rule_over(&self, env: &Envelope) -> Vec<RequirementOutcome> {
        let tally = Tally::of(env, self);
        let reqs: Vec<_> = self
            .body
            .rules
            .root
            .all_of
            .iter()
            .map(|r| (r.clone(), "cooperative"))
            .collect();
        rule::evaluate(self, &reqs, &tally)
    }

    pub fn version(&self) -> u64 {
        self.body.version
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.body.expires
    }

    pub fn body(&self) -> &RootBody {
        &self.body
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    pub fn key(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.get(id)
    }

    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }
}

/// Builds an unsigned root envelope from a body (after checking its structure).
pub fn root_envelope(body: &RootBody) -> Result<Envelope, TrustError> {
    body.validate()?;
    for (id, entry) in &body.keys {
        PublicKey::from_raw(&entry.raw(id)?)?;
    }
    Ok(Envelope::new(PAYLOAD_TYPE_ROOT, body.to_payload()))
}
