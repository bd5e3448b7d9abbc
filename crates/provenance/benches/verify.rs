//! The time to verify one Sigstore bundle offline, for each kind of bundle a supplier may
//! send: a Rekor v1 entry with its SET, a Rekor v2 entry with an RFC 3161 timestamp, and a
//! DSSE envelope. Each iteration does the whole check from bytes (parse the bundle, the
//! checkpoint signature, the inclusion proof, the times, the certificate chain and SCT at
//! each time, the signature, the log body); the trusted root is parsed once, as a node does
//! at start. Run with `cargo bench -p accord-provenance --bench verify`.

use accord_provenance::{Policy, TrustedRoot, verify_digest};
use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/sigstore-conformance/bundle-verify"
);
const SIGNER: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion, name: &str, vector: &str, root: &str, artifact: &str) {
    let root = TrustedRoot::from_json(&read(root)).expect("trusted root");
    let bundle = read(&format!("{VECTORS}/{vector}/bundle.sigstore.json"));
    let sha256: [u8; 32] = Sha256::digest(read(artifact)).into();
    let policy = Policy::new(SIGNER, ISSUER);
    verify_digest(sha256, &bundle, &root, &policy).expect("the vector verifies");
    c.bench_function(name, |b| {
        b.iter(|| verify_digest(sha256, &bundle, &root, &policy).expect("verifies"))
    });
}

fn verification(c: &mut Criterion) {
    let prod = format!("{DATA}/sigstore-python/prod_trusted_root.json");
    let a_txt = format!("{VECTORS}/a.txt");
    bench(
        c,
        "bundle: Rekor v1, message signature, SET",
        "happy-path-v0.3",
        &prod,
        &a_txt,
    );
    bench(
        c,
        "bundle: Rekor v2, message signature, RFC 3161 timestamp",
        "rekor2-happy-path",
        &format!("{VECTORS}/rekor2-happy-path/trusted_root.json"),
        &a_txt,
    );
    bench(
        c,
        "bundle: Rekor v1, DSSE in-toto statement, SET",
        "happy-path-intoto-in-dsse-v3",
        &prod,
        &a_txt,
    );
}

criterion_group!(benches, verification);
criterion_main!(benches);
