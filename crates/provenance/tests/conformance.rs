//! The sigstore-conformance suite's bundle-verify vectors, each one test case with its
//! expected outcome (`tests/data/sigstore-conformance/README.md` says where they come from).
//!
//! A vector directory holds `bundle.sigstore.json` and optionally `artifact`, `identity`,
//! `issuer`, `key.pub` and `trusted_root.json`; a name ending in `_fail` must be refused.
//! Like the suite's own runner, every vector is verified twice, once from the artifact's
//! bytes and once from its SHA-256, and both must give the expected outcome. Without a
//! `trusted_root.json` the vector was made on the public-good instance, whose root
//! sigstore-python ships (`sigstore-python/prod_trusted_root.json`).
//!
//! Vectors that verify with a bare public key (`key.pub`) are listed but ignored with the
//! reason: Accord's policy names who signed (a Fulcio identity), and a key names no one.

use std::path::{Path, PathBuf};

use accord_provenance::{Policy, TrustedRoot, verify, verify_digest};
use libtest_mimic::{Arguments, Failed, Trial};
use sha2::{Digest, Sha256};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
/// The suite's defaults when a vector has no `identity` / `issuer` file.
const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn main() {
    let args = Arguments::from_args();
    let dir = Path::new(DATA).join("sigstore-conformance/bundle-verify");
    let mut vectors: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    vectors.sort();
    assert_eq!(vectors.len(), 70, "the suite has 70 bundle-verify vectors");
    let trials = vectors
        .into_iter()
        .map(|path| {
            let name = file_name(&path);
            let keyed = path.join("key.pub").exists();
            Trial::test(name, move || run(&path)).with_ignored_flag(keyed)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 vector name")
        .to_owned()
}

fn read(path: &Path) -> Result<Vec<u8>, Failed> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn text_or(path: &Path, default: &str) -> Result<String, Failed> {
    if path.exists() {
        Ok(String::from_utf8(read(path)?)?.trim().to_owned())
    } else {
        Ok(default.to_owned())
    }
}

/// Verifies one vector both ways and compares with its expected outcome.
fn run(dir: &Path) -> Result<(), Failed> {
    let expect_ok = !file_name(dir).ends_with("_fail");
    let bundle = read(&dir.join("bundle.sigstore.json"))?;
    let artifact = match dir.join("artifact") {
        own if own.exists() => read(&own)?,
        _ => read(&dir.parent().ok_or("no parent")?.join("a.txt"))?,
    };
    let root_path = match dir.join("trusted_root.json") {
        own if own.exists() => own,
        _ => Path::new(DATA).join("sigstore-python/prod_trusted_root.json"),
    };
    let policy = Policy::new(
        text_or(&dir.join("identity"), IDENTITY)?,
        text_or(&dir.join("issuer"), ISSUER)?,
    );
    // The trusted root is an input like the bundle: a vector may expect it to be refused
    // (trust-root-tlog-missing-validity-start_fail).
    let root = match TrustedRoot::from_json(&read(&root_path)?) {
        Ok(root) => root,
        Err(reason) if !expect_ok => {
            eprintln!("refused (trusted root): {reason}");
            return Ok(());
        }
        Err(reason) => return Err(format!("trusted root {}: {reason}", root_path.display()).into()),
    };
    let from_bytes = verify(&artifact, &bundle, &root, &policy);
    let from_digest = verify_digest(Sha256::digest(&artifact).into(), &bundle, &root, &policy);
    for (how, outcome) in [("artifact", from_bytes), ("digest", from_digest)] {
        match (expect_ok, outcome) {
            (true, Ok(_)) => {}
            (false, Err(reason)) => eprintln!("refused ({how}): {reason}"),
            (true, Err(reason)) => {
                return Err(format!("expected to verify ({how}), refused: {reason}").into());
            }
            (false, Ok(verified)) => {
                return Err(
                    format!("expected to be refused ({how}), verified: {verified:?}").into(),
                );
            }
        }
    }
    Ok(())
}
