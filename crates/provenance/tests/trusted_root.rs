//! Trusted roots: both real ones load, broken ones are refused, and what a root says about
//! its keys' validity and types is enforced.

mod common;

use accord_provenance::{Error, TrustedRoot};
use common::*;
use serde_json::Value;

fn staging_json() -> Value {
    serde_json::from_slice(&read(DATA, "staging_trusted_root.json")).expect("valid JSON")
}

fn load(root: &Value) -> Result<TrustedRoot, Error> {
    TrustedRoot::from_json(&serde_json::to_vec(root).expect("serializable"))
}

/// Verifies the real bundle against an edited staging root.
fn check_against(root: &Value) -> Result<accord_provenance::Verified, Error> {
    check_with(
        &bundle(),
        &load(root).expect("edited root loads"),
        &policy(),
    )
}

#[test]
fn real_roots_load() {
    staging();
    prod();
}

#[test]
fn malformed_roots_are_refused() {
    for bytes in [&b""[..], b"{", b"[]", b"{\"mediaType\": 3}"] {
        assert!(matches!(
            TrustedRoot::from_json(bytes),
            Err(Error::MalformedTrustedRoot(_))
        ));
    }
    let mut root = staging_json();
    root["mediaType"] = "application/vnd.dev.sigstore.trustedroot+json;version=9".into();
    assert!(matches!(load(&root), Err(Error::MalformedTrustedRoot(_))));

    let mut root = staging_json();
    root["tlogs"] = Value::Array(vec![]);
    assert!(matches!(load(&root), Err(Error::MalformedTrustedRoot(_))));

    let mut root = staging_json();
    root["certificateAuthorities"] = Value::Array(vec![]);
    assert!(matches!(load(&root), Err(Error::MalformedTrustedRoot(_))));

    let mut root = staging_json();
    root["tlogs"][0]["publicKey"]
        .as_object_mut()
        .expect("a JSON object")
        .remove("rawBytes");
    assert!(matches!(load(&root), Err(Error::MalformedTrustedRoot(_))));

    let mut root = staging_json();
    root["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] = "AAAA".into();
    assert!(matches!(load(&root), Err(Error::MalformedTrustedRoot(_))));
}

#[test]
fn oversized_root_is_refused_before_parsing() {
    let big = vec![b' '; accord_provenance::MAX_TRUSTED_ROOT_BYTES + 1];
    assert!(matches!(
        TrustedRoot::from_json(&big),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn rekor_key_declared_as_another_type_is_unusable() {
    let mut root = staging_json();
    root["tlogs"][0]["publicKey"]["keyDetails"] = "PKIX_ED25519".into();
    let err = check_against(&root).expect_err("must be rejected");
    assert!(matches!(err, Error::UnusableLogKey { .. }), "{err}");

    root["tlogs"][0]["publicKey"]["keyDetails"] = "PKIX_RSA_PKCS1V15_2048_SHA256".into();
    assert!(matches!(
        check_against(&root),
        Err(Error::UnusableLogKey { .. })
    ));
}

#[test]
fn rekor_key_of_another_log_does_not_verify_the_checkpoint() {
    // The staging log's id, but the key of another (P-256) log: the CT log's.
    let mut root = staging_json();
    let ct_key = root["ctlogs"][1]["publicKey"]["rawBytes"].clone();
    root["tlogs"][0]["publicKey"]["rawBytes"] = ct_key;
    assert!(matches!(
        check_against(&root),
        Err(Error::CheckpointSignature { .. })
    ));
}

#[test]
fn rekor_key_expired_before_integration_is_rejected() {
    let mut root = staging_json();
    root["tlogs"][0]["publicKey"]["validFor"]["end"] = "2024-04-02T19:19:08Z".into();
    let err = check_against(&root).expect_err("must be rejected");
    assert!(matches!(err, Error::LogKeyNotValidAt { .. }), "{err}");
    // Its last valid second is still valid.
    root["tlogs"][0]["publicKey"]["validFor"]["end"] = "2024-04-02T19:19:09Z".into();
    assert!(check_against(&root).is_ok());
}

#[test]
fn fulcio_ca_not_yet_valid_at_issuance_is_not_trusted() {
    let mut root = staging_json();
    root["certificateAuthorities"][0]["validFor"]["start"] = "2024-04-02T19:19:10Z".into();
    assert!(matches!(check_against(&root), Err(Error::NoFulcioCaAt(_))));
}

#[test]
fn another_instances_fulcio_ca_does_not_issue_this_certificate() {
    let mut root = staging_json();
    let prod: Value =
        serde_json::from_slice(&read(DATA, "prod_trusted_root.json")).expect("valid JSON");
    root["certificateAuthorities"] = prod["certificateAuthorities"].clone();
    let err = check_against(&root).expect_err("must be rejected");
    assert!(matches!(err, Error::CertificateChain(_)), "{err}");
}

#[test]
fn without_its_ct_log_the_certificate_timestamp_does_not_verify() {
    let mut root = staging_json();
    root["ctlogs"] = Value::Array(vec![]);
    let err = check_against(&root).expect_err("must be rejected");
    assert!(matches!(err, Error::CertificateTimestamp(_)), "{err}");

    // The CT log key whose validFor ended in 2022 is not used for a 2024 certificate.
    let mut root = staging_json();
    root["ctlogs"][2]["publicKey"]["validFor"]["end"] = "2022-12-31T00:00:00Z".into();
    assert!(matches!(
        check_against(&root),
        Err(Error::CertificateTimestamp(_))
    ));
}
