//! A real DSSE (in-toto) bundle from the public-good instance verifies through the same
//! checks, with the artifact matched against the statement's subjects.

mod common;

use accord_provenance::{Error, Policy, verify_digest};
use common::*;

const IDENTITY: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The statement's only subject.
const SUBJECT_SHA256: &str = "c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";

fn digest(hex_digest: &str) -> [u8; 32] {
    hex::decode(hex_digest)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

#[test]
fn dsse_bundle_verifies_for_its_subject() {
    let json = read(OWN_DATA, "dsse_bundle_v03.json");
    let verified = verify_digest(
        digest(SUBJECT_SHA256),
        &json,
        &prod(),
        &Policy::new(IDENTITY, ISSUER),
    )
    .expect("the DSSE bundle verifies");
    assert_eq!(verified.log_url, "https://rekor.sigstore.dev");
    assert_eq!(verified.signed_at, 1_775_719_409);
    assert_eq!(verified.log_index, Some(1_261_105_807));
}

#[test]
fn dsse_bundle_does_not_cover_another_artifact() {
    let json = read(OWN_DATA, "dsse_bundle_v03.json");
    let err = verify_digest(
        digest(ARTIFACT_SHA256),
        &json,
        &prod(),
        &Policy::new(IDENTITY, ISSUER),
    )
    .expect_err("must be rejected");
    assert!(matches!(err, Error::ArtifactNotInStatement(_)), "{err}");
}

#[test]
fn dsse_bundle_against_the_staging_root_is_an_unknown_log() {
    let json = read(OWN_DATA, "dsse_bundle_v03.json");
    let err = verify_digest(
        digest(SUBJECT_SHA256),
        &json,
        &staging(),
        &Policy::new(IDENTITY, ISSUER),
    )
    .expect_err("must be rejected");
    assert!(matches!(err, Error::UnknownLog { .. }), "{err}");
}
