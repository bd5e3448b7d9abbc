//! Verification cost: a fully signed release (5 signatures) through the whole policy, and a
//! 10-hop root chain walk. Run with `cargo bench -p accord-trust --bench verify`.

use accord_trust::testkit::{Cooperative, NOW, Shape};
use accord_trust::{PolicyInput, TrustedRoot, evaluate, sign_envelope};
use criterion::{Criterion, criterion_group, criterion_main};

fn anchor(coop: &Cooperative) -> (TrustedRoot, Vec<u8>) {
    let steering = coop.steering();
    let refs: Vec<&str> = steering.iter().map(String::as_str).collect();
    let bytes = coop.signed_root(1, &refs).expect("root").to_json();
    (TrustedRoot::anchor(&bytes).expect("anchor"), bytes)
}

fn release_verification(c: &mut Criterion) {
    let coop = Cooperative::new(Shape::default());
    let (root, _) = anchor(&coop);
    let mut env = accord_trust::testkit::release("CAP-B01", "1.4.0", 1).expect("release");
    for s in ["uk.lead", "eu.lead", "ca.lead", "au.lead", "uk.security"] {
        sign_envelope(&mut env, &coop.signer(s).expect("key"));
    }
    let json = env.to_json();
    c.bench_function("release: parse + verify 5 signatures + policy", |b| {
        b.iter(|| {
            let env = accord_protocol::Envelope::from_json(&json).expect("parse");
            let d = evaluate(&PolicyInput {
                root: &root,
                local_rules: &[],
                jurisdiction: None,
                release: &env,
                recalls: &[],
                conditionals: &[],
                production_version: None,
                now: NOW,
            });
            assert!(d.promotable);
        })
    });
}

fn root_chain(c: &mut Criterion) {
    let mut coop = Cooperative::new(Shape::default());
    let (anchor, _) = anchor(&coop);
    let mut chain = Vec::new();
    for v in 2..=11u64 {
        coop.rotate("ca.lead").expect("rotate");
        chain.push(
            coop.signed_root(v, &["uk.steering", "eu.steering", "ca.steering"])
                .expect("root")
                .to_json(),
        );
    }
    c.bench_function(
        "root: walk 10 hops (parse, keys, 2x3 signatures each)",
        |b| {
            b.iter(|| {
                let r = anchor.walk(chain.iter().map(Vec::as_slice)).expect("walk");
                assert_eq!(r.version(), 11);
            })
        },
    );
}

criterion_group!(benches, release_verification, root_chain);
criterion_main!(benches);
