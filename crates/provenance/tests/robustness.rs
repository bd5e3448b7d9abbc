//! Hostile input: garbage, truncation and random corruption never panic, and a corrupted
//! bundle never verifies as something other than the original.

mod common;

use accord_provenance::Error;
use common::*;

fn verify_bytes(json: &[u8]) -> Result<accord_provenance::Verified, Error> {
    accord_provenance::verify(&artifact(), json, &staging(), &policy())
}

#[test]
fn garbage_is_malformed() {
    for json in [
        &b""[..],
        b"{",
        b"null",
        b"[]",
        b"\"bundle\"",
        b"{}",
        b"\xff\xfe",
        b"{\"mediaType\": 7}",
    ] {
        let err = verify_bytes(json).expect_err("must be rejected");
        assert!(
            matches!(
                err,
                Error::MalformedBundle(_) | Error::UnsupportedMediaType(_)
            ),
            "{:?}: {err}",
            String::from_utf8_lossy(json)
        );
    }
}

#[test]
fn every_truncation_is_malformed() {
    let full = bundle_bytes();
    for len in (0..full.len() - 2).step_by(7) {
        let err = verify_bytes(&full[..len]).expect_err("must be rejected");
        assert!(matches!(err, Error::MalformedBundle(_)), "{len}: {err}");
    }
}

#[test]
fn invalid_base64_is_malformed() {
    let mut b = bundle();
    *at(&mut b, "/messageSignature/signature") = "not base64!".into();
    assert!(matches!(check(&b), Err(Error::MalformedBundle(_))));
}

#[test]
fn oversized_bundle_is_refused_before_parsing() {
    let big = vec![b' '; accord_provenance::MAX_BUNDLE_BYTES + 1];
    assert!(matches!(verify_bytes(&big), Err(Error::TooLarge { .. })));
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_byte_corruption_never_panics_nor_verifies_as_something_else() {
    let original_bytes = bundle_bytes();
    let original = verify_bytes(&original_bytes).expect("the real bundle verifies");
    let root = staging();
    let artifact = artifact();
    let policy = policy();
    let mut rng = Rng(0x5eed_acc0_4d00_0001);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..500 {
        let mut json = original_bytes.clone();
        let at = rng.below(json.len());
        // Half the time a random byte, half the time a neighbouring one (stays printable,
        // so base64 and digits stay plausible and corruption reaches the deeper checks).
        json[at] = if rng.next() & 1 == 0 {
            rng.next() as u8
        } else {
            json[at] ^ (1 << rng.below(3))
        };
        match accord_provenance::verify(&artifact, &json, &root, &policy) {
            Ok(verified) => {
                // Only insignificant places (whitespace, kindVersion, messageDigest's
                // algorithm, …) may change and still verify, and then to the same result.
                assert_eq!(verified, original, "byte {at} changed the verified facts");
                accepted += 1;
            }
            Err(err) => {
                assert!(!err.to_string().contains('\n'), "{err}");
                rejected += 1;
            }
        }
    }
    assert!(
        rejected > 400,
        "only {rejected} of 500 corruptions rejected"
    );
    eprintln!("{accepted} harmless corruptions, {rejected} rejected");
}

/// The DER inside a Rekor v2 bundle (the RFC 3161 timestamp, the certificate with its SCT
/// list) corrupted bit by bit: the CMS, TSTInfo, certificate and SCT parsers refuse, and
/// nothing panics. The only corruptions that still verify are inside the certificate the
/// TSA embedded in its token, which is never trusted (the trusted root's is used), and
/// then to the same result.
#[test]
fn corrupted_timestamps_and_certificates_never_panic_nor_verify_as_something_else() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let dir = format!("{OWN_DATA}/sigstore-conformance/bundle-verify");
    let root = accord_provenance::TrustedRoot::from_json(&read(
        &format!("{dir}/rekor2-happy-path"),
        "trusted_root.json",
    ))
    .expect("root");
    let artifact = read(&dir, "a.txt");
    let policy = accord_provenance::Policy::new(
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
        "https://token.actions.githubusercontent.com",
    );
    let original_json = read(&format!("{dir}/rekor2-happy-path"), "bundle.sigstore.json");
    let original =
        accord_provenance::verify(&artifact, &original_json, &root, &policy).expect("verifies");
    let bundle: serde_json::Value = serde_json::from_slice(&original_json).expect("json");
    let mut rng = Rng(0x5eed_acc0_4d00_0002);
    for pointer in [
        "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp",
        "/verificationMaterial/certificate/rawBytes",
    ] {
        let der = STANDARD
            .decode(
                bundle
                    .pointer(pointer)
                    .and_then(|v| v.as_str())
                    .expect("field"),
            )
            .expect("base64");
        // Where the TSA's embedded certificate lies in the token, if this is the token.
        let embedded = embedded_certificate(&der);
        let mut rejected = 0;
        for _ in 0..300 {
            let mut bad = der.clone();
            let at = rng.below(bad.len());
            bad[at] ^= 1 << rng.below(8);
            if rng.next().is_multiple_of(8) {
                bad.truncate(rng.below(bad.len()));
            }
            let mut b = bundle.clone();
            *b.pointer_mut(pointer).expect("field") = STANDARD.encode(&bad).into();
            let json = serde_json::to_vec(&b).expect("json");
            match accord_provenance::verify(&artifact, &json, &root, &policy) {
                Ok(verified) => {
                    assert_eq!(verified, original, "{pointer} byte {at}");
                    assert!(
                        embedded.as_ref().is_some_and(|r| r.contains(&at)),
                        "{pointer}: a corruption at byte {at} verified"
                    );
                }
                Err(_) => rejected += 1,
            }
        }
        eprintln!("{pointer}: {rejected} of 300 rejected");
    }
}

/// The byte range of the first certificate a timestamp response embeds.
fn embedded_certificate(token: &[u8]) -> Option<std::ops::Range<usize>> {
    use cms::cert::CertificateChoices;
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use x509_cert::der::{Decode, Encode};
    // TimeStampResp: SEQUENCE { status, token }; the token starts after the status.
    let start = token
        .windows(11)
        .position(|w| w == b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02")?;
    let info = ContentInfo::from_der(&token[start.checked_sub(4)?..]).ok()?;
    let signed: SignedData = info.content.decode_as().ok()?;
    let CertificateChoices::Certificate(cert) = signed.certificates?.0.iter().next()?.clone()
    else {
        return None;
    };
    let der = cert.to_der().ok()?;
    let at = token.windows(der.len()).position(|w| w == der.as_slice())?;
    Some(at..at + der.len())
}
