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
