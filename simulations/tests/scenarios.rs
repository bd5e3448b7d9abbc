//! The simulator's promises: the same seed gives the same run, and the scenarios hold what
//! they measure (no edit crosses a cut, no forged change reaches an honest node, everyone
//! converges).

use accord_simulations::scenario::{self, Outcome, Params, Scenario};

fn run(s: Scenario, nodes: usize, seed: u64) -> Outcome {
    scenario::run(
        s,
        &Params {
            nodes,
            seed,
            edits: 12,
            hostile: 1,
            one_site: false,
            artifact_mib: 16,
        },
    )
    .expect("runs")
}

/// Every scenario at 4 and 40 nodes, each run's invariants checked.
#[test]
fn every_scenario_holds_its_invariants_at_4_and_40_nodes() {
    for s in [
        Scenario::Steady,
        Scenario::Partition,
        Scenario::Churn,
        Scenario::Intercontinental,
        Scenario::Hostile,
        Scenario::Release,
    ] {
        for n in [4, 40] {
            let o = run(s, n, 2026);
            assert!(o.violations().is_empty(), "{:?}", o.violations());
            assert!(o.edits > 0, "{} at {n}: no edit made", s.name());
        }
    }
}

fn extra<'a>(o: &'a Outcome, key: &str) -> &'a str {
    o.extra
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {:?}", o.extra))
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(Scenario::Steady, 8, 11);
    let b = run(Scenario::Steady, 8, 11);
    assert!(a.converged);
    assert_eq!(a.edits, 12);
    assert_eq!(a.events, b.events);
    assert_eq!(a.simulated_s, b.simulated_s);
    assert_eq!(a.kib_per_node_max, b.kib_per_node_max);
    assert_eq!(a.convergence.max, b.convergence.max);
    let c = run(Scenario::Steady, 8, 12);
    assert_ne!(
        (a.events, a.kib_per_node_max),
        (c.events, c.kib_per_node_max),
        "another seed, another run"
    );
}

#[test]
fn nothing_crosses_a_cut_and_everything_arrives_after_it_heals() {
    let o = run(Scenario::Partition, 8, 5);
    assert_eq!(extra(&o, "edits across the cut before healing"), "0");
    assert!(o.converged);
    assert!(o.edits > 0);
}

#[test]
fn honest_nodes_refuse_every_forged_change_and_still_converge() {
    let o = run(Scenario::Hostile, 8, 9);
    assert!(o.converged, "{o:?}");
    assert!(extra(&o, "forged changes sent").parse::<u64>().expect("n") > 0);
    assert_eq!(extra(&o, "forged changes held by honest nodes"), "0");
    // Equivocation split nobody: every branch some honest node took, all of them hold.
    let sent: u64 = extra(&o, "equivocating changes sent (pairs on one history)")
        .parse()
        .expect("n");
    let everywhere: u64 = extra(&o, "equivocating changes every honest node holds")
        .parse()
        .expect("n");
    let merged: u64 = extra(&o, "equivocating pairs every honest node holds both of")
        .parse()
        .expect("n");
    assert!(sent > 0 && everywhere > 0 && merged > 0, "{o:?}");
    assert_eq!(
        extra(
            &o,
            "equivocating changes some honest nodes hold and others not"
        ),
        "0"
    );
    assert!(
        extra(&o, "messages refused by honest nodes")
            .parse::<u64>()
            .expect("n")
            > 0
    );
    assert!(extra(&o, "bans").parse::<u64>().expect("n") > 0);
}

#[test]
fn nodes_that_leave_with_or_without_their_state_catch_up() {
    let o = run(Scenario::Churn, 12, 4);
    assert!(o.converged, "{o:?}");
    assert_eq!(extra(&o, "of them without their state"), "1");
}

#[test]
fn a_node_count_that_is_not_four_plus_mirrors_is_refused() {
    let e = scenario::run(
        Scenario::Steady,
        &Params {
            nodes: 6,
            seed: 1,
            edits: 1,
            hostile: 1,
            one_site: false,
            artifact_mib: 16,
        },
    )
    .expect_err("refused");
    assert!(e.to_string().contains("--nodes"), "{e}");
}

/// The release is mirrored by the real queue and promoted by every node's own engine, only
/// after the last signature, within seconds of it even across the world.
#[test]
fn a_release_goes_live_everywhere_soon_after_its_last_signature() {
    let o = run(Scenario::Release, 8, 7);
    assert!(o.violations().is_empty(), "{:?}", o.violations());
    assert_eq!(extra(&o, "nodes that did not promote"), "0");
    let t = o.to_promotion.expect("measured");
    // The slowest link's round trip is 349 ms (UK-AU): the signature must cross the world
    // once, the promotion itself is local.
    assert!(t.max > 0.0 && t.max < 2_349.0, "{t:?}");
    let (mean, max) = o.artifact_mib_per_node.expect("measured");
    // Every node fetched the 16 MiB release once; providers served more.
    assert!(mean >= 16.0 && max >= mean, "{mean} {max}");
}
