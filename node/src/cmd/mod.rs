//! One module per command group; `run` dispatches.

pub mod artifacts;
pub mod audit;
pub mod bundle;
pub mod catalogue;
pub mod cosign;
pub mod demo;
pub mod keys;
pub mod provenance;
pub mod release;
pub mod root;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Init(args) => catalogue::init(args),
        Command::Node(crate::cli::NodeCommand::Status { data_dir, json }) => {
            catalogue::status(&crate::datadir::DataDir::new(&data_dir.data_dir), json)
        }
        Command::Node(crate::cli::NodeCommand::Run { config, passphrase }) => {
            let cfg = crate::config::NodeConfig::load(&config)?;
            let pass = crate::passphrase::existing(&passphrase, "the node key")?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(crate::daemon::run(cfg, pass))
        }
        Command::Catalogue(c) => catalogue::run(c),
        Command::Keys(c) => keys::run(c),
        Command::Root(c) => root::run(c),
        Command::Release(crate::cli::ReleaseCommand::Propose {
            capability,
            version,
            files,
            provenance,
            trusted_root,
            certificate_identity,
            certificate_oidc_issuer,
            data_dir,
            passphrase,
        }) => {
            let (files, refs) = match (trusted_root, certificate_identity, certificate_oidc_issuer)
            {
                (Some(trusted_root), Some(identity), Some(issuer)) => {
                    let args = crate::cli::SigstoreArgs {
                        trusted_root,
                        certificate_identity: identity,
                        certificate_oidc_issuer: issuer,
                    };
                    provenance::with_bundles(files, &provenance, &args)?
                }
                _ => (files, Vec::new()),
            };
            artifacts::propose(
                artifacts::Proposal {
                    capability,
                    version,
                    files,
                    provenance: refs,
                },
                &crate::datadir::DataDir::new(&data_dir.data_dir),
                &passphrase,
            )
        }
        Command::Release(crate::cli::ReleaseCommand::Status {
            release,
            data_dir,
            json,
        }) => artifacts::status(
            release.as_deref(),
            &crate::datadir::DataDir::new(&data_dir.data_dir),
            json,
        ),
        Command::Release(c) => release::run(c),
        Command::Fetch(args) => artifacts::fetch(args),
        Command::Gc { data_dir } => {
            artifacts::gc(&crate::datadir::DataDir::new(&data_dir.data_dir))
        }
        Command::Provenance(c) => provenance::run(c),
        Command::SigstoreRoot(c) => provenance::sigstore_root(c),
        Command::Bundle(crate::cli::BundleCommand::Export {
            out,
            release,
            since,
            max_part_size,
            data_dir,
            passphrase,
        }) => {
            let dir = crate::datadir::DataDir::new(&data_dir.data_dir);
            let max_part = max_part_size.map(|s| bundle::parse_size(&s)).transpose()?;
            bundle::export(
                &dir,
                &out,
                &release,
                since.as_deref(),
                max_part,
                &passphrase,
            )
        }
        Command::Bundle(crate::cli::BundleCommand::Verify {
            file,
            root,
            jurisdiction,
            report,
            sign_with,
            passphrase,
        }) => {
            let signer = sign_with
                .map(|k| keys::load_secret(&k, &passphrase))
                .transpose()?;
            bundle::verify(
                &file,
                &root,
                jurisdiction.as_deref(),
                report.as_deref(),
                signer.as_ref(),
            )
        }
        Command::Bundle(crate::cli::BundleCommand::CheckPart { part, list }) => {
            bundle::check_part(&part, &list)
        }
        Command::Bundle(crate::cli::BundleCommand::Import {
            file,
            receipt,
            data_dir,
            passphrase,
        }) => bundle::import(
            &crate::datadir::DataDir::new(&data_dir.data_dir),
            &file,
            &passphrase,
            receipt.as_deref(),
        ),
        Command::Audit(crate::cli::AuditCommand::List { data_dir, json }) => {
            audit::list(&crate::datadir::DataDir::new(&data_dir.data_dir), json)
        }
        Command::Audit(crate::cli::AuditCommand::Verify { data_dir, against }) => audit::verify(
            &crate::datadir::DataDir::new(&data_dir.data_dir),
            against
                .as_deref()
                .map(crate::datadir::DataDir::new)
                .as_ref(),
        ),
    }
}
