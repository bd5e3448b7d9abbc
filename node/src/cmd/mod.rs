//! One module per command group; `run` dispatches.

pub mod catalogue;
pub mod demo;
pub mod keys;
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
        Command::Release(c) => release::run(c),
    }
}
