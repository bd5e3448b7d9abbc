//! Property tests for the counting rules, robustness against arbitrary bytes, and a long
//! root chain.

use accord_protocol::{Envelope, EnvelopeSignature, Statement};
use accord_trust::testkit::{Cooperative, JURISDICTIONS, NOW};
use accord_trust::{PolicyInput, PublicKey, SecretKey, TrustedRoot, evaluate, sign_envelope};
use proptest::prelude::*;

const LABELS: [&str; 17] = [
    "uk.lead",
    "eu.lead",
    "ca.lead",
    "au.lead",
    "uk.security",
    "eu.security",
    "ca.security",
    "au.security",
    "uk.steering",
    "eu.steering",
    "ca.steering",
    "au.steering",
    "uk.node",
    "eu.node",
    "ca.node",
    "au.node",
    "outsider",
];

fn setup() -> (Cooperative, TrustedRoot) {
    accord_trust::testkit::anchored().expect("cooperative")
}

fn decide(root: &TrustedRoot, env: &Envelope) -> accord_trust::Decision {
    evaluate(&PolicyInput {
        root,
        local_rules: &[],
        jurisdiction: None,
        release: env,
        recalls: &[],
        conditionals: &[],
        production_version: None,
        now: NOW,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any subset of signers, in any order, with any signature repeated: the decision is the
    /// one the rule says (all four leads and at least one security lead), and permuting or
    /// duplicating signatures changes nothing.
    #[test]
    fn counting_ignores_order_and_duplicates(
        picks in proptest::collection::vec(0usize..LABELS.len(), 0..24),
        seed in any::<u64>(),
    ) {
        let (coop, root) = setup();
        let mut env = accord_trust::testkit::release("CAP-B01", "1.4.0", 1).expect("release");
        for i in &picks {
            sign_envelope(&mut env, &coop.signer(LABELS[*i]).expect("key"));
        }
        let base = decide(&root, &env);

        let signed: std::collections::BTreeSet<&str> = picks.iter().map(|i| LABELS[*i]).collect();
        let model = JURISDICTIONS.iter().all(|(p, _)| signed.contains(format!("{p}.lead").as_str()))
            && JURISDICTIONS.iter().any(|(p, _)| signed.contains(format!("{p}.security").as_str()));
        prop_assert_eq!(base.promotable, model);

        // Shuffle and duplicate signatures (deterministically from `seed`).
        let mut shuffled = env.clone();
        let n = shuffled.signatures.len();
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        for i in (1..n).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            shuffled.signatures.swap(i, j);
        }
        for _ in 0..(next() % 4) {
            if n > 0 {
                let s = shuffled.signatures[(next() % n as u64) as usize].clone();
                shuffled.signatures.push(s);
            }
        }
        let other = decide(&root, &shuffled);
        prop_assert_eq!(other.promotable, base.promotable);
        prop_assert_eq!(other.requirements, base.requirements);
    }

    /// Arbitrary bytes as an envelope, a root or a key file never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (_, root) = setup();
        if let Ok(env) = Envelope::from_json(&bytes) {
            let _ = Statement::from_envelope(&env);
            let _ = decide(&root, &env);
        }
        let _ = TrustedRoot::anchor(&bytes);
        let _ = root.update(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = SecretKey::from_encrypted_pem(&text, "pass", "fuzz");
        let _ = PublicKey::from_pem(&text, "fuzz");
    }

    /// Numbers a proposer chooses: artifact sizes anywhere in u64, summed. A statement whose
    /// sizes overflow is refused at parse (the error names it); no sum downstream panics
    /// (the README's build profile has overflow checks on).
    #[test]
    fn artifact_sizes_never_overflow_a_sum(sizes in proptest::collection::vec(any::<u64>(), 1..6)) {
        let artifacts: Vec<accord_protocol::statement::Artifact> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| accord_protocol::statement::Artifact {
                name: format!("a{i}.bin"),
                sha256: [1; 32],
                blake3: [2; 32],
                size: *size,
            })
            .collect();
        let predicate = accord_protocol::statement::ReleasePredicate {
            capability: "CAP-B01".into(),
            version: semver::Version::new(1, 0, 0),
            root_version: 1,
            proposer: "fuzz".into(),
            created: accord_trust::testkit::NOW,
            provenance: vec![],
        };
        let payload = Statement::release(&artifacts, &predicate).to_payload();
        let overflows = sizes.iter().try_fold(0u64, |t, s| t.checked_add(*s)).is_none();
        match Statement::from_payload(&payload) {
            Ok(_) => prop_assert!(!overflows),
            Err(e) => {
                prop_assert!(overflows, "{}", e);
                prop_assert!(e.to_string().contains("2^64"));
            }
        }
        let (_, root) = setup();
        let _ = decide(&root, &Envelope::new("application/vnd.in-toto+json", payload));
    }

    /// Structured garbage: valid JSON envelopes whose payload is arbitrary JSON-ish bytes
    /// and whose signatures are random.
    #[test]
    fn arbitrary_payloads_and_signatures_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        sigs in proptest::collection::vec((any::<[u8; 8]>(), proptest::collection::vec(any::<u8>(), 0..80)), 0..6),
        root_type in any::<bool>(),
    ) {
        let (_, root) = setup();
        let ptype = if root_type { "application/vnd.accord.root+json" } else { "application/vnd.in-toto+json" };
        let mut env = Envelope::new(ptype, payload);
        for (k, s) in sigs {
            env.signatures.push(EnvelopeSignature { keyid: hex::encode(k), sig: s });
        }
        let _ = decide(&root, &env);
        let _ = root.update(&env.to_json());
        let _ = TrustedRoot::anchor(&env.to_json());
    }
}

/// Mutating a valid release statement's JSON anywhere never panics and never yields a
/// promotable decision unless the bytes are unchanged.
#[test]
fn every_single_byte_flip_of_a_signed_release_is_refused() {
    let (coop, root) = setup();
    let mut env = accord_trust::testkit::release("CAP-B01", "1.4.0", 1).expect("release");
    for s in ["uk.lead", "eu.lead", "ca.lead", "au.lead", "uk.security"] {
        sign_envelope(&mut env, &coop.signer(s).expect("key"));
    }
    assert!(decide(&root, &env).promotable);
    for i in 0..env.payload.len() {
        let mut bad = env.clone();
        bad.payload[i] ^= 0x20;
        assert!(!decide(&root, &bad).promotable, "flip at {i} accepted");
    }
}

/// A chain of 20 roots, each rotating keys (steering keys included), walked from v1.
#[test]
fn walks_a_chain_of_twenty_roots_with_rotations() {
    let (mut coop, anchor) = setup();
    let mut chain = Vec::new();
    let jurisdictions: Vec<&str> = JURISDICTIONS.iter().map(|(p, _)| *p).collect();
    for v in 2..=20u64 {
        let who = jurisdictions[(v as usize) % 4];
        // Old steering keys of the majority sign, then the rotated key signs as well.
        let before: Vec<String> = coop.steering();
        coop.rotate(&format!("{who}.steering")).expect("rotate");
        coop.rotate(&format!("{}.lead", jurisdictions[(v as usize + 1) % 4]))
            .expect("rotate");
        let gen_before = |label: &str| {
            let g = coop.generations[&format!("{label}.0")];
            if label == format!("{who}.steering") {
                format!("{label}~{}", g - 1)
            } else {
                label.to_owned()
            }
        };
        let mut signers: Vec<String> = before.iter().take(3).map(|l| gen_before(l)).collect();
        signers.push(format!("{who}.steering"));
        let refs: Vec<&str> = signers.iter().map(String::as_str).collect();
        chain.push(coop.signed_root(v, &refs).expect("root").to_json());
    }
    let newest = anchor.walk(chain.iter().map(Vec::as_slice)).expect("walk");
    assert_eq!(newest.version(), 20);

    // Dropping any link but the last breaks the walk.
    for skip in 0..chain.len() - 1 {
        let broken: Vec<&[u8]> = chain
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, c)| c.as_slice())
            .collect();
        assert!(
            anchor.walk(broken).is_err(),
            "walk without v{} succeeded",
            skip + 2
        );
    }
}
