//! Shared fixtures: the real staging bundle over `bundle_v3.txt`, and ways to tamper with it.
#![allow(dead_code)] // each test binary uses its own subset

use accord_provenance::{Error, Policy, TrustedRoot, Verified};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// The sigstore-python test assets kept in this crate (`tests/data/README.md`).
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sigstore-python");
/// This crate's own test data.
pub const OWN_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// SAN of the bundle's leaf certificate (an rfc822Name).
pub const IDENTITY: &str = "william@yossarian.net";
/// OIDC issuer extension (1.3.6.1.4.1.57264.1.1) of the leaf certificate.
pub const ISSUER: &str = "https://github.com/login/oauth";
/// The entry's integratedTime: 2024-04-02T19:19:09Z, also the certificate's notBefore.
pub const INTEGRATED_TIME: i64 = 1_712_085_549;
/// SHA-256 of `bundle_v3.txt`.
pub const ARTIFACT_SHA256: &str =
    "5e6ae9de58c1177bea615b4fcbfb2fd688e8c4b51c2e56b6a38e817833ec24a2";

/// JSON pointer to the bundle's only transparency log entry.
pub const TLOG: &str = "/verificationMaterial/tlogEntries/0";

pub fn read(dir: &str, name: &str) -> Vec<u8> {
    let path = format!("{dir}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn staging() -> TrustedRoot {
    TrustedRoot::from_json(&read(DATA, "staging_trusted_root.json"))
        .expect("real trusted root loads")
}

pub fn prod() -> TrustedRoot {
    TrustedRoot::from_json(&read(DATA, "prod_trusted_root.json")).expect("real trusted root loads")
}

pub fn artifact() -> Vec<u8> {
    read(DATA, "bundle_v3.txt")
}

pub fn bundle_bytes() -> Vec<u8> {
    read(DATA, "bundle_v3.txt.sigstore")
}

pub fn bundle() -> Value {
    serde_json::from_slice(&bundle_bytes()).expect("valid JSON")
}

pub fn policy() -> Policy {
    Policy::new(IDENTITY, ISSUER)
}

/// Verifies `bundle` for the real artifact against the staging root and the real policy.
pub fn check(bundle: &Value) -> Result<Verified, Error> {
    check_with(bundle, &staging(), &policy())
}

pub fn check_with(bundle: &Value, root: &TrustedRoot, policy: &Policy) -> Result<Verified, Error> {
    let json = serde_json::to_vec(bundle).expect("serializable");
    accord_provenance::verify(&artifact(), &json, root, policy)
}

/// The value at `pointer`, which must exist.
pub fn at<'a>(v: &'a mut Value, pointer: &str) -> &'a mut Value {
    v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the bundle"))
}

/// Decodes the base64 string at `pointer`, lets `edit` change the bytes, re-encodes.
pub fn edit_b64(v: &mut Value, pointer: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let slot = at(v, pointer);
    let mut bytes = STANDARD
        .decode(slot.as_str().expect("a JSON string"))
        .expect("base64");
    edit(&mut bytes);
    *slot = Value::String(STANDARD.encode(bytes));
}

/// Flips the lowest bit of the last byte of the base64 value at `pointer`.
pub fn flip_last(v: &mut Value, pointer: &str) {
    edit_b64(v, pointer, |b| {
        let last = b.len() - 1;
        b[last] ^= 1;
    });
}

/// Replaces the integer (protobuf-JSON string) at `pointer`.
pub fn set_int(v: &mut Value, pointer: &str, n: i64) {
    *at(v, pointer) = Value::String(n.to_string());
}

/// Edits the string at `pointer`.
pub fn edit_str(v: &mut Value, pointer: &str, edit: impl FnOnce(&str) -> String) {
    let slot = at(v, pointer);
    let new = edit(slot.as_str().expect("a JSON string"));
    *slot = Value::String(new);
}

/// The checkpoint envelope of the bundle.
pub fn checkpoint(v: &Value) -> String {
    v.pointer(&format!("{TLOG}/inclusionProof/checkpoint/envelope"))
        .and_then(Value::as_str)
        .expect("the bundle has a checkpoint")
        .to_owned()
}
