//! `accord release statement|sign|merge|verify`: the offline co-signing flow.

use std::io::Read;
use std::path::{Path, PathBuf};

use accord_protocol::limits::MAX_ENVELOPE_BYTES;
use accord_protocol::statement::{
    Artifact, ConditionalPredicate, PREDICATE_CONDITIONAL, PREDICATE_RECALL, RecallPredicate,
    ReleasePredicate, ReleaseRef, check_artifact_name, check_name,
};
use accord_protocol::{
    Envelope, PrincipalId, Requirement, Role, Statement, StatementKind, Timestamp,
};
use accord_trust::{Decision, PolicyInput, SecretKey, TrustedRoot, evaluate, sign_envelope};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::Refused;
use crate::cli::{ReleaseCommand, VerifyArgs};
use crate::files::{read_limited, write_atomic};
use crate::report;

pub fn run(cmd: ReleaseCommand) -> Result<()> {
    match cmd {
        ReleaseCommand::Statement {
            capability,
            version,
            files,
            root,
            proposer,
            out,
        } => {
            let trusted = super::root::load_trusted(&root)?;
            let env = statement(
                &capability,
                &version,
                &files,
                trusted.version(),
                &proposer,
                Timestamp::now(),
            )?;
            write_atomic(&out, &env.to_json(), false)?;
            println!(
                "wrote {} (unsigned release {capability}@{version}, {} artifacts, root v{}); each signer runs 'accord release sign'",
                out.display(),
                files.len(),
                trusted.version()
            );
            Ok(())
        }
        ReleaseCommand::Sign {
            target,
            key,
            out,
            yes,
            data_dir,
            passphrase,
        } => {
            let file = PathBuf::from(&target);
            if !file.exists() {
                return super::cosign::sign_online(
                    &target,
                    &key,
                    yes,
                    data_dir.as_deref(),
                    &passphrase,
                );
            }
            let env = read_envelope(&file)?;
            let secret = super::keys::load_secret(&key, &passphrase)?;
            super::cosign::confirm(&env, &secret, yes)?;
            let (env, added) = sign(env, &secret);
            let out = out.unwrap_or(file);
            write_atomic(&out, &env.to_json(), false)?;
            if added {
                println!(
                    "signed with key {}; wrote {}",
                    secret.id().short(),
                    out.display()
                );
            } else {
                println!(
                    "key {} had already signed; {} unchanged",
                    secret.id().short(),
                    out.display()
                );
            }
            Ok(())
        }
        ReleaseCommand::ExportStatement {
            release,
            out,
            data_dir,
        } => super::cosign::export_statement(
            &release,
            &out,
            &crate::datadir::DataDir::new(&data_dir.data_dir),
        ),
        ReleaseCommand::ImportSignature { files, data_dir } => {
            super::cosign::import(&files, &crate::datadir::DataDir::new(&data_dir.data_dir))
        }
        ReleaseCommand::Merge { files, out } => {
            let (env, added) = merge(&files)?;
            write_atomic(&out, &env.to_json(), false)?;
            println!(
                "merged {} files: {} signatures ({} new); wrote {}",
                files.len(),
                env.signatures.len(),
                added,
                out.display()
            );
            Ok(())
        }
        ReleaseCommand::Recall {
            release,
            reason,
            out,
            online,
        } => match out {
            None => {
                super::cosign::about_online(&release, Kind::Recall, reason.as_deref(), &[], &online)
            }
            Some(out) => {
                let reason = reason.context("--reason is required to write a recall")?;
                let target = read_envelope(Path::new(&release))?;
                let env = about_release(&target, Kind::Recall, &reason, &[], Timestamp::now())?;
                write_atomic(&out, &env.to_json(), false)?;
                println!(
                    "wrote {} (unsigned recall); it takes effect when signed like a release",
                    out.display()
                );
                Ok(())
            }
        },
        ReleaseCommand::Conditional {
            release,
            consenting,
            reason,
            out,
            online,
        } => match out {
            None => super::cosign::about_online(
                &release,
                Kind::Conditional,
                reason.as_deref(),
                &consenting,
                &online,
            ),
            Some(out) => {
                let reason = reason.context("--reason is required to write a conditional")?;
                let target = read_envelope(Path::new(&release))?;
                let consenting = consenting
                    .iter()
                    .map(|c| PrincipalId::new(c.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                let env = about_release(
                    &target,
                    Kind::Conditional,
                    &reason,
                    &consenting,
                    Timestamp::now(),
                )?;
                write_atomic(&out, &env.to_json(), false)?;
                println!(
                    "wrote {} (unsigned conditional go-ahead); it takes effect when a steering majority signs it",
                    out.display()
                );
                Ok(())
            }
        },
        ReleaseCommand::Propose { .. } | ReleaseCommand::Status { .. } => {
            bail!("internal: release propose/status are dispatched in cmd::run")
        }
        ReleaseCommand::Verify(args) => {
            let decision = verify(&args)?;
            report::decision(&decision, args.json)?;
            if decision.promotable {
                Ok(())
            } else {
                Err(Refused.into())
            }
        }
    }
}

pub fn read_envelope(path: &Path) -> Result<Envelope> {
    let bytes = read_limited(path, MAX_ENVELOPE_BYTES)?;
    Envelope::from_json(&bytes)
        .with_context(|| format!("{} is not a DSSE envelope", path.display()))
}

/// Hashes each file (SHA-256 and BLAKE3 in one streaming pass) and builds the statement.
pub fn statement(
    capability: &str,
    version: &str,
    files: &[PathBuf],
    root_version: u64,
    proposer: &str,
    created: Timestamp,
) -> Result<Envelope> {
    check_name("capability id", capability)?;
    let version = semver::Version::parse(version)
        .with_context(|| format!("{version:?} is not a semantic version (e.g. 1.4.0)"))?;
    let mut artifacts = Vec::with_capacity(files.len());
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable file name", f.display()))?
            .to_owned();
        check_artifact_name(&name)?;
        if artifacts.iter().any(|a: &Artifact| a.name == name) {
            bail!("two artifacts are named {name}; artifact names must be unique");
        }
        let (sha256, blake3, size) = digest_file(f)?;
        artifacts.push(Artifact {
            name,
            sha256,
            blake3,
            size,
        });
    }
    let predicate = ReleasePredicate {
        capability: capability.to_owned(),
        version,
        root_version,
        proposer: proposer.to_owned(),
        created,
        provenance: vec![],
    };
    Ok(Statement::release(&artifacts, &predicate).to_envelope())
}

pub fn digest_file(path: &Path) -> Result<([u8; 32], [u8; 32], u64)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut sha = Sha256::new();
    let mut b3 = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        b3.update(&buf[..n]);
        size += n as u64;
    }
    Ok((sha.finalize().into(), *b3.finalize().as_bytes(), size))
}

pub fn sign(mut env: Envelope, key: &SecretKey) -> (Envelope, bool) {
    let added = sign_envelope(&mut env, key);
    (env, added)
}

/// Combines signatures of copies of one statement; refuses copies of different statements.
pub fn merge(files: &[PathBuf]) -> Result<(Envelope, usize)> {
    let mut iter = files.iter();
    let first = iter.next().context("nothing to merge")?;
    let mut env = read_envelope(first)?;
    let mut added = 0;
    for f in iter {
        let other = read_envelope(f)?;
        if !env.same_statement(&other) {
            bail!(
                "{} holds a different statement than {} (payload differs); only copies of one statement can be merged",
                f.display(),
                first.display()
            );
        }
        added += env.merge_signatures(&other);
    }
    Ok((env, added))
}

pub fn verify(args: &VerifyArgs) -> Result<Decision> {
    let mut root = super::root::load_trusted(&args.root)?;
    for p in &args.via {
        let b = read_limited(p, accord_protocol::limits::MAX_ROOT_BYTES)?;
        root = root
            .update(&b)
            .with_context(|| format!("{} does not follow root v{}", p.display(), root.version()))?;
    }
    let release = read_envelope(&args.envelope)?;
    let recalls = args
        .recall
        .iter()
        .map(|p| read_envelope(p))
        .collect::<Result<Vec<_>>>()?;
    let conditionals = args
        .conditional
        .iter()
        .map(|p| read_envelope(p))
        .collect::<Result<Vec<_>>>()?;
    let jurisdiction = args
        .jurisdiction
        .as_deref()
        .map(PrincipalId::new)
        .transpose()?;
    if let Some(j) = &jurisdiction
        && !root.body().principals.contains_key(j)
    {
        bail!(
            "jurisdiction {j} is not a principal of root v{}",
            root.version()
        );
    }
    let production = args
        .production_version
        .as_deref()
        .map(semver::Version::parse)
        .transpose()
        .context("--production-version is not a semantic version")?;
    let local_rules = args
        .local_rule
        .iter()
        .map(|r| parse_local_rule(r))
        .collect::<Result<Vec<_>>>()?;
    Ok(decide(
        &root,
        &release,
        &recalls,
        &conditionals,
        jurisdiction.as_ref(),
        production.as_ref(),
        &local_rules,
    ))
}

pub fn decide(
    root: &TrustedRoot,
    release: &Envelope,
    recalls: &[Envelope],
    conditionals: &[Envelope],
    jurisdiction: Option<&PrincipalId>,
    production: Option<&semver::Version>,
    local_rules: &[Requirement],
) -> Decision {
    evaluate(&PolicyInput {
        root,
        local_rules,
        jurisdiction,
        release,
        recalls,
        conditionals,
        production_version: production,
        now: Timestamp::now(),
    })
}

/// `ROLE:THRESHOLD[:P1,P2…]`, e.g. `security:1:au`.
pub fn parse_local_rule(s: &str) -> Result<Requirement> {
    let mut parts = s.splitn(3, ':');
    let role: Role = parts.next().unwrap_or_default().parse()?;
    let threshold: u32 = parts
        .next()
        .context("a local rule is ROLE:THRESHOLD[:PRINCIPALS], e.g. security:1:au")?
        .parse()
        .with_context(|| format!("threshold in {s:?} is not a number"))?;
    let principals = parts
        .next()
        .map(|ps| {
            ps.split(',')
                .map(PrincipalId::new)
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Requirement {
        role,
        threshold,
        principals,
    })
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Recall,
    Conditional,
}

/// A recall or conditional statement naming `release` by the digest of its exact payload.
pub fn about_release(
    release: &Envelope,
    kind: Kind,
    reason: &str,
    consenting: &[PrincipalId],
    created: Timestamp,
) -> Result<Envelope> {
    let StatementKind::Release { predicate, .. } = Statement::from_envelope(release)? else {
        bail!("the envelope is not a release statement");
    };
    let r = ReleaseRef {
        capability: predicate.capability,
        version: predicate.version,
    };
    let (ptype, value) = match kind {
        Kind::Recall => (
            PREDICATE_RECALL,
            serde_json::to_value(RecallPredicate {
                release: r.clone(),
                reason: reason.to_owned(),
                created,
            })?,
        ),
        Kind::Conditional => {
            if consenting.is_empty() {
                bail!("a conditional go-ahead names at least one consenting jurisdiction");
            }
            (
                PREDICATE_CONDITIONAL,
                serde_json::to_value(ConditionalPredicate {
                    release: r.clone(),
                    consenting: consenting.to_vec(),
                    reason: reason.to_owned(),
                    created,
                })?,
            )
        }
    };
    Ok(Statement::about_release(release, &r, ptype, value).to_envelope())
}
