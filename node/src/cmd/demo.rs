//! `accord demo`: the offline co-signing walkthrough on a fresh four-jurisdiction
//! cooperative. Every step uses the same code as the corresponding command
//! (`keys generate`, `root new|sign|verify`, `release statement|sign|merge|verify`), with
//! real keys, real files and real signatures, in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use accord_protocol::Timestamp;
use accord_trust::{SecretKey, TrustedRoot, sign_envelope};
use anyhow::{Context, Result, bail};

use crate::cli::DemoArgs;
use crate::cmd::{keys, release, root};
use crate::files::write_atomic;
use crate::report;

const JURISDICTIONS: [(&str, &str); 4] = [
    ("uk", "United Kingdom"),
    ("eu", "European Union"),
    ("ca", "Canada"),
    ("au", "Australia"),
];
const ROLES: [&str; 4] = ["lead", "security", "steering", "node"];

struct Step {
    start: Instant,
    n: usize,
}

impl Step {
    fn say(&mut self, title: &str) {
        self.n += 1;
        println!(
            "\n[{:>6.2}s] {}. {title}",
            self.start.elapsed().as_secs_f64(),
            self.n
        );
    }
}

fn passphrase(j: &str) -> String {
    format!("demo passphrase of {j}")
}

pub fn run(args: DemoArgs) -> Result<()> {
    let tmp;
    let dir: PathBuf = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
            tmp.path().to_owned()
        }
    };
    let mut step = Step {
        start: Instant::now(),
        n: 0,
    };
    println!("Accord demo: four sovereign jurisdictions co-sign a release, offline.");
    println!("working in {}", dir.display());

    step.say("Each jurisdiction generates its keys on its own site (passphrase-protected PKCS#8)");
    for (j, _) in JURISDICTIONS {
        let site = dir.join(j);
        std::fs::create_dir_all(&site)?;
        let mut ids = Vec::new();
        for role in ROLES {
            let public = keys::generate(&site.join(format!("{role}.key")), &passphrase(j), true)?;
            ids.push(format!("{role} {}", public.id().short()));
        }
        println!("  {j}: {}", ids.join(", "));
    }

    step.say("The steering committee writes the root spec and builds root v1");
    let spec = dir.join("root.toml");
    write_atomic(
        &spec,
        root_spec(Timestamp::now().plus_days(365)).as_bytes(),
        false,
    )?;
    let root_path = dir.join("root.json");
    let env = root::new_from_spec(&spec)?;
    write_atomic(&root_path, &env.to_json(), false)?;
    report::show_root(&TrustedRoot::inspect(&env.to_json())?, false)?;

    step.say(
        "Three of four steering representatives sign root v1 (a majority), each from their site",
    );
    let mut env = env;
    for j in ["uk", "eu", "ca"] {
        sign_envelope(&mut env, &load(&dir, j, "steering")?);
        println!("  {j} steering signed");
    }
    write_atomic(&root_path, &env.to_json(), false)?;
    let outcome = root::verify(&root_path, None, &[]);
    report::root_outcome(&root_path, &outcome, false)?;
    let trusted = outcome?.0;

    step.say("EU supplier CI proposes CAP-B01 1.4.0 with three artifacts");
    let art = dir.join("artifacts");
    std::fs::create_dir_all(&art)?;
    let files = write_artifacts(&art)?;
    let stmt = release::statement(
        "CAP-B01",
        "1.4.0",
        &files,
        trusted.version(),
        "eu supplier ci",
        Timestamp::now(),
    )?;
    let stmt_path = dir.join("CAP-B01-1.4.0.statement.json");
    write_atomic(&stmt_path, &stmt.to_json(), false)?;
    let kind = release::kind_of(&stmt)?;
    print!(
        "{}",
        report::what_is_signed(&kind, &stmt).replacen("signing release", "statement for", 1)
    );

    step.say("The statement file travels to each site; leads sign on air-gapped laptops");
    let mut copies = Vec::new();
    for (j, role) in [
        ("uk", "lead"),
        ("eu", "lead"),
        ("ca", "lead"),
        ("uk", "security"),
        ("au", "lead"),
    ] {
        let copy = dir.join(j).join(format!("CAP-B01-1.4.0.{role}.json"));
        let (signed, _) = release::sign(release::read_envelope(&stmt_path)?, &load(&dir, j, role)?);
        write_atomic(&copy, &signed.to_json(), false)?;
        println!("  {j} {role} signed its copy -> {}", rel(&dir, &copy));
        copies.push(copy);
    }

    step.say("The copies come back; with AU's lead still out, the release is not promotable");
    let (partial, _) = release::merge(&copies[..4])?;
    let d = release::decide(&trusted, &partial, &[], &[], None, None, &[]);
    print!("{}", indent(&report::render_decision(&d)));
    if d.promotable {
        bail!("demo invariant broken: promotable without AU's lead");
    }

    step.say("AU's signature arrives and is merged: promotable everywhere");
    let (full, _) = release::merge(&copies)?;
    let full_path = dir.join("CAP-B01-1.4.0.signed.json");
    write_atomic(&full_path, &full.to_json(), false)?;
    let t = Instant::now();
    let d = release::decide(&trusted, &full, &[], &[], None, None, &[]);
    let took = t.elapsed();
    print!("{}", indent(&report::render_decision(&d)));
    println!(
        "  (decided in {:.3} ms: 5 strict Ed25519 verifications and the rule)",
        took.as_secs_f64() * 1e3
    );
    if !d.promotable {
        bail!("demo invariant broken: fully signed release not promotable");
    }

    step.say("Australia adds a local rule: its own security lead must sign too");
    let au = accord_protocol::PrincipalId::new("au")?;
    let local = [release::parse_local_rule("security:1:au")?];
    let d = release::decide(&trusted, &full, &[], &[], Some(&au), None, &local);
    print!("{}", indent(&report::render_decision(&d)));

    step.say("Someone edits one byte of the signed statement: every signature fails");
    let mut tampered = full.clone();
    if let Some(pos) = tampered.payload.windows(5).position(|w| w == b"1.4.0") {
        tampered.payload[pos + 2] = b'5';
    }
    let d = release::decide(&trusted, &tampered, &[], &[], None, None, &[]);
    println!(
        "  -> {}",
        if d.promotable {
            "PROMOTABLE (bug!)"
        } else {
            "NOT PROMOTABLE"
        }
    );
    for c in d.signatures.iter().take(2) {
        println!(
            "     #{}: {}",
            c.index,
            c.ignored.as_deref().unwrap_or("counted")
        );
    }
    if d.promotable {
        bail!("demo invariant broken: tampered statement promotable");
    }

    step.say("Canada rotates its lead key: root v2, signed by a steering majority of v1 and of v2");
    let new_ca = dir.join("ca").join("lead-2027.key");
    keys::generate(&new_ca, &passphrase("ca"), true)?;
    let spec2 = root_spec(Timestamp::now().plus_days(365))
        .replace("version = 1", "version = 2")
        .replace("ca/lead.key.pub", "ca/lead-2027.key.pub");
    write_atomic(&spec, spec2.as_bytes(), false)?;
    let mut v2 = root::new_from_spec(&spec)?;
    for j in ["uk", "eu", "au"] {
        sign_envelope(&mut v2, &load(&dir, j, "steering")?);
    }
    let v2_path = dir.join("root-v2.json");
    write_atomic(&v2_path, &v2.to_json(), false)?;
    let outcome = root::verify(&v2_path, Some(&root_path), &[]);
    report::root_outcome(&v2_path, &outcome, false)?;
    let v2_root = outcome?.0;
    let d = release::decide(&v2_root, &full, &[], &[], None, None, &[]);
    println!("  the release signed under v1, judged under v2:");
    print!("{}", indent(&report::render_decision(&d)));

    println!(
        "\n[{:>6.2}s] done. The same steps as commands:",
        step.start.elapsed().as_secs_f64()
    );
    println!(
        "  accord keys generate --out uk/lead.key            (ACCORD_PASSPHRASE in the environment)"
    );
    println!(
        "  accord root new --spec root.toml --out root.json && accord root sign root.json --key uk/steering.key"
    );
    println!("  accord release statement CAP-B01 1.4.0 FILES... --root root.json --out stmt.json");
    println!("  accord release sign stmt.json --key uk/lead.key --out uk.json");
    println!("  accord release merge uk.json eu.json ca.json au.json --out signed.json");
    println!("  accord release verify signed.json --root root.json [--jurisdiction au] [--json]");
    if let Some(d) = &args.keep {
        println!("files kept in {}", d.display());
    }
    Ok(())
}

fn load(dir: &Path, j: &str, role: &str) -> Result<SecretKey> {
    Ok(SecretKey::read(
        &dir.join(j).join(format!("{role}.key")),
        &passphrase(j),
    )?)
}

fn root_spec(expires: Timestamp) -> String {
    let mut s = format!("version = 1\nexpires = \"{expires}\"\n");
    for (j, name) in JURISDICTIONS {
        s.push_str(&format!("\n[principals.{j}]\nname = \"{name}\"\n"));
        for role in ROLES {
            s.push_str(&format!("{role} = {{ keys = [\"{j}/{role}.key.pub\"] }}\n"));
        }
    }
    s
}

fn write_artifacts(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (name, len) in [
        ("object-storage-chart-1.4.0.tgz", 256 * 1024),
        ("object-storage-1.4.0.oci.tar", 4 << 20),
        ("sbom.spdx.json", 12 * 1024),
    ] {
        let mut data = vec![0u8; len];
        // Deterministic, incompressible-looking content.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let p = dir.join(name);
        write_atomic(&p, &data, false)?;
        out.push(p);
    }
    Ok(out)
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
