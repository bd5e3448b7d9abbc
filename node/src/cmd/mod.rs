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
        Command::Catalogue(c) => catalogue::run(c),
        Command::Keys(c) => keys::run(c),
        Command::Root(c) => root::run(c),
        Command::Release(c) => release::run(c),
    }
}
