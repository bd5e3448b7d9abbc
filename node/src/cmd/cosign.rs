//! Co-signing at a node: `release sign CAP@VER`, `release export-statement`,
//! `release import-signature`, and the online forms of `release recall|conditional`.
//! The signer's key never leaves this process; the node receives signed envelopes and
//! checks every signature itself.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use accord_protocol::{Envelope, PrincipalId, Statement, StatementKind};
use accord_trust::{SecretKey, sign_envelope};
use anyhow::{Context, Result, bail};

use crate::cli::{OnlineSigner, PassphraseArgs};
use crate::client::Node;
use crate::datadir::DataDir;
use crate::files::write_atomic;
use crate::report;

use super::release::Kind;

fn node(data_dir: Option<&Path>) -> Result<(Node, DataDir)> {
    let Some(path) = data_dir else {
        bail!("signing CAP@VERSION needs the running node's --data-dir (or ACCORD_DATA_DIR)");
    };
    let dir = DataDir::new(path);
    match Node::running(&dir) {
        Some(n) => Ok((n, dir)),
        None => bail!(
            "no node is running on {}: start it, or sign offline (release export-statement, release sign FILE, release import-signature)",
            path.display()
        ),
    }
}

/// The release's statement as the node holds it, with the signatures collected so far.
fn statement_of(node: &Node, selector: &accord_protocol::Selector) -> Result<Envelope> {
    let v: serde_json::Value = node.get(&format!(
        "/v1/releases/{}/statement",
        url_selector(selector)
    ))?;
    Ok(Envelope::from_json(&serde_json::to_vec(&v)?)?)
}

/// A selector as a URL path segment (`#` would start a fragment).
pub fn url_selector(sel: &accord_protocol::Selector) -> String {
    sel.to_string().replace('#', "%23")
}

/// Shows exactly what is about to be signed and asks; `--yes` skips the question.
pub fn confirm(env: &Envelope, key: &SecretKey, yes: bool) -> Result<()> {
    let kind = Statement::from_envelope(env).context("not a statement Accord signs")?;
    eprint!("{}", report::what_is_signed(&kind, env));
    eprintln!("  {} signature(s) already on it", env.signatures.len());
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not signed: confirmation needs a terminal (pass --yes to sign from a script)");
    }
    eprint!("sign this with key {}? [y/N] ", key.id().short());
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if !matches!(line.trim(), "y" | "Y" | "yes") {
        bail!("not signed");
    }
    Ok(())
}

/// Signs `env` with `key` and hands it to the node.
fn sign_and_send(node: &Node, mut env: Envelope, key: &SecretKey) -> Result<()> {
    let before = env.signatures.len();
    sign_envelope(&mut env, key);
    if env.signatures.len() == before {
        bail!("key {} has already signed this statement", key.id().short());
    }
    // Only our signature travels: the node has the others.
    env.signatures.drain(..before);
    let answer = node.post("/v1/signatures", "application/json", &env.to_json())?;
    report_import(&answer);
    Ok(())
}

fn report_import(answer: &serde_json::Value) {
    let strs = |k: &str| -> Vec<String> {
        answer[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let what = format!(
        "{} ({})",
        answer["release"].as_str().unwrap_or("?"),
        answer["statement"].as_str().unwrap_or("?")
    );
    for a in strs("added") {
        println!("recorded for {what}: {a}");
    }
    let rejected = strs("rejected");
    let already = rejected
        .iter()
        .filter(|r| r.ends_with("already recorded"))
        .count();
    for r in rejected.iter().filter(|r| !r.ends_with("already recorded")) {
        println!("not recorded for {what}: {r}");
    }
    if already > 0 {
        println!("{already} signature(s) on it were already recorded");
    }
}

/// `accord release sign CAP@VER --key KEY` at a running node.
pub fn sign_online(
    target: &str,
    key_path: &Path,
    yes: bool,
    data_dir: Option<&Path>,
    pass: &PassphraseArgs,
) -> Result<()> {
    let sel: accord_protocol::Selector = target.parse()?;
    let (node, _) = node(data_dir)?;
    let env = statement_of(&node, &sel)?;
    let secret = super::keys::load_secret(key_path, pass)?;
    confirm(&env, &secret, yes)?;
    sign_and_send(&node, env, &secret)
}

/// `accord release export-statement CAP@VER --out FILE`.
pub fn export_statement(release: &str, out: &Path, dir: &DataDir) -> Result<()> {
    let sel: accord_protocol::Selector = release.parse()?;
    let env = match Node::running(dir) {
        Some(node) => statement_of(&node, &sel)?,
        None => {
            let (cat, _) = dir.catalogue()?;
            crate::artifacts::select(&cat, &sel, &dir.chain()?)?.signed_envelope()
        }
    };
    let key = format!(
        "{sel} (statement {})",
        accord_protocol::ReleaseId::of_payload(&env.payload).short()
    );
    write_atomic(out, &env.to_json(), false)?;
    println!(
        "wrote {} ({key}, {} signature(s) so far); sign it offline with 'accord release sign {} --key KEY --out SIG', then 'accord release import-signature SIG' at any node",
        out.display(),
        env.signatures.len(),
        out.display()
    );
    Ok(())
}

/// `accord release import-signature FILE...`.
pub fn import(files: &[std::path::PathBuf], dir: &DataDir) -> Result<()> {
    let Some(node) = Node::running(dir) else {
        bail!(
            "no node is running on {}: signatures are recorded by a running node",
            dir.path.display()
        );
    };
    let mut failed = 0;
    for f in files {
        let env = super::release::read_envelope(f)?;
        match node.post("/v1/signatures", "application/json", &env.to_json()) {
            Ok(answer) => report_import(&answer),
            Err(e) => {
                eprintln!("{}: {e:#}", f.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(crate::Refused.into());
    }
    Ok(())
}

/// The online form of `release recall|conditional`: signs the pending statement of that
/// kind about the release, or starts one.
pub fn about_online(
    release: &str,
    kind: Kind,
    reason: Option<&str>,
    consenting: &[String],
    signer: &OnlineSigner,
) -> Result<()> {
    let sel: accord_protocol::Selector = release.parse()?;
    let Some(key_path) = &signer.key else {
        bail!("--key is required to sign at a node (or pass --out to write an unsigned statement)");
    };
    let (node, _) = node(signer.data_dir.as_deref())?;
    let consenting: Vec<PrincipalId> = consenting
        .iter()
        .map(|c| PrincipalId::new(c.trim()))
        .collect::<Result<_, _>>()?;
    let view: crate::artifacts::ReleaseView =
        node.get(&format!("/v1/releases/{}", url_selector(&sel)))?;
    let key = view.label();
    let pending = view.statements.iter().find_map(|s| {
        let env = Envelope::from_json(&serde_json::to_vec(&s.envelope).ok()?).ok()?;
        match (Statement::from_envelope(&env).ok()?, kind) {
            (StatementKind::Recall { .. }, Kind::Recall) => Some(env),
            (StatementKind::Conditional { predicate, .. }, Kind::Conditional)
                if predicate.consenting == consenting =>
            {
                Some(env)
            }
            _ => None,
        }
    });
    let env = match pending {
        Some(env) => env,
        None => {
            let Some(reason) = reason else {
                bail!("no pending statement of this kind for {key}: give --reason to start one");
            };
            let release_env = statement_of(&node, &accord_protocol::Selector::Id(view.id))?;
            super::release::about_release(
                &release_env,
                kind,
                reason,
                &consenting,
                accord_protocol::Timestamp::now(),
            )?
        }
    };
    let secret = super::keys::load_secret(key_path, &signer.passphrase)?;
    confirm(&env, &secret, signer.yes)?;
    sign_and_send(&node, env, &secret)
}
