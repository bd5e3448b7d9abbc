//! `accord provenance verify`, the provenance check of `accord release propose` and the
//! steering committee's Sigstore trusted-root updates (`accord sigstore-root`): a
//! Sigstore bundle verified completely offline against a trusted root file, including the
//! Rekor inclusion proof, checkpoint and signed entry timestamp (`accord-provenance`).

use std::path::{Path, PathBuf};

use accord_protocol::statement::ProvenanceRef;
use accord_provenance::{MAX_BUNDLE_BYTES, MAX_TRUSTED_ROOT_BYTES, Policy, TrustedRoot, Verified};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::Refused;
use crate::cli::{ProvenanceCommand, SigstoreArgs};
use crate::files::read_limited;

pub fn run(cmd: ProvenanceCommand) -> Result<()> {
    match cmd {
        ProvenanceCommand::Verify {
            file,
            bundle,
            sigstore,
            json,
        } => match check(&file, &bundle, &sigstore) {
            Ok(v) => {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "verified": true,
                            "identity": v.identity,
                            "issuer": v.oidc_issuer,
                            "log_index": v.log_index,
                            "signed_at": v.signed_at,
                            "times": v.times.iter().map(|t| serde_json::json!({
                                "at": t.at,
                                "source": t.source.to_string(),
                            })).collect::<Vec<_>>(),
                            "sha256": hex::encode(v.sha256),
                        }))?
                    );
                } else {
                    println!(
                        "verified: {} signed by {} ({}), logged {} of {} (tree size {}), signed {} ({})",
                        file.display(),
                        v.identity,
                        v.oidc_issuer,
                        v.log_index.map_or_else(
                            || "(index not signed)".to_owned(),
                            |i| format!("at index {i}")
                        ),
                        v.log_url,
                        v.tree_size,
                        accord_provenance::Rfc3339(v.signed_at),
                        v.times
                            .iter()
                            .map(|t| t.source.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                Ok(())
            }
            Err(e) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "verified": false, "reason": format!("{e:#}") })
                    );
                } else {
                    eprintln!("not verified: {}: {e:#}", file.display());
                }
                Err(Refused.into())
            }
        },
    }
}

fn check(file: &Path, bundle: &Path, args: &SigstoreArgs) -> Result<Verified> {
    let bundle_bytes = read_limited(bundle, MAX_BUNDLE_BYTES)?;
    check_bytes(file, &bundle_bytes, args)
}

fn check_bytes(file: &Path, bundle_bytes: &[u8], args: &SigstoreArgs) -> Result<Verified> {
    let root_bytes = read_limited(&args.trusted_root, MAX_TRUSTED_ROOT_BYTES)?;
    let root = TrustedRoot::from_json(&root_bytes).with_context(|| {
        format!(
            "{} is not a Sigstore trusted root",
            args.trusted_root.display()
        )
    })?;
    let sha256 = sha256_file(file)?;
    let policy = Policy::new(&args.certificate_identity, &args.certificate_oidc_issuer);
    Ok(accord_provenance::verify_digest(
        sha256,
        bundle_bytes,
        &root,
        &policy,
    )?)
}

/// Pairs each `FILE=BUNDLE` (or a lone `BUNDLE` when there is one file) with its file,
/// verifies it, and returns the files to propose (the bundles added) and the references
/// the release statement records; any failure stops the proposal with the reason.
pub fn with_bundles(
    mut files: Vec<PathBuf>,
    specs: &[String],
    args: &SigstoreArgs,
) -> Result<(Vec<PathBuf>, Vec<ProvenanceRef>)> {
    let name = |p: &Path| -> Result<String> {
        p.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .with_context(|| format!("{} has no usable file name", p.display()))
    };
    let mut refs = Vec::new();
    let mut bundles = Vec::new();
    for spec in specs {
        let (file, bundle) = match spec.split_once('=') {
            Some((file, bundle)) => {
                let file = files
                    .iter()
                    .find(|f| *f == Path::new(file) || name(f).is_ok_and(|n| n == file))
                    .with_context(|| {
                        format!("--provenance {spec}: {file} is not one of the files")
                    })?;
                (file.clone(), PathBuf::from(bundle))
            }
            None => match files.as_slice() {
                [only] => (only.clone(), PathBuf::from(spec)),
                _ => bail!("--provenance {spec}: with several files, say which as FILE=BUNDLE"),
            },
        };
        let bundle_bytes = read_limited(&bundle, MAX_BUNDLE_BYTES)?;
        let v = check_bytes(&file, &bundle_bytes, args).with_context(|| {
            format!(
                "the Sigstore bundle {} does not verify for {}",
                bundle.display(),
                file.display()
            )
        })?;
        refs.push(ProvenanceRef {
            kind: accord_protocol::statement::PROVENANCE_SIGSTORE.into(),
            artifact: name(&file)?,
            bundle: name(&bundle)?,
            sha256: hex::encode(Sha256::digest(&bundle_bytes)),
            identity: Some(v.identity),
            issuer: Some(v.oidc_issuer),
        });
        bundles.push(bundle);
    }
    files.extend(bundles);
    Ok((files, refs))
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let (sha, _, _) = super::release::digest_file(path)?;
    Ok(sha)
}

/// `accord sigstore-root propose|sign|apply`.
pub fn sigstore_root(cmd: crate::cli::SigstoreRootCommand) -> Result<()> {
    use crate::cli::SigstoreRootCommand as C;
    use accord_trust::sigstore_root;
    match cmd {
        C::Propose {
            trusted_root,
            from,
            sequence,
            out,
        } => {
            let bytes = read_limited(&trusted_root, sigstore_root::MAX_TRUSTED_ROOT_BYTES)?;
            let previous = read_limited(&from, sigstore_root::MAX_TRUSTED_ROOT_BYTES)?;
            // Never propose what nodes could not use.
            TrustedRoot::from_json(&bytes).with_context(|| {
                format!(
                    "{} is not a usable Sigstore trusted root",
                    trusted_root.display()
                )
            })?;
            let env = sigstore_root::propose(
                &bytes,
                &previous,
                sequence,
                accord_protocol::Timestamp::now(),
            )?;
            crate::files::write_atomic(&out, &env.to_json(), false)?;
            println!(
                "wrote update {sequence} ({}, sha256 {}) to {}; steering representatives sign it with 'accord sigstore-root sign'",
                trusted_root.display(),
                hex::encode(Sha256::digest(&bytes)),
                out.display()
            );
            Ok(())
        }
        C::Sign {
            update,
            key,
            out,
            passphrase,
        } => {
            let mut env = read_update(&update)?;
            // Never sign what we cannot read.
            let u = sigstore_root::read(&env)?;
            TrustedRoot::from_json(&u.trusted_root)
                .context("the update's trusted root is not usable")?;
            let secret = super::keys::load_secret(&key, &passphrase)?;
            let added = accord_trust::sign_envelope(&mut env, &secret);
            let out = out.unwrap_or(update);
            crate::files::write_atomic(&out, &env.to_json(), false)?;
            println!(
                "{} update {} (sha256 {}) with key {}; wrote {}",
                if added { "signed" } else { "already signed" },
                u.sequence,
                hex::encode(u.sha256),
                secret.id().short(),
                out.display()
            );
            Ok(())
        }
        C::Apply {
            update,
            config,
            data_dir,
        } => {
            let dir = crate::datadir::DataDir::new(&data_dir.data_dir);
            let bytes = read_limited(&update, accord_protocol::limits::MAX_ENVELOPE_BYTES)?;
            if let Some(node) = crate::client::Node::running(&dir) {
                let answer = node.post("/v1/sigstore-root", "application/json", &bytes)?;
                println!(
                    "the node at {} now verifies provenance against Sigstore trusted root update {}",
                    node.url, answer["sequence"]
                );
                return Ok(());
            }
            let root = dir.chain()?.current().clone();
            let configured = match config {
                Some(path) => crate::config::NodeConfig::load(&path)?
                    .sigstore
                    .map(|s| s.trusted_root)
                    .with_context(|| format!("{} has no [sigstore] section", path.display()))?,
                None if dir.path.join(crate::provenance::APPLIED_ROOT).exists() => {
                    dir.path.join(crate::provenance::APPLIED_ROOT)
                }
                None => anyhow::bail!(
                    "no update was applied in {} yet: give --config with the node's config (the trusted root it names is the one replaced)",
                    dir.path.display()
                ),
            };
            let u = crate::provenance::apply_update(&dir.path, &bytes, &root, &configured)?;
            println!(
                "installed Sigstore trusted root update {} (sha256 {}) in {}; the node uses it when it next starts",
                u.sequence,
                hex::encode(u.sha256),
                dir.path.display()
            );
            Ok(())
        }
    }
}

fn read_update(path: &Path) -> Result<accord_protocol::Envelope> {
    let bytes = read_limited(path, accord_protocol::limits::MAX_ENVELOPE_BYTES)?;
    accord_protocol::Envelope::from_json(&bytes)
        .with_context(|| format!("{} is not an update envelope", path.display()))
}
