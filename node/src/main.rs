//! `accord`: the command-line face of an Accord node.
//!
//! The binary parses arguments, reads and writes files, and prints; every decision is made
//! by the library crates (`accord-trust` for keys, roots and policy).

mod api;
mod artifacts;
mod cli;
mod client;
mod cmd;
mod config;
mod daemon;
mod datadir;
mod files;
mod mirror;
mod passphrase;
mod promotion;
mod provenance;
mod report;
mod testpoint;

use std::process::ExitCode;

use clap::Parser;

/// A command that ran but refused (not promotable, root not accepted): exit 1 with the
/// reason already printed.
#[derive(Debug)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

fn main() -> ExitCode {
    // `accord ... | head` should end quietly, as other Unix tools do, not panic.
    sigpipe::reset();
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ACCORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Refused>() => ExitCode::from(1),
        Err(e) => {
            // One line: the outermost context, then the causes.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::from(1)
        }
    }
}
