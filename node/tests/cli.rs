//! The `accord` binary as a user runs it: real key files, real roots, real signatures,
//! checked with OpenSSL and securesystemslib where another implementation can judge.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn generated_keys_are_standard_encrypted_pkcs8_that_openssl_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let r = ok(accord(d, &["keys", "generate", "--out", "lead.key"]));
    let keyid = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id "))
        .expect("key id printed")
        .trim()
        .to_owned();

    let key = std::fs::read_to_string(d.join("lead.key")).expect("key");
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("lead.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key must be 0600");
    }

    // OpenSSL decrypts it with the passphrase and derives the same public key file.
    let out = sh(
        d,
        "openssl pkey -in lead.key -passin env:ACCORD_PASSPHRASE -pubout",
        &[("ACCORD_PASSPHRASE", PASS)],
    );
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pubfile = std::fs::read_to_string(d.join("lead.key.pub")).expect("pub");
    assert_eq!(String::from_utf8_lossy(&out.stdout), pubfile);

    // The documented key id recipe gives the id accord printed.
    let out = sh(
        d,
        "openssl pkey -pubin -in lead.key.pub -outform DER | tail -c 32 | sha256sum | cut -d' ' -f1",
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), keyid);

    // And a key made by OpenSSL is one accord can use.
    let out = sh(
        d,
        "openssl genpkey -algorithm ed25519 | openssl pkcs8 -topk8 -v2 aes-256-cbc -passout env:ACCORD_PASSPHRASE -out foreign-ok.key",
        &[("ACCORD_PASSPHRASE", PASS)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ok(accord(d, &["keys", "show", "foreign-ok.key", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["keytype"], "ed25519");
}

#[test]
fn bad_key_files_give_one_line_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    ok(accord(d, &["keys", "generate", "--out", "k.key"]));
    let r = accord_env(
        d,
        &["keys", "show", "k.key"],
        &[("ACCORD_PASSPHRASE", "not it")],
    );
    one_line_error(&r, "wrong passphrase");

    let key = std::fs::read_to_string(d.join("k.key")).expect("key");
    std::fs::write(d.join("truncated.key"), &key[..key.len() / 2]).expect("write");
    one_line_error(
        &accord(d, &["keys", "show", "truncated.key"]),
        "truncated.key",
    );

    // An RSA key, an unencrypted Ed25519 key, random bytes: each refused in one line.
    assert!(
        sh(
            d,
            "openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024 -aes-256-cbc -pass pass:x -out rsa.key",
            &[]
        )
        .status
        .success()
    );
    one_line_error(
        &accord_env(
            d,
            &["keys", "show", "rsa.key"],
            &[("ACCORD_PASSPHRASE", "x")],
        ),
        "rsa.key",
    );
    assert!(
        sh(d, "openssl genpkey -algorithm ed25519 -out plain.key", &[])
            .status
            .success()
    );
    one_line_error(&accord(d, &["keys", "show", "plain.key"]), "not encrypted");
    std::fs::write(d.join("noise.key"), [0xffu8, 0x00, 0x13, 0x37].repeat(100)).expect("write");
    one_line_error(&accord(d, &["keys", "show", "noise.key"]), "noise.key");

    // No passphrase source and no terminal: a clear error, never an unprotected key.
    let r = accord_env(d, &["keys", "generate", "--out", "x.key"], &[]);
    one_line_error(&r, "ACCORD_PASSPHRASE");
    assert!(!d.join("x.key").exists());
    // Existing keys are not overwritten.
    one_line_error(
        &accord(d, &["keys", "generate", "--out", "k.key"]),
        "already exists",
    );
}

#[test]
fn co_signing_offline_end_to_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    cooperative(d);

    // Root v1 is accepted only once a steering majority has signed it.
    ok(accord(
        d,
        &["root", "new", "--spec", "root.toml", "--out", "root.json"],
    ));
    refused(accord(d, &["root", "verify", "root.json"]));
    for j in ["uk", "eu"] {
        ok(accord(
            d,
            &[
                "root",
                "sign",
                "root.json",
                "--key",
                &format!("{j}/steering.key"),
            ],
        ));
    }
    let r = refused(accord(d, &["root", "verify", "root.json"]));
    assert!(
        r.stdout.contains("missing steering signature"),
        "{}",
        r.stdout
    );
    ok(accord(
        d,
        &["root", "sign", "root.json", "--key", "ca/steering.key"],
    ));
    ok(accord(d, &["root", "verify", "root.json"]));

    // Artifacts and the unsigned statement.
    std::fs::write(d.join("chart.tgz"), vec![7u8; 100_000]).expect("write");
    std::fs::write(d.join("sbom.json"), b"{}").expect("write");
    ok(accord(
        d,
        &[
            "release",
            "statement",
            "CAP-B01",
            "1.4.0",
            "chart.tgz",
            "sbom.json",
            "--root",
            "root.json",
            "--out",
            "stmt.json",
        ],
    ));

    // Each signer signs a copy, as on an air-gapped laptop, seeing what they sign.
    let mut copies = Vec::new();
    for (j, role) in [
        ("uk", "lead"),
        ("eu", "lead"),
        ("ca", "lead"),
        ("uk", "security"),
    ] {
        let out = format!("{j}-{role}.json");
        let r = ok(accord(
            d,
            &[
                "release",
                "sign",
                "--yes",
                "stmt.json",
                "--key",
                &format!("{j}/{role}.key"),
                "--out",
                &out,
            ],
        ));
        assert!(
            r.stderr.contains("signing release CAP-B01@1.4.0"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("chart.tgz"), "{}", r.stderr);
        copies.push(out);
    }
    let mut merge: Vec<&str> = vec!["release", "merge"];
    merge.extend(copies.iter().map(String::as_str));
    merge.extend(["--out", "three.json"]);
    ok(accord(d, &merge));
    let r = refused(accord(
        d,
        &["release", "verify", "three.json", "--root", "root.json"],
    ));
    assert!(r.stdout.contains("NOT PROMOTABLE"), "{}", r.stdout);
    assert!(
        r.stdout.contains("missing lead signature from au"),
        "{}",
        r.stdout
    );

    ok(accord(
        d,
        &[
            "release",
            "sign",
            "--yes",
            "stmt.json",
            "--key",
            "au/lead.key",
            "--out",
            "au-lead.json",
        ],
    ));
    ok(accord(
        d,
        &[
            "release",
            "merge",
            "three.json",
            "au-lead.json",
            "--out",
            "signed.json",
        ],
    ));
    let r = ok(accord(
        d,
        &[
            "release",
            "verify",
            "signed.json",
            "--root",
            "root.json",
            "--json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["promotable"], true);
    assert_eq!(v["release"]["capability"], "CAP-B01");

    // A local rule holds AU back until its own security lead signs.
    let r = refused(accord(
        d,
        &[
            "release",
            "verify",
            "signed.json",
            "--root",
            "root.json",
            "--jurisdiction",
            "au",
            "--local-rule",
            "security:1:au",
        ],
    ));
    assert!(
        r.stdout.contains("missing security signature from au"),
        "{}",
        r.stdout
    );

    // A recall signed like a release withdraws it; one signed by two leads does not.
    ok(accord(
        d,
        &[
            "release",
            "recall",
            "signed.json",
            "--reason",
            "CVE-2026-1234 in chart",
            "--out",
            "recall.json",
        ],
    ));
    for (j, role) in [("uk", "lead"), ("eu", "lead")] {
        ok(accord(
            d,
            &[
                "release",
                "sign",
                "--yes",
                "recall.json",
                "--key",
                &format!("{j}/{role}.key"),
            ],
        ));
    }
    let r = ok(accord(
        d,
        &[
            "release",
            "verify",
            "signed.json",
            "--root",
            "root.json",
            "--recall",
            "recall.json",
        ],
    ));
    assert!(
        r.stdout.contains("recall statement was ignored"),
        "{}",
        r.stdout
    );
    for (j, role) in [("ca", "lead"), ("au", "lead"), ("eu", "security")] {
        let r = ok(accord(
            d,
            &[
                "release",
                "sign",
                "--yes",
                "recall.json",
                "--key",
                &format!("{j}/{role}.key"),
            ],
        ));
        assert!(r.stdout.contains("signed with key"), "{}", r.stdout);
    }
    let r = refused(accord(
        d,
        &[
            "release",
            "verify",
            "signed.json",
            "--root",
            "root.json",
            "--recall",
            "recall.json",
        ],
    ));
    assert!(
        r.stdout.contains("recalled: CVE-2026-1234 in chart"),
        "{}",
        r.stdout
    );

    // A conditional go-ahead (steering majority) lets uk, eu, ca promote with their three
    // leads; au is excluded.
    ok(accord(
        d,
        &[
            "release",
            "conditional",
            "three.json",
            "--consenting",
            "uk,eu,ca",
            "--reason",
            "AU dispute unresolved",
            "--out",
            "cond.json",
        ],
    ));
    for j in ["uk", "eu", "ca"] {
        ok(accord(
            d,
            &[
                "release",
                "sign",
                "--yes",
                "cond.json",
                "--key",
                &format!("{j}/steering.key"),
            ],
        ));
    }
    ok(accord(
        d,
        &[
            "release",
            "verify",
            "three.json",
            "--root",
            "root.json",
            "--conditional",
            "cond.json",
            "--jurisdiction",
            "uk",
        ],
    ));
    let r = refused(accord(
        d,
        &[
            "release",
            "verify",
            "three.json",
            "--root",
            "root.json",
            "--conditional",
            "cond.json",
            "--jurisdiction",
            "au",
        ],
    ));
    assert!(r.stdout.contains("au is not among them"), "{}", r.stdout);

    // The reference DSSE implementation verifies the same envelope from the public keys.
    let pubs: Vec<String> = ["uk/lead", "eu/lead", "ca/lead", "au/lead", "uk/security"]
        .iter()
        .map(|k| format!("{k}.key.pub"))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/dsse_verify.py");
    let out = Command::new("python3")
        .current_dir(d)
        .arg(&script)
        .arg("signed.json")
        .args(&pubs)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "securesystemslib rejected the envelope (scripts/test installs securesystemslib[crypto]): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Copies of different statements do not merge.
    ok(accord(
        d,
        &[
            "release",
            "statement",
            "CAP-B01",
            "1.5.0",
            "chart.tgz",
            "--root",
            "root.json",
            "--out",
            "other.json",
        ],
    ));
    one_line_error(
        &accord(
            d,
            &[
                "release",
                "merge",
                "signed.json",
                "other.json",
                "--out",
                "x.json",
            ],
        ),
        "different statement",
    );

    // Root v2 rotates CA's lead; the old CA signature stops counting under v2.
    successor_root(d, "ca/lead.key", "ca/lead2.key", &["uk", "eu", "au"]);
    let r = ok(accord(
        d,
        &["root", "verify", "root2.json", "--trusted", "root.json"],
    ));
    assert!(r.stdout.contains("v1 -> v2"), "{}", r.stdout);
    let r = refused(accord(
        d,
        &[
            "release",
            "verify",
            "signed.json",
            "--root",
            "root.json",
            "--via",
            "root2.json",
        ],
    ));
    assert!(r.stdout.contains("is not in root v2"), "{}", r.stdout);
    // v1 offered to a node that trusts v2: rollback refused.
    let r = refused(accord(
        d,
        &["root", "verify", "root.json", "--trusted", "root2.json"],
    ));
    assert!(r.stdout.contains("rollback"), "{}", r.stdout);
}

#[test]
fn hostile_files_are_refused_cleanly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    cooperative(d);
    signed_root(d);
    std::fs::write(d.join("garbage.json"), b"\x00\x01{{{not json").expect("write");
    one_line_error(
        &accord(
            d,
            &["release", "verify", "garbage.json", "--root", "root.json"],
        ),
        "not a DSSE envelope",
    );
    one_line_error(
        &accord(
            d,
            &["release", "verify", "root.json", "--root", "garbage.json"],
        ),
        "garbage.json",
    );
    std::fs::write(d.join("huge.json"), vec![b' '; 2 << 20]).expect("write");
    one_line_error(
        &accord(
            d,
            &["release", "verify", "huge.json", "--root", "root.json"],
        ),
        "more than the limit",
    );
    // A root is not a release.
    let r = refused(accord(
        d,
        &["release", "verify", "root.json", "--root", "root.json"],
    ));
    assert!(r.stdout.contains("payloadType"), "{}", r.stdout);
    // Names that could escape a directory or confuse a reader never enter a statement.
    std::fs::write(d.join("bad name.txt"), b"x").expect("write");
    for (args, needle) in [
        (["CAP-B01", "1.0.0", "bad name.txt"], "artifact name"),
        (["CAP B01", "1.0.0", "root.json"], "capability id"),
        (["CAP-B01", "one", "root.json"], "semantic version"),
    ] {
        let mut a = vec!["release", "statement"];
        a.extend(args);
        a.extend(["--root", "root.json", "--out", "s.json"]);
        one_line_error(&accord(d, &a), needle);
    }
    assert!(!d.join("s.json").exists());
    // Usage errors exit 2.
    assert_eq!(accord(d, &["release", "verify"]).code, 2);
    assert_eq!(accord(d, &["no-such-command"]).code, 2);
}

#[test]
fn the_demo_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = ok(accord(tmp.path(), &["demo"]));
    for needle in [
        "every node is connected to the other three",
        "missing lead signature from au",
        "(release): lead of au",
        "live on: au, ca, eu, uk",
        "byte-identical",
        "audit log intact",
        "temporary directory removed",
    ] {
        assert!(r.stdout.contains(needle), "no {needle:?} in:\n{}", r.stdout);
    }
}

#[test]
fn the_example_root_spec_builds_a_root() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    for j in J {
        std::fs::create_dir_all(d.join("keys").join(j)).expect("mkdir");
        for role in ROLES {
            ok(accord(
                d,
                &["keys", "generate", "--out", &format!("keys/{j}/{role}.key")],
            ));
        }
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/root.example.toml");
    std::fs::copy(example, d.join("root.toml")).expect("copy");
    ok(accord(
        d,
        &["root", "new", "--spec", "root.toml", "--out", "root.json"],
    ));
    for j in ["uk", "ca", "au"] {
        ok(accord(
            d,
            &[
                "root",
                "sign",
                "root.json",
                "--key",
                &format!("keys/{j}/steering.key"),
            ],
        ));
    }
    ok(accord(d, &["root", "verify", "root.json"]));
    let r = ok(accord(d, &["root", "show", "root.json"]));
    assert!(
        r.stdout.contains(
            "rule promote      lead of 4 of 4 jurisdictions AND security of 1 of 4 jurisdictions"
        ),
        "{}",
        r.stdout
    );
}
