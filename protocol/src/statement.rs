//! in-toto Statement v1 payloads (<https://github.com/in-toto/attestation>) for the three
//! things the cooperative signs about releases: the release itself, its recall, and a
//! conditional go-ahead for the consenting jurisdictions only.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dsse::{Envelope, PAYLOAD_TYPE_IN_TOTO};
use crate::error::ProtocolError;
use crate::ids::{PrincipalId, truncate};
use crate::limits::{MAX_NAME_LEN, MAX_SUBJECTS};
use crate::time::Timestamp;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_RELEASE: &str = "https://accord.coop/release/v1";
pub const PREDICATE_RECALL: &str = "https://accord.coop/recall/v1";
pub const PREDICATE_CONDITIONAL: &str = "https://accord.coop/conditional/v1";

/// The generic in-toto statement; `predicate` is interpreted by `predicateType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

/// An in-toto ResourceDescriptor. For release artifacts `digest` holds `sha256` and `blake3`
/// (lower-case hex) and `annotations.size` the length in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    pub name: String,
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotations {
    pub size: u64,
}

/// Predicate of a release: what is released, under which root, by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasePredicate {
    pub capability: String,
    pub version: semver::Version,
    /// The root version the proposer saw; a node with an older root must update first.
    pub root_version: u64,
    pub proposer: String,
    pub created: Timestamp,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<ProvenanceRef>,
}

/// Upstream evidence for one artifact: a Sigstore bundle that is itself a subject of the
/// statement, so it is signed by everyone who signs the release, travels and is mirrored
/// like the artifacts, and every node can verify it against its own Sigstore trusted root
/// and identity policy (issue 17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceRef {
    /// `sigstore-bundle`.
    pub kind: String,
    /// The subject the evidence is about.
    pub artifact: String,
    /// The subject that holds the evidence (the bundle JSON).
    pub bundle: String,
    /// SHA-256 of the bundle: the same as its subject's, repeated so that a reader of the
    /// predicate alone sees which bytes are meant.
    pub sha256: String,
    /// Who the proposer found had signed it (informational: each node verifies for itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// The only provenance kind nodes verify.
pub const PROVENANCE_SIGSTORE: &str = "sigstore-bundle";

/// Names one release: its capability, version and the SHA-256 of its exact payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRef {
    pub capability: String,
    pub version: semver::Version,
}

/// Withdraws a release everywhere it is promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallPredicate {
    pub release: ReleaseRef,
    pub reason: String,
    pub created: Timestamp,
}

/// Lets a release go to `consenting` jurisdictions only (procurement framework §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalPredicate {
    pub release: ReleaseRef,
    pub consenting: Vec<PrincipalId>,
    pub reason: String,
    pub created: Timestamp,
}

/// A statement whose predicate has been parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum StatementKind {
    Release {
        artifacts: Vec<Artifact>,
        predicate: ReleasePredicate,
    },
    Recall {
        /// SHA-256 (hex) of the recalled release's payload.
        release_payload_sha256: String,
        predicate: RecallPredicate,
    },
    Conditional {
        release_payload_sha256: String,
        predicate: ConditionalPredicate,
    },
}

impl StatementKind {
    /// For a recall or conditional: the id of the release statement it names.
    pub fn names_release(&self) -> Option<crate::ReleaseId> {
        match self {
            StatementKind::Release { .. } => None,
            StatementKind::Recall {
                release_payload_sha256,
                ..
            }
            | StatementKind::Conditional {
                release_payload_sha256,
                ..
            } => crate::ReleaseId::parse_hex(release_payload_sha256).ok(),
        }
    }

    /// `release`, `recall` or `conditional`.
    pub fn name(&self) -> &'static str {
        match self {
            StatementKind::Release { .. } => "release",
            StatementKind::Recall { .. } => "recall",
            StatementKind::Conditional { .. } => "conditional",
        }
    }
}

/// A release artifact with its verified-shape digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub sha256: [u8; 32],
    pub blake3: [u8; 32],
    pub size: u64,
}

impl Artifact {
    pub fn descriptor(&self) -> ResourceDescriptor {
        ResourceDescriptor {
            name: self.name.clone(),
            digest: BTreeMap::from([
                ("sha256".to_owned(), hex::encode(self.sha256)),
                ("blake3".to_owned(), hex::encode(self.blake3)),
            ]),
            annotations: Some(Annotations { size: self.size }),
        }
    }
}

impl Statement {
    pub fn release(artifacts: &[Artifact], predicate: &ReleasePredicate) -> Self {
        Statement {
            type_: STATEMENT_TYPE.into(),
            subject: artifacts.iter().map(Artifact::descriptor).collect(),
            predicate_type: PREDICATE_RELEASE.into(),
            predicate: serde_json::to_value(predicate).unwrap_or_default(),
        }
    }

    /// A recall or conditional statement about the release carried by `release`.
    pub fn about_release(
        release: &Envelope,
        release_ref: &ReleaseRef,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Self {
        Statement {
            type_: STATEMENT_TYPE.into(),
            subject: vec![ResourceDescriptor {
                name: format!("{}@{}", release_ref.capability, release_ref.version),
                digest: BTreeMap::from([(
                    "sha256".to_owned(),
                    hex::encode(release.payload_digest()),
                )]),
                annotations: None,
            }],
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// Compact JSON: the bytes that get signed. Produced once, then kept as bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Wraps the statement in an unsigned DSSE envelope.
    pub fn to_envelope(&self) -> Envelope {
        Envelope::new(PAYLOAD_TYPE_IN_TOTO, self.to_payload())
    }

    /// Parses a statement payload (the exact signed bytes) on its own: how the catalogue
    /// keeps statements (ADR 0005), with the in-toto payload type implied.
    pub fn from_payload(payload: &[u8]) -> Result<StatementKind, ProtocolError> {
        if payload.len() > crate::limits::MAX_ENVELOPE_BYTES {
            return Err(ProtocolError::TooLarge {
                what: "statement",
                size: payload.len(),
                limit: crate::limits::MAX_ENVELOPE_BYTES,
            });
        }
        let st: Statement =
            serde_json::from_slice(payload).map_err(|e| ProtocolError::Malformed {
                what: "in-toto statement",
                detail: e.to_string(),
            })?;
        st.kind()
    }

    /// Parses the payload of an envelope; refuses any other payload type.
    pub fn from_envelope(env: &Envelope) -> Result<StatementKind, ProtocolError> {
        if env.payload_type != PAYLOAD_TYPE_IN_TOTO {
            return Err(ProtocolError::invalid(
                "envelope",
                format!(
                    "payloadType is {:?}, expected {PAYLOAD_TYPE_IN_TOTO:?}",
                    truncate(&env.payload_type, 80)
                ),
            ));
        }
        let st: Statement =
            serde_json::from_slice(&env.payload).map_err(|e| ProtocolError::Malformed {
                what: "in-toto statement",
                detail: e.to_string(),
            })?;
        st.kind()
    }

    /// Interprets and validates the predicate.
    pub fn kind(&self) -> Result<StatementKind, ProtocolError> {
        if self.type_ != STATEMENT_TYPE {
            return Err(ProtocolError::invalid(
                "statement",
                format!(
                    "_type is {:?}, expected {STATEMENT_TYPE:?}",
                    truncate(&self.type_, 80)
                ),
            ));
        }
        if self.subject.is_empty() || self.subject.len() > MAX_SUBJECTS {
            return Err(ProtocolError::invalid(
                "statement",
                format!(
                    "has {} subjects, expected 1 to {MAX_SUBJECTS}",
                    self.subject.len()
                ),
            ));
        }
        let predicate = |what: &'static str| {
            move |e: serde_json::Error| ProtocolError::Malformed {
                what,
                detail: e.to_string(),
            }
        };
        match self.predicate_type.as_str() {
            PREDICATE_RELEASE => {
                let p: ReleasePredicate = serde_json::from_value(self.predicate.clone())
                    .map_err(predicate("release predicate"))?;
                check_name("capability id", &p.capability)?;
                let mut names = BTreeSet::new();
                let mut artifacts = Vec::with_capacity(self.subject.len());
                let mut total: u64 = 0;
                for s in &self.subject {
                    let a = artifact_from(s)?;
                    // Sizes come from whoever wrote the statement: their sum must be a
                    // number, or every later sum (progress, quotas) would overflow.
                    total = total.checked_add(a.size).ok_or_else(|| {
                        ProtocolError::invalid(
                            "release",
                            "artifact sizes add up to more than 2^64 bytes",
                        )
                    })?;
                    if !names.insert(a.name.clone()) {
                        return Err(ProtocolError::invalid(
                            "release",
                            format!("artifact {:?} is listed twice", a.name),
                        ));
                    }
                    artifacts.push(a);
                }
                check_provenance(&p.provenance, &artifacts)?;
                Ok(StatementKind::Release {
                    artifacts,
                    predicate: p,
                })
            }
            PREDICATE_RECALL => {
                let p: RecallPredicate = serde_json::from_value(self.predicate.clone())
                    .map_err(predicate("recall predicate"))?;
                let digest = self.release_subject(&p.release)?;
                Ok(StatementKind::Recall {
                    release_payload_sha256: digest,
                    predicate: p,
                })
            }
            PREDICATE_CONDITIONAL => {
                let p: ConditionalPredicate = serde_json::from_value(self.predicate.clone())
                    .map_err(predicate("conditional predicate"))?;
                if p.consenting.is_empty() {
                    return Err(ProtocolError::invalid(
                        "conditional",
                        "names no consenting jurisdiction",
                    ));
                }
                let digest = self.release_subject(&p.release)?;
                Ok(StatementKind::Conditional {
                    release_payload_sha256: digest,
                    predicate: p,
                })
            }
            other => Err(ProtocolError::invalid(
                "statement",
                format!("unknown predicateType {:?}", truncate(other, 80)),
            )),
        }
    }

    /// Recall and conditional statements name exactly one subject: the release payload.
    fn release_subject(&self, r: &ReleaseRef) -> Result<String, ProtocolError> {
        check_name("capability id", &r.capability)?;
        let [s] = self.subject.as_slice() else {
            return Err(ProtocolError::invalid(
                "statement",
                "a recall or conditional names exactly one release",
            ));
        };
        let expected = format!("{}@{}", r.capability, r.version);
        if s.name != expected {
            return Err(ProtocolError::invalid(
                "statement",
                format!(
                    "subject {:?} does not match predicate {expected}",
                    truncate(&s.name, 80)
                ),
            ));
        }
        let digest = s
            .digest
            .get("sha256")
            .ok_or_else(|| ProtocolError::invalid("statement", "subject has no sha256 digest"))?;
        parse_hex32("release digest", digest)?;
        Ok(digest.clone())
    }
}

fn artifact_from(s: &ResourceDescriptor) -> Result<Artifact, ProtocolError> {
    check_artifact_name(&s.name)?;
    let get = |alg: &str| {
        s.digest.get(alg).ok_or_else(|| {
            ProtocolError::invalid("artifact", format!("{:?} has no {alg} digest", s.name))
        })
    };
    let sha256 = parse_hex32("sha256 digest", get("sha256")?)?;
    let blake3 = parse_hex32("blake3 digest", get("blake3")?)?;
    let size =
        s.annotations.as_ref().map(|a| a.size).ok_or_else(|| {
            ProtocolError::invalid("artifact", format!("{:?} has no size", s.name))
        })?;
    Ok(Artifact {
        name: s.name.clone(),
        sha256,
        blake3,
        size,
    })
}

fn parse_hex32(what: &'static str, s: &str) -> Result<[u8; 32], ProtocolError> {
    let mut out = [0u8; 32];
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ProtocolError::invalid(
            what,
            "must be 64 lower-case hex digits",
        ));
    }
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| ProtocolError::invalid(what, "must be 64 lower-case hex digits"))?;
    Ok(out)
}

/// Capability ids and similar names: printable, no spaces, no separators that could be
/// mistaken for `CAP@VERSION` or a path.
pub fn check_name(what: &'static str, s: &str) -> Result<(), ProtocolError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::invalid(
            what,
            format!(
                "{:?} must be 1-64 characters of A-Z, a-z, 0-9, '-', '_', '.'",
                truncate(s, 80)
            ),
        ))
    }
}

/// Artifact names become file names in `accord fetch --out DIR`, so anything that could
/// escape the directory or confuse a shell is refused here, where the name is signed.
pub fn check_artifact_name(s: &str) -> Result<(), ProtocolError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '~'));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::invalid(
            "artifact name",
            format!(
                "{:?} must be a plain file name (A-Z, a-z, 0-9, '-', '_', '.', '+', '~'; no '/', not '..')",
                truncate(s, 80)
            ),
        ))
    }
}

/// Every provenance reference binds a bundle subject to another subject, by the bundle's
/// SHA-256, at most one per artifact.
fn check_provenance(refs: &[ProvenanceRef], artifacts: &[Artifact]) -> Result<(), ProtocolError> {
    let invalid = |why: String| ProtocolError::invalid("release provenance", why);
    let subject = |name: &str| artifacts.iter().find(|a| a.name == name);
    let mut covered = BTreeSet::new();
    for r in refs {
        if r.kind != PROVENANCE_SIGSTORE {
            return Err(invalid(format!("unknown kind {:?}", r.kind)));
        }
        if subject(&r.artifact).is_none() {
            return Err(invalid(format!(
                "{:?} is not an artifact of the release",
                r.artifact
            )));
        }
        let bundle = subject(&r.bundle).ok_or_else(|| {
            invalid(format!(
                "bundle {:?} is not an artifact of the release",
                r.bundle
            ))
        })?;
        if r.bundle == r.artifact {
            return Err(invalid(format!(
                "{:?} cannot be its own provenance",
                r.artifact
            )));
        }
        if hex::encode(bundle.sha256) != r.sha256 {
            return Err(invalid(format!(
                "the sha256 given for {:?} is not that of the subject",
                r.bundle
            )));
        }
        if !covered.insert(r.artifact.as_str()) {
            return Err(invalid(format!(
                "{:?} has two provenance bundles",
                r.artifact
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> Artifact {
        Artifact {
            name: "chart.tgz".into(),
            sha256: [1; 32],
            blake3: [2; 32],
            size: 42,
        }
    }

    fn predicate() -> ReleasePredicate {
        ReleasePredicate {
            capability: "CAP-B01".into(),
            version: semver::Version::new(1, 4, 0),
            root_version: 1,
            proposer: "eu supplier ci".into(),
            created: Timestamp::from_unix(1_800_000_000),
            provenance: vec![],
        }
    }

    #[test]
    fn release_round_trips_through_an_envelope() {
        let env = Statement::release(&[artifact()], &predicate()).to_envelope();
        match Statement::from_envelope(&env).expect("parses") {
            StatementKind::Release {
                artifacts,
                predicate: p,
            } => {
                assert_eq!(artifacts, vec![artifact()]);
                assert_eq!(p, predicate());
            }
            other => panic!("wrong kind {other:?}"),
        }
    }

    #[test]
    fn provenance_must_bind_a_bundle_subject_to_another_subject() {
        let bundle = Artifact {
            name: "chart.tgz.sigstore.json".into(),
            sha256: [3; 32],
            blake3: [4; 32],
            size: 9000,
        };
        let good = ProvenanceRef {
            kind: PROVENANCE_SIGSTORE.into(),
            artifact: "chart.tgz".into(),
            bundle: bundle.name.clone(),
            sha256: hex::encode([3; 32]),
            identity: None,
            issuer: None,
        };
        let with = |refs: Vec<ProvenanceRef>| {
            let mut p = predicate();
            p.provenance = refs;
            Statement::from_envelope(
                &Statement::release(&[artifact(), bundle.clone()], &p).to_envelope(),
            )
        };
        assert!(with(vec![good.clone()]).is_ok());
        let cases: Vec<(ProvenanceRef, &str)> = vec![
            (
                ProvenanceRef {
                    kind: "pgp".into(),
                    ..good.clone()
                },
                "unknown kind",
            ),
            (
                ProvenanceRef {
                    artifact: "other.bin".into(),
                    ..good.clone()
                },
                "not an artifact",
            ),
            (
                ProvenanceRef {
                    bundle: "missing.json".into(),
                    ..good.clone()
                },
                "not an artifact",
            ),
            (
                ProvenanceRef {
                    bundle: "chart.tgz".into(),
                    sha256: hex::encode([1; 32]),
                    ..good.clone()
                },
                "its own provenance",
            ),
            (
                ProvenanceRef {
                    sha256: hex::encode([9; 32]),
                    ..good.clone()
                },
                "not that of the subject",
            ),
        ];
        for (bad, why) in cases {
            let e = with(vec![bad.clone()]).expect_err("accepted");
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
        let e = with(vec![good.clone(), good]).expect_err("two bundles for one artifact");
        assert!(e.to_string().contains("two provenance bundles"), "{e}");
    }

    #[test]
    fn refuses_artifact_sizes_that_overflow() {
        let mut a = artifact();
        a.size = u64::MAX;
        let mut b = artifact();
        b.name = "image.tar".into();
        b.size = 2;
        let env = Statement::release(&[a, b], &predicate()).to_envelope();
        let e = Statement::from_envelope(&env).expect_err("overflow accepted");
        assert!(e.to_string().contains("2^64"), "{e}");
    }

    #[test]
    fn refuses_path_like_artifact_names() {
        for bad in ["../etc/passwd", "a/b", "..", "", "-rf", "a b", "x\u{0}"] {
            let mut a = artifact();
            a.name = bad.into();
            let env = Statement::release(&[a], &predicate()).to_envelope();
            assert!(Statement::from_envelope(&env).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_duplicate_artifacts_and_wrong_payload_type() {
        let env = Statement::release(&[artifact(), artifact()], &predicate()).to_envelope();
        assert!(Statement::from_envelope(&env).is_err());
        let mut env = Statement::release(&[artifact()], &predicate()).to_envelope();
        env.payload_type = "application/json".into();
        assert!(Statement::from_envelope(&env).is_err());
    }
}
