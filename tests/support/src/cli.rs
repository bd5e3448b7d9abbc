//! Running the `accord` binary as a user does: commands, their output, and the keys and
//! roots of a four-jurisdiction cooperative made with the CLI itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `accord` binary under test: `ACCORD_BIN`, or the one cargo built beside the test or
/// benchmark executable (`target/<profile>/accord`).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ACCORD_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    dir.join(format!("accord{}", std::env::consts::EXE_SUFFIX))
}

pub const PASS: &str = "test passphrase";

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn accord(dir: &Path, args: &[&str]) -> Run {
    accord_env(dir, args, &[("ACCORD_PASSPHRASE", PASS)])
}

pub fn accord_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("ACCORD_PASSPHRASE")
        .env_remove("ACCORD_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().expect("run accord");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r
}

/// A refusal: exit 1 with the reason on stdout.
pub fn refused(r: Run) -> Run {
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    r
}

/// An error: exit 1 and exactly one line on stderr that names the problem.
pub fn one_line_error(r: &Run, needle: &str) {
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
}

pub fn sh(dir: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir).arg("-c").arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run sh")
}

pub const J: [&str; 4] = ["uk", "eu", "ca", "au"];
pub const ROLES: [&str; 4] = ["lead", "security", "steering", "node"];

/// Generates every key of a four-jurisdiction cooperative and a root spec naming them.
pub fn cooperative(dir: &Path) {
    for j in J {
        std::fs::create_dir_all(dir.join(j)).expect("mkdir");
        for role in ROLES {
            ok(accord(
                dir,
                &["keys", "generate", "--out", &format!("{j}/{role}.key")],
            ));
        }
    }
    let mut spec = String::from("version = 1\nexpires = \"2099-01-01T00:00:00Z\"\n");
    for j in J {
        spec.push_str(&format!("[principals.{j}]\nname = \"{j}\"\n"));
        for role in ROLES {
            spec.push_str(&format!("{role} = {{ keys = [\"{j}/{role}.key.pub\"] }}\n"));
        }
    }
    std::fs::write(dir.join("root.toml"), spec).expect("spec");
}

/// Root v1 signed by a steering majority.
pub fn signed_root(d: &Path) {
    ok(accord(
        d,
        &["root", "new", "--spec", "root.toml", "--out", "root.json"],
    ));
    for j in ["uk", "eu", "ca"] {
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
}

/// Root v2, made as an operator makes it: `accord root propose` from root.json with the
/// `old` key replaced by a freshly generated `new` one, signed by the steering keys of
/// `signers` (a majority of both v1 and v2), written to root2.json.
pub fn successor_root(d: &Path, old: &str, new: &str, signers: &[&str]) {
    // `ca/lead.key` is CA's lead key: the new one takes its place.
    let (principal, file) = old.split_once('/').expect("PRINCIPAL/ROLE.key");
    let role = file.trim_end_matches(".key");
    ok(accord(d, &["keys", "generate", "--out", new]));
    ok(accord(
        d,
        &[
            "root",
            "propose",
            "--from",
            "root.json",
            "--remove-key",
            &format!("{old}.pub"),
            "--add-key",
            &format!("{principal}/{role}={new}.pub"),
            "--out",
            "root2.json",
        ],
    ));
    for j in signers {
        ok(accord(
            d,
            &[
                "root",
                "sign",
                "root2.json",
                "--key",
                &format!("{j}/steering.key"),
            ],
        ));
    }
}

/// `accord catalogue show CAP --data-dir DATA --json`, parsed.
pub fn show_json(dir: &Path, data_dir: &str, cap: &str) -> serde_json::Value {
    let r = ok(accord(
        dir,
        &["catalogue", "show", cap, "--data-dir", data_dir, "--json"],
    ));
    serde_json::from_str(&r.stdout).expect("json")
}
