//! `accord root new|sign|verify|show`.

use std::path::Path;

use accord_protocol::Envelope;
use accord_protocol::limits::MAX_ROOT_BYTES;
use accord_trust::{RootSpec, TrustedRoot, root_envelope, sign_envelope};
use anyhow::{Context, Result, bail};

use crate::Refused;
use crate::cli::RootCommand;
use crate::client::Node;
use crate::datadir::DataDir;
use crate::files::{read_limited, write_atomic};
use crate::report;

pub fn run(cmd: RootCommand) -> Result<()> {
    match cmd {
        RootCommand::New { spec, out } => {
            let env = new_from_spec(&spec)?;
            write_atomic(&out, &env.to_json(), false)?;
            let root = TrustedRoot::inspect(&env.to_json())?;
            println!(
                "wrote {} (root v{}, {} principals, {} keys, unsigned): each steering representative signs it with 'accord root sign'",
                out.display(),
                root.version(),
                root.body().principals.len(),
                root.body().keys.len()
            );
            Ok(())
        }
        RootCommand::Propose {
            from,
            out,
            remove_key,
            add_key,
            threshold,
            expires,
        } => propose(
            &from,
            &out,
            &remove_key,
            &add_key,
            &threshold,
            expires.as_deref(),
        ),
        RootCommand::Sign {
            root,
            key,
            out,
            passphrase,
        } => {
            let bytes = read_limited(&root, MAX_ROOT_BYTES)?;
            // Parse fully (structure and keys) before signing: never sign what we cannot read.
            let inspected = TrustedRoot::inspect(&bytes)
                .with_context(|| format!("{} is not a root", root.display()))?;
            let secret = super::keys::load_secret(&key, &passphrase)?;
            let mut env = inspected.envelope().clone();
            let added = sign_envelope(&mut env, &secret);
            let out = out.unwrap_or(root);
            write_atomic(&out, &env.to_json(), false)?;
            let place = inspected
                .body()
                .place_of(secret.id())
                .map(|(p, r)| format!("{p} {r}"))
                .unwrap_or_else(|| "a key this root does not list".into());
            if added {
                println!(
                    "signed root v{} as {place} ({}); wrote {}",
                    inspected.version(),
                    secret.id().short(),
                    out.display()
                );
            } else {
                println!(
                    "root v{} already carries this key's signature; {} unchanged",
                    inspected.version(),
                    out.display()
                );
            }
            Ok(())
        }
        RootCommand::Verify {
            root,
            trusted,
            via,
            json,
        } => {
            let outcome = verify(&root, trusted.as_deref(), &via);
            report::root_outcome(&root, &outcome, json)?;
            match outcome {
                Ok(_) => Ok(()),
                Err(_) => Err(Refused.into()),
            }
        }
        RootCommand::Apply { root, data_dir } => apply(&root, &DataDir::new(&data_dir.data_dir)),
        RootCommand::Show { root, json } => {
            let bytes = read_limited(&root, MAX_ROOT_BYTES)?;
            let r = TrustedRoot::inspect(&bytes)
                .with_context(|| format!("{} is not a root", root.display()))?;
            report::show_root(&r, json)
        }
    }
}

/// `accord root propose`: the successor of `from` with the asked-for changes, unsigned.
fn propose(
    from: &Path,
    out: &Path,
    remove: &[String],
    add: &[String],
    thresholds: &[String],
    expires: Option<&str>,
) -> Result<()> {
    use accord_trust::rotation::Change;
    let bytes = read_limited(from, MAX_ROOT_BYTES)?;
    let current = TrustedRoot::inspect(&bytes)
        .with_context(|| format!("{} is not a root", from.display()))?;
    let place = |spec: &str,
                 what: &str|
     -> Result<(accord_protocol::PrincipalId, accord_protocol::Role, String)> {
        let (who, value) = spec
            .split_once('=')
            .with_context(|| format!("{what} {spec:?}: expected PRINCIPAL/ROLE=…"))?;
        let (principal, role) = who
            .split_once('/')
            .with_context(|| format!("{what} {spec:?}: expected PRINCIPAL/ROLE=…"))?;
        Ok((
            accord_protocol::PrincipalId::new(principal)?,
            role.parse()?,
            value.to_owned(),
        ))
    };
    let mut changes = Vec::new();
    for r in remove {
        let id = match accord_trust::PublicKey::read(Path::new(r)) {
            Ok(k) => k.id().clone(),
            Err(_) => current
                .body()
                .keys
                .keys()
                .find(|id| id.to_string() == *r || id.to_string().starts_with(r.as_str()) && r.len() >= 8)
                .cloned()
                .with_context(|| format!("--remove-key {r}: neither a public key file nor the id of a key in root v{}", current.version()))?,
        };
        changes.push(Change::RemoveKey(id));
    }
    for a in add {
        let (principal, role, file) = place(a, "--add-key")?;
        let key = accord_trust::PublicKey::read(Path::new(&file))
            .with_context(|| format!("--add-key {a}: cannot read the public key {file}"))?;
        changes.push(Change::AddKey {
            principal,
            role,
            key: Box::new(key),
        });
    }
    for t in thresholds {
        let (principal, role, n) = place(t, "--threshold")?;
        let threshold = n
            .parse()
            .with_context(|| format!("--threshold {t}: {n:?} is not a number"))?;
        changes.push(Change::Threshold {
            principal,
            role,
            threshold,
        });
    }
    if let Some(e) = expires {
        changes.push(Change::Expires(accord_protocol::Timestamp::parse(e)?));
    }
    let next = accord_trust::rotation::propose(current.body(), &changes)?;
    let env = root_envelope(&next)?;
    write_atomic(out, &env.to_json(), false)?;
    println!(
        "wrote {} (root v{}, unsigned; {} change(s) to v{}, expires {}): the steering representatives sign it with 'accord root sign', then 'accord root apply' on any node",
        out.display(),
        next.version,
        changes.len(),
        current.version(),
        next.expires
    );
    Ok(())
}

/// Installs a successor root in a data directory, through its running node if there is one.
fn apply(root: &Path, dir: &DataDir) -> Result<()> {
    let bytes = read_limited(root, MAX_ROOT_BYTES)?;
    if let Some(node) = Node::running(dir) {
        let answer = node.post("/v1/root", "application/json", &bytes)?;
        println!(
            "the node at {} now trusts root v{}",
            node.url, answer["root_version"]
        );
        return Ok(());
    }
    // The node is not running: extend the chain in node.redb (what the node trusts) and its
    // files. The node records the root in the catalogue when it next starts.
    let db = dir.db()?;
    let mut chain = DataDir::db_chain(&db)?;
    let current = chain.current().version();
    let advanced = chain.extend(&bytes).with_context(|| {
        format!(
            "{} is not a valid successor of the installed root v{current}",
            root.display()
        )
    })?;
    if !advanced {
        bail!(
            "root v{current} is already installed in {}",
            dir.path.display()
        );
    }
    let next = chain.current();
    let me = accord_trust::PublicKey::read(&dir.path.join("node.key.pub"))?;
    if !matches!(
        chain.node_key(me.id()),
        Some(accord_trust::KeyStanding::Current { .. })
    ) {
        bail!(
            "root v{} no longer lists this node's key as a node key; refusing to install it here",
            next.version()
        );
    }
    db.append_roots(&[(next.version(), next.envelope().to_json())])?;
    dir.write_chain_files(&chain)?;
    println!(
        "installed root v{} in {} (was v{current})",
        next.version(),
        dir.path.display(),
    );
    Ok(())
}

pub fn new_from_spec(spec: &Path) -> Result<Envelope> {
    let text =
        std::fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))?;
    let parsed = RootSpec::parse(&text, &spec.display().to_string())?;
    let base = spec.parent().unwrap_or(Path::new("."));
    let body = parsed
        .build(base)
        .with_context(|| format!("{} does not make a valid root", spec.display()))?;
    Ok(root_envelope(&body)?)
}

/// The result of checking a root: the root and how it was reached, or why not.
pub type RootOutcome = Result<(TrustedRoot, Vec<u64>), anyhow::Error>;

/// Verifies `root` alone (as a first root) or as the end of the chain trusted → via… → root.
pub fn verify(root: &Path, trusted: Option<&Path>, via: &[std::path::PathBuf]) -> RootOutcome {
    let bytes = read_limited(root, MAX_ROOT_BYTES)?;
    match trusted {
        None => {
            let r = TrustedRoot::anchor(&bytes)
                .with_context(|| format!("{} is not a valid first root", root.display()))?;
            let v = r.version();
            Ok((r, vec![v]))
        }
        Some(t) => {
            let mut current = load_trusted(t)?;
            let mut walked = vec![current.version()];
            for p in via.iter().map(|p| p.as_path()).chain(std::iter::once(root)) {
                let b = read_limited(p, MAX_ROOT_BYTES)?;
                current = current.update(&b).with_context(|| {
                    format!(
                        "{} does not follow root v{}",
                        p.display(),
                        current.version()
                    )
                })?;
                walked.push(current.version());
            }
            Ok((current, walked))
        }
    }
}

/// Loads the root a user already trusts (checked against itself).
pub fn load_trusted(path: &Path) -> Result<TrustedRoot> {
    let bytes = read_limited(path, MAX_ROOT_BYTES)?;
    TrustedRoot::anchor(&bytes).with_context(|| format!("{} is not a valid root", path.display()))
}
