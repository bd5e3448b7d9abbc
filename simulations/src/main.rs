//! `accord-simulations SCENARIO [--nodes N[,N...]] [--seed S] [--out DIR]`

use std::path::PathBuf;

use accord_simulations::report;
use accord_simulations::scenario::{self, Params, Scenario};
use anyhow::Result;
use clap::Parser;

/// Runs the node's own core (accord-service) over a simulated network. Same seed, same
/// result: simulated time does not depend on the machine.
#[derive(Debug, Parser)]
#[command(name = "accord-simulations", version)]
struct Args {
    scenario: Scenario,
    /// Node counts to run, each the four jurisdiction nodes plus the same number of mirrors
    /// per jurisdiction (4, 8, ..., 1004); several give plots against the count.
    #[arg(long, value_delimiter = ',', default_value = "4")]
    nodes: Vec<usize>,
    /// The seed everything random derives from (printed; replay with it).
    #[arg(long)]
    seed: Option<u64>,
    /// Edits made during the run.
    #[arg(long, default_value_t = 40)]
    edits: usize,
    /// Hostile nodes (the `hostile` scenario).
    #[arg(long, default_value_t = 1)]
    hostile: usize,
    /// Artifact MiB of the release (the `release` scenario).
    #[arg(long, default_value_t = 64)]
    artifact_mib: u64,
    /// Every node in one data centre instead of the four sites' real distances.
    #[arg(long)]
    one_site: bool,
    /// Where the CSV and the plots go.
    #[arg(long, default_value = "target/simulations")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    println!(
        "seed {seed} (replay: accord-simulations {} --nodes {} --seed {seed})",
        args.scenario.name(),
        args.nodes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut outcomes = Vec::new();
    for n in &args.nodes {
        let p = Params {
            nodes: *n,
            seed,
            edits: args.edits,
            hostile: args.hostile,
            one_site: args.one_site,
            artifact_mib: args.artifact_mib,
        };
        let o = scenario::run(args.scenario, &p)?;
        eprintln!(
            "{} nodes: {:.1} s simulated in {:.1} s",
            o.nodes, o.simulated_s, o.wall_s
        );
        outcomes.push(o);
    }
    print!("{}", report::table(&outcomes));
    for f in report::write(&args.out, &outcomes)? {
        println!("wrote {f}");
    }
    let broken: Vec<String> = outcomes.iter().flat_map(|o| o.violations()).collect();
    if !broken.is_empty() {
        for b in &broken {
            eprintln!("invariant broken: {b}");
        }
        anyhow::bail!(
            "{} invariant(s) broken (replay with --seed {seed})",
            broken.len()
        );
    }
    Ok(())
}
