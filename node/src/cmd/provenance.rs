//! `accord provenance verify` and the provenance check of `accord release propose`: a
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
                        "verified: {} signed by {} ({}), logged at index {} of {} (tree size {}), signed {} ({})",
                        file.display(),
                        v.identity,
                        v.oidc_issuer,
                        v.log_index,
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
