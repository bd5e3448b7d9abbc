//! The real staging bundle verifies, and every tampered copy is rejected for its own reason.

mod common;

use accord_provenance::{Error, Policy, verify_digest};
use common::*;
use serde_json::Value;

#[test]
fn real_bundle_verifies() {
    let verified = check(&bundle()).expect("the real bundle verifies");
    assert_eq!(verified.identity, IDENTITY);
    assert_eq!(verified.oidc_issuer, ISSUER);
    assert_eq!(verified.signed_at, INTEGRATED_TIME);
    assert_eq!(verified.log_index, Some(25_915_956));
    assert_eq!(verified.log_url, "https://rekor.sigstage.dev");
    assert_eq!(
        verified.log_id,
        "d32f30a3c32d639c2b762205a21c7bb07788e68283a4ae6f42118723a1bea496"
    );
    assert_eq!(verified.tree_size, 25_901_138);
    assert_eq!(
        hex::encode(verified.root_hash),
        "8860281dc70923215e985c6611fb6d8b6602f21bcfaa2c418b9cb5132bdf1787"
    );
    assert_eq!(hex::encode(verified.sha256), ARTIFACT_SHA256);
}

#[test]
fn digest_entry_point_agrees() {
    let digest: [u8; 32] = hex::decode(ARTIFACT_SHA256)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let by_digest = verify_digest(digest, &bundle_bytes(), &staging(), &policy())
        .expect("the real bundle verifies");
    assert_eq!(
        by_digest,
        check(&bundle()).expect("the real bundle verifies")
    );
}

/// The node runs Tokio: verification must not build or block on a runtime of its own.
#[tokio::test]
async fn verifies_inside_a_tokio_runtime() {
    assert!(check(&bundle()).is_ok());
}

// --- the inclusion proof -------------------------------------------------------------------

#[test]
fn every_inclusion_proof_hash_flipped_is_rejected() {
    let hashes = bundle()
        .pointer(&format!("{TLOG}/inclusionProof/hashes"))
        .and_then(Value::as_array)
        .map(Vec::len)
        .expect("inclusion proof hashes");
    assert_eq!(hashes, 11);
    for i in 0..hashes {
        let mut b = bundle();
        flip_last(&mut b, &format!("{TLOG}/inclusionProof/hashes/{i}"));
        assert!(
            matches!(check(&b), Err(Error::InclusionProofMismatch)),
            "hash {i}"
        );
    }
}

#[test]
fn inclusion_proof_with_a_hash_missing_is_malformed() {
    let mut b = bundle();
    at(&mut b, &format!("{TLOG}/inclusionProof/hashes"))
        .as_array_mut()
        .expect("a JSON array")
        .pop();
    let err = check(&b).expect_err("must be rejected");
    assert!(matches!(err, Error::MalformedInclusionProof(_)), "{err}");
    assert!(err.to_string().contains("10 hashes"), "{err}");
}

#[test]
fn root_hash_flipped_is_rejected() {
    let mut b = bundle();
    flip_last(&mut b, &format!("{TLOG}/inclusionProof/rootHash"));
    assert!(matches!(
        check(&b),
        Err(Error::CheckpointRootHashMismatch { .. })
    ));
}

#[test]
fn proof_tree_size_changed_is_rejected() {
    let mut b = bundle();
    set_int(
        &mut b,
        &format!("{TLOG}/inclusionProof/treeSize"),
        25_901_139,
    );
    assert!(matches!(
        check(&b),
        Err(Error::CheckpointTreeSizeMismatch {
            proof: 25_901_139,
            checkpoint: 25_901_138
        })
    ));
}

#[test]
fn proof_leaf_index_changed_is_rejected() {
    // Same proof length for index 25901136, so it is the path that fails.
    let mut b = bundle();
    set_int(
        &mut b,
        &format!("{TLOG}/inclusionProof/logIndex"),
        25_901_136,
    );
    assert!(matches!(check(&b), Err(Error::InclusionProofMismatch)));
    // Past the end of the tree.
    set_int(
        &mut b,
        &format!("{TLOG}/inclusionProof/logIndex"),
        25_901_138,
    );
    assert!(matches!(check(&b), Err(Error::MalformedInclusionProof(_))));
}

#[test]
fn canonicalized_body_altered_is_not_in_the_log() {
    let mut b = bundle();
    edit_b64(&mut b, &format!("{TLOG}/canonicalizedBody"), |body| {
        // Same JSON with one more space: the body comparison (on parsed JSON)
        // would accept it, the Merkle leaf hash does not.
        body.insert(1, b' ');
    });
    assert!(matches!(check(&b), Err(Error::InclusionProofMismatch)));
}

// --- the checkpoint ------------------------------------------------------------------------

const ENVELOPE: &str = "/verificationMaterial/tlogEntries/0/inclusionProof/checkpoint/envelope";

#[test]
fn checkpoint_text_altered_is_rejected() {
    let original = checkpoint(&bundle());
    let root_b64 = "iGAoHccJIyFemFxmEftti2YC8hvPqixBi5y1EyvfF4c=";
    assert!(original.contains(root_b64));
    let edits = [
        (
            "tree size",
            original.replacen("\n25901138\n", "\n25901139\n", 1),
        ),
        (
            "root hash",
            original.replacen(root_b64, "AAAAHccJIyFemFxmEftti2YC8hvPqixBi5y1EyvfF4c=", 1),
        ),
        (
            "origin",
            original.replacen("rekor.sigstage.dev - ", "rekor.sigstore.dev - ", 1),
        ),
        (
            "extension line",
            original.replacen("=\n\n", "=\nTimestamp: 1\n\n", 1),
        ),
    ];
    for (what, edited) in edits {
        assert_ne!(edited, original, "{what}");
        let mut b = bundle();
        *at(&mut b, ENVELOPE) = Value::String(edited);
        let result = check(&b);
        assert!(
            matches!(result, Err(Error::CheckpointSignature { .. })),
            "{what}: {result:?}"
        );
    }
}

/// The checkpoint's signature line: "— rekor.sigstage.dev <base64(hint ‖ sig)>".
fn edit_checkpoint_signature(b: &mut Value, edit: impl FnOnce(&mut Vec<u8>)) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    edit_str(b, ENVELOPE, |s| {
        let (text, line) = s.trim_end().rsplit_once(' ').expect("signature line");
        let mut sig = STANDARD.decode(line).expect("base64");
        edit(&mut sig);
        format!("{text} {}\n", STANDARD.encode(sig))
    });
}

#[test]
fn checkpoint_signature_flipped_is_rejected() {
    let mut b = bundle();
    edit_checkpoint_signature(&mut b, |sig| {
        let last = sig.len() - 1;
        sig[last] ^= 1;
    });
    assert!(matches!(check(&b), Err(Error::CheckpointSignature { .. })));
}

#[test]
fn checkpoint_key_hint_changed_is_not_the_logs_signature() {
    let mut b = bundle();
    edit_checkpoint_signature(&mut b, |sig| sig[0] ^= 1);
    assert!(matches!(
        check(&b),
        Err(Error::CheckpointNotSignedByLog { .. })
    ));
}

#[test]
fn checkpoint_garbled_is_malformed() {
    for edit in [
        |s: &str| s.replace("\n\n", "\n"),
        |s: &str| s.replace('\u{2014}', "--"),
        |s: &str| s.trim_end().to_owned(),
    ] {
        let mut b = bundle();
        edit_str(&mut b, ENVELOPE, edit);
        assert!(matches!(check(&b), Err(Error::MalformedCheckpoint(_))));
    }
}

// --- the signed entry timestamp and the entry's metadata -------------------------------------

#[test]
fn signed_entry_timestamp_flipped_is_rejected() {
    let mut b = bundle();
    flip_last(
        &mut b,
        &format!("{TLOG}/inclusionPromise/signedEntryTimestamp"),
    );
    assert!(matches!(check(&b), Err(Error::SignedEntryTimestamp { .. })));
}

#[test]
fn integrated_time_a_minute_later_fails_the_set() {
    let mut b = bundle();
    set_int(
        &mut b,
        &format!("{TLOG}/integratedTime"),
        INTEGRATED_TIME + 60,
    );
    assert!(matches!(check(&b), Err(Error::SignedEntryTimestamp { .. })));
}

#[test]
fn integrated_time_a_minute_earlier_is_before_the_certificate() {
    // The entry was integrated in the certificate's very first second.
    let mut b = bundle();
    set_int(
        &mut b,
        &format!("{TLOG}/integratedTime"),
        INTEGRATED_TIME - 60,
    );
    let err = check(&b).expect_err("must be rejected");
    assert!(matches!(err, Error::TimeOutsideCertificate { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "signing time 2024-04-02T19:18:09Z (from the transparency log) is outside the certificate's validity \
         2024-04-02T19:19:09Z .. 2024-04-02T19:29:09Z"
    );
}

#[test]
fn integrated_time_a_day_later_is_after_the_certificate() {
    let mut b = bundle();
    set_int(
        &mut b,
        &format!("{TLOG}/integratedTime"),
        INTEGRATED_TIME + 86_400,
    );
    assert!(matches!(
        check(&b),
        Err(Error::TimeOutsideCertificate { .. })
    ));
}

#[test]
fn integrated_time_before_the_rekor_key_is_rejected() {
    // 2020-01-01, before the staging Rekor key's validFor start (2021-01-12).
    let mut b = bundle();
    set_int(&mut b, &format!("{TLOG}/integratedTime"), 1_577_836_800);
    assert!(matches!(check(&b), Err(Error::LogKeyNotValidAt { .. })));
}

#[test]
fn log_index_changed_fails_the_set() {
    let mut b = bundle();
    set_int(&mut b, &format!("{TLOG}/logIndex"), 25_915_957);
    assert!(matches!(check(&b), Err(Error::SignedEntryTimestamp { .. })));
}

#[test]
fn log_id_changed_is_an_unknown_log() {
    let mut b = bundle();
    flip_last(&mut b, &format!("{TLOG}/logId/keyId"));
    assert!(matches!(check(&b), Err(Error::UnknownLog { .. })));
}

// --- certificate, signature, artifact, policy ------------------------------------------------

const CERT: &str = "/verificationMaterial/certificate/rawBytes";

#[test]
fn certificate_signature_altered_does_not_chain() {
    let mut b = bundle();
    flip_last(&mut b, CERT);
    let err = check(&b).expect_err("must be rejected");
    assert!(matches!(err, Error::CertificateChain(_)), "{err}");
}

#[test]
fn certificate_garbled_is_malformed() {
    let mut b = bundle();
    edit_b64(&mut b, CERT, |der| der.truncate(100));
    assert!(matches!(check(&b), Err(Error::MalformedCertificate(_))));
}

#[test]
fn signature_altered_does_not_verify() {
    let mut b = bundle();
    flip_last(&mut b, "/messageSignature/signature");
    assert!(matches!(check(&b), Err(Error::ArtifactSignature)));
}

#[test]
fn artifact_altered_is_another_artifact() {
    let mut other = artifact();
    other[0] ^= 1;
    let json = serde_json::to_vec(&bundle()).expect("serializable");
    let err = accord_provenance::verify(&other, &json, &staging(), &policy())
        .expect_err("must be rejected");
    assert!(matches!(err, Error::ArtifactDigestMismatch { .. }), "{err}");
}

#[test]
fn artifact_altered_without_message_digest_fails_the_signature() {
    let mut b = bundle();
    at(&mut b, "/messageSignature")
        .as_object_mut()
        .expect("a JSON object")
        .remove("messageDigest");
    assert!(check(&b).is_ok(), "messageDigest is optional");
    let mut other = artifact();
    other.push(b'\n');
    let json = serde_json::to_vec(&b).expect("serializable");
    let err = accord_provenance::verify(&other, &json, &staging(), &policy())
        .expect_err("must be rejected");
    assert!(matches!(err, Error::ArtifactSignature), "{err}");
}

#[test]
fn wrong_identity_is_rejected() {
    let policy = Policy::new("mallory@example.com", ISSUER);
    let err = check_with(&bundle(), &staging(), &policy).expect_err("must be rejected");
    assert!(
        matches!(&err, Error::IdentityMismatch { found, expected }
            if found == IDENTITY && expected == "mallory@example.com"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "certificate identity is william@yossarian.net, expected mallory@example.com"
    );
}

#[test]
fn wrong_issuer_is_rejected() {
    let policy = Policy::new(IDENTITY, "https://accounts.google.com");
    let err = check_with(&bundle(), &staging(), &policy).expect_err("must be rejected");
    assert!(
        matches!(&err, Error::IssuerMismatch { found, .. } if found == ISSUER),
        "{err}"
    );
}

#[test]
fn wrong_trusted_root_does_not_know_the_log() {
    let err = check_with(&bundle(), &prod(), &policy()).expect_err("must be rejected");
    assert!(matches!(err, Error::UnknownLog { .. }), "{err}");
}

// --- missing parts -----------------------------------------------------------------------------

fn without(pointer: &str, key: &str) -> Value {
    let mut b = bundle();
    at(&mut b, pointer)
        .as_object_mut()
        .expect("a JSON object")
        .remove(key);
    b
}

#[test]
fn missing_parts_are_named() {
    // Without its SET (and with no RFC 3161 timestamp) nothing signs when it was signed.
    assert!(matches!(
        check(&without(TLOG, "inclusionPromise")),
        Err(Error::NoVerifiedTime(_))
    ));
    assert!(matches!(
        check(&without(TLOG, "inclusionProof")),
        Err(Error::MissingInclusionProof)
    ));
    assert!(matches!(
        check(&without(&format!("{TLOG}/inclusionProof"), "checkpoint")),
        Err(Error::MissingCheckpoint)
    ));
    assert!(matches!(
        check(&without("/verificationMaterial", "certificate")),
        Err(Error::MalformedBundle(_))
    ));

    let mut b = bundle();
    at(&mut b, "/verificationMaterial/tlogEntries")
        .as_array_mut()
        .expect("a JSON array")
        .clear();
    assert!(matches!(check(&b), Err(Error::TlogEntryCount(0))));

    let mut b = bundle();
    let entries = at(&mut b, "/verificationMaterial/tlogEntries")
        .as_array_mut()
        .expect("a JSON array");
    entries.push(entries[0].clone());
    assert!(matches!(check(&b), Err(Error::TlogEntryCount(2))));

    let mut b = bundle();
    *at(&mut b, "/mediaType") =
        Value::String("application/vnd.dev.sigstore.bundle.v0.4+json".into());
    assert!(matches!(check(&b), Err(Error::UnsupportedMediaType(_))));
}

#[test]
fn every_reason_is_one_line() {
    let mut cases = Vec::new();
    for pointer in [
        "/messageSignature/signature",
        CERT,
        &format!("{TLOG}/logId/keyId"),
    ] {
        let mut b = bundle();
        flip_last(&mut b, pointer);
        cases.push(check(&b).expect_err("must be rejected"));
    }
    cases.push(
        check_with(&bundle(), &staging(), &Policy::new("x", ISSUER)).expect_err("must be rejected"),
    );
    cases.push(
        accord_provenance::verify(b"", b"{", &staging(), &policy()).expect_err("must be rejected"),
    );
    for err in cases {
        let text = err.to_string();
        assert!(!text.contains('\n') && !text.is_empty(), "{text:?}");
    }
}
