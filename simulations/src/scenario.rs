//! The scenarios: what happens when, and what is measured. Each builds a `World`, schedules
//! actions, runs simulated time until every honest node that is up holds every edit (or a
//! limit), and reports.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::links::{LinkModel, Site};
use crate::topology::Topology;
use crate::world::{Action, NodeId, World};

/// Edits are spread over this much simulated time.
const EDIT_WINDOW: Duration = Duration::from_secs(20);

/// Simulated time after which a run that has not converged is reported as such.
const LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Edits everywhere, all links up.
    Steady,
    /// Australia cut off for a while, edits on both sides, then healed.
    Partition,
    /// Nodes leave and come back, some with their state, some without.
    Churn,
    /// Edits at the four jurisdiction nodes only: how long from each site to each other.
    Intercontinental,
    /// Listed nodes send forbidden and forged changes and lie in announcements.
    Hostile,
    /// A release proposed with its artifacts, signed by every lead and security at their
    /// own sites, mirrored by every node and promoted by each on its own.
    Release,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Partition => "partition",
            Scenario::Churn => "churn",
            Scenario::Intercontinental => "intercontinental",
            Scenario::Hostile => "hostile",
            Scenario::Release => "release",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub nodes: usize,
    pub seed: u64,
    pub edits: usize,
    pub hostile: usize,
    pub one_site: bool,
    /// Artifact MiB of the release (`release`).
    pub artifact_mib: u64,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut ms: Vec<f64>) -> Spread {
        if ms.is_empty() {
            return Spread::default();
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Spread {
            p50: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: &'static str,
    pub links: &'static str,
    pub nodes: usize,
    pub seed: u64,
    pub edits: u64,
    pub converged: bool,
    /// Per edit: from the edit (or the heal, the last rejoin) to the last node holding it.
    pub convergence: Spread,
    /// Bytes sent plus received per node, over the run.
    pub kib_per_node_mean: f64,
    pub kib_per_node_max: f64,
    pub messages_per_node: f64,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub events: u64,
    /// `release`: from the last signature to live, per node.
    pub to_promotion: Option<Spread>,
    /// `release`: artifact MiB fetched plus served per node (mean, busiest).
    pub artifact_mib_per_node: Option<(f64, f64)>,
    /// Scenario-specific measures, in order.
    pub extra: Vec<(String, String)>,
    /// Rules a node broke in this run (promotion invariants).
    pub broken: Vec<String>,
}

impl Outcome {
    /// The invariants every run checks; a run that breaks one fails.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.converged {
            v.push(format!(
                "{} at {} nodes: honest nodes did not converge",
                self.scenario, self.nodes
            ));
        }
        v.extend(
            self.broken
                .iter()
                .map(|b| format!("{} at {} nodes: {b}", self.scenario, self.nodes)),
        );
        for (key, must) in [
            ("forged changes held by honest nodes", "0"),
            (
                "equivocating changes some honest nodes hold and others not",
                "0",
            ),
            ("edits across the cut before healing", "0"),
            ("nodes that did not promote", "0"),
            (
                "honest nodes that promoted a release one signature short",
                "0",
            ),
            ("honest nodes without its artifacts", "0"),
        ] {
            if let Some((_, got)) = self.extra.iter().find(|(k, _)| k == key)
                && got != must
            {
                v.push(format!(
                    "{} at {} nodes: {key}: {got}",
                    self.scenario, self.nodes
                ));
            }
        }
        v
    }
}

pub fn run(scenario: Scenario, p: &Params) -> Result<Outcome> {
    if p.nodes < 4 || !(p.nodes - 4).is_multiple_of(4) || p.nodes > 1004 {
        bail!(
            "--nodes must be 4 plus a multiple of 4 (the four jurisdiction nodes and the same number of mirrors in each), at most 1004; got {}",
            p.nodes
        );
    }
    let wall = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let topology = Topology::build((p.nodes - 4) / 4, &mut rng);
    let model = if p.one_site {
        LinkModel::one_site()
    } else {
        LinkModel::intercontinental()
    };
    let promoting = matches!(scenario, Scenario::Release | Scenario::Hostile);
    let mut w = World::new(topology, model, p.seed, promoting)?;
    // Let the start-up syncs settle before anything is measured.
    w.run_until(Duration::from_secs(1));
    let t0 = w.t;
    let mut extra = Vec::new();
    let from = match scenario {
        Scenario::Steady => {
            let editors: Vec<NodeId> = (0..w.len() as NodeId).collect();
            edits(&mut w, &mut rng, &editors, p.edits, t0, EDIT_WINDOW);
            None
        }
        Scenario::Intercontinental => {
            edits(&mut w, &mut rng, &[0, 1, 2, 3], p.edits, t0, EDIT_WINDOW);
            None
        }
        Scenario::Partition => {
            let cut = t0 + Duration::from_secs(1);
            let heal = cut + Duration::from_secs(30);
            w.schedule(cut, Action::Cut(vec![Site::Au]));
            let editors: Vec<NodeId> = (0..w.len() as NodeId).collect();
            edits(
                &mut w,
                &mut rng,
                &editors,
                p.edits,
                cut + Duration::from_secs(1),
                EDIT_WINDOW,
            );
            w.schedule(heal, Action::Heal);
            w.run_until(heal);
            let across = crossed_the_cut(&w);
            extra.push((
                "edits across the cut before healing".into(),
                across.to_string(),
            ));
            Some(heal)
        }
        Scenario::Churn => {
            let mut movers: Vec<NodeId> = (4..w.len() as NodeId).collect();
            if movers.is_empty() {
                movers = vec![3];
            }
            movers.shuffle(&mut rng);
            movers.truncate((w.len() / 5).max(1));
            let mut last = t0;
            let mut lost = Vec::new();
            for (i, m) in movers.iter().enumerate() {
                let keep_state = i % 2 == 0;
                if !keep_state {
                    lost.push(*m);
                }
                let leave = t0 + Duration::from_millis(rng.gen_range(0..10_000));
                let back = leave + Duration::from_millis(rng.gen_range(5_000..15_000));
                w.schedule(
                    leave,
                    Action::Leave {
                        node: *m,
                        keep_state,
                    },
                );
                w.schedule(back, Action::Rejoin(*m));
                last = last.max(back);
            }
            // A node restored without its disk would reuse its sequence numbers if it
            // edited before catching up (docs/simulations.md): edits come from the others.
            let editors: Vec<NodeId> = (0..w.len() as NodeId)
                .filter(|n| !lost.contains(n))
                .collect();
            edits(&mut w, &mut rng, &editors, p.edits, t0, EDIT_WINDOW);
            extra.push(("nodes that left".into(), movers.len().to_string()));
            extra.push(("of them without their state".into(), lost.len().to_string()));
            w.run_until(last);
            Some(last)
        }
        Scenario::Hostile => {
            let count = p.hostile.max(1);
            let bad: Vec<NodeId> = if w.len() > 4 {
                (4..w.len() as NodeId).step_by(7).take(count).collect()
            } else {
                vec![3]
            };
            w.attack_until = t0 + Duration::from_secs(25);
            for b in &bad {
                w.hostile.insert(*b);
                w.schedule(t0, Action::Attack(*b));
            }
            let editors: Vec<NodeId> = (0..w.len() as NodeId)
                .filter(|n| !w.hostile.contains(n))
                .collect();
            edits(&mut w, &mut rng, &editors, p.edits, t0, EDIT_WINDOW);
            // A release one lead short of the rule: the attacker forges that lead's
            // approval and claims to hold its artifacts; no honest node may promote it.
            schedule_release(&mut w, p.artifact_mib, t0, Some(crate::release::MISSING));
            extra.push(("hostile nodes".into(), bad.len().to_string()));
            None
        }
        Scenario::Release => {
            schedule_release(&mut w, p.artifact_mib, t0, None);
            // A few capability edits meanwhile, so catalogue sync is measured too.
            let editors: Vec<NodeId> = (0..w.len() as NodeId).collect();
            edits(&mut w, &mut rng, &editors, p.edits, t0, EDIT_WINDOW);
            None
        }
    };
    let converged = w.run_until_converged(LIMIT);
    let mut broken = Vec::new();
    if scenario == Scenario::Hostile {
        // The attack goes on until it ends; what the honest nodes did about it then.
        let end = w.attack_until.max(w.t);
        w.run_until(end);
        let honest: Vec<NodeId> = (0..w.len() as NodeId).filter(|n| w.counts(*n)).collect();
        let refused: u64 = honest
            .iter()
            .filter_map(|n| w.node(*n))
            .map(|s| s.metrics().rejected_messages)
            .sum();
        let bans: u64 = honest
            .iter()
            .filter_map(|n| w.node(*n))
            .map(|s| s.metrics().bans)
            .sum();
        extra.push(("forged changes sent".into(), w.forged.len().to_string()));
        extra.push((
            "equivocating changes sent (pairs on one history)".into(),
            (w.equivocations.len() * 2).to_string(),
        ));
        extra.push((
            "equivocating changes every honest node holds".into(),
            w.equivocations_everywhere().to_string(),
        ));
        extra.push((
            "equivocating pairs every honest node holds both of".into(),
            w.equivocations_merged().to_string(),
        ));
        extra.push((
            "equivocating changes some honest nodes hold and others not".into(),
            w.equivocations_split().to_string(),
        ));
        extra.push((
            "forged changes held by honest nodes".into(),
            w.forged_held().to_string(),
        ));
        extra.push((
            "messages refused by honest nodes".into(),
            refused.to_string(),
        ));
        extra.push(("bans".into(), bans.to_string()));
        extra.push(("audit rows written".into(), w.audit_rows.to_string()));
        // The release one signature short: mirrored despite the lying provider, promoted
        // nowhere despite the forged approval.
        run_until_everywhere(&mut w, LIMIT, |r| &r.mirrored);
        if let Some(r) = &w.release {
            let promoted = honest
                .iter()
                .filter(|n| r.promoted[**n as usize].is_some())
                .count();
            let mirrored = honest
                .iter()
                .filter(|n| r.mirrored[**n as usize].is_some())
                .count();
            extra.push((
                "honest nodes that promoted a release one signature short".into(),
                promoted.to_string(),
            ));
            extra.push((
                "honest nodes without its artifacts".into(),
                (honest.len() - mirrored).to_string(),
            ));
            extra.push((
                "fetches from the lying provider".into(),
                w.corrupt_fetches.to_string(),
            ));
        }
        broken.extend(w.promotion_violations());
    }
    if scenario == Scenario::Intercontinental {
        extra.extend(site_matrix(&w));
    }
    let mut to_promotion = None;
    let mut artifact_mib_per_node = None;
    if scenario == Scenario::Release {
        let promoted = run_until_everywhere(&mut w, LIMIT, |r| &r.promoted);
        let r = w.release.clone();
        if let Some(r) = &r {
            let last = r.last_signature().unwrap_or(LIMIT);
            let missing = (0..w.len())
                .filter(|n| w.counts(*n as NodeId) && r.promoted[*n].is_none())
                .count();
            extra.push(("nodes that did not promote".into(), missing.to_string()));
            let ms =
                |d: &Option<Duration>| d.map(|d| d.saturating_sub(last).as_secs_f64() * 1000.0);
            let spread = Spread::of(r.promoted.iter().filter_map(ms).collect());
            to_promotion = Some(spread);
            let own: Vec<f64> = r.promoted.iter().take(4).filter_map(ms).collect();
            extra.push((
                "jurisdiction nodes: last signature to live max ms".into(),
                format!("{:.0}", own.iter().copied().fold(0.0, f64::max)),
            ));
            let mirrored = Spread::of(
                r.mirrored
                    .iter()
                    .filter_map(|d| d.map(|d| d.saturating_sub(t0).as_secs_f64() * 1000.0))
                    .collect(),
            );
            extra.push((
                "artifacts held everywhere after proposal p50/max ms".into(),
                format!("{:.0} / {:.0}", mirrored.p50, mirrored.max),
            ));
            extra.push(("artifact MiB".into(), p.artifact_mib.to_string()));
            let announced: f64 = w
                .traffic
                .iter()
                .map(|t| t.announce_bytes_in as f64 / 1024.0)
                .sum::<f64>()
                / w.len().max(1) as f64;
            extra.push((
                "blob announcements received KiB per node".into(),
                format!("{announced:.0}"),
            ));
            let mib: Vec<f64> = w
                .traffic
                .iter()
                .map(|t| (t.blob_bytes_in + t.blob_bytes_out) as f64 / f64::from(1u32 << 20))
                .collect();
            artifact_mib_per_node = Some((
                mib.iter().sum::<f64>() / mib.len().max(1) as f64,
                mib.iter().copied().fold(0.0, f64::max),
            ));
        }
        if !promoted {
            broken.push("not every honest node promoted before the limit".into());
        }
        broken.extend(w.promotion_violations());
    }
    if scenario == Scenario::Churn {
        let catch_up = catch_up(&w);
        extra.push((
            "catch-up after rejoining p50/max ms".into(),
            format!("{:.0} / {:.0}", catch_up.p50, catch_up.max),
        ));
    }
    let convergence = Spread::of(
        w.tracked
            .iter()
            .filter_map(|e| {
                let last = (0..w.len())
                    .filter(|n| w.counts(*n as NodeId))
                    .map(|n| e.arrived[n])
                    .collect::<Option<Vec<_>>>()?
                    .into_iter()
                    .max()?;
                let start = from.map_or(e.at, |f| f.max(e.at));
                Some(last.saturating_sub(start).as_secs_f64() * 1000.0)
            })
            .collect(),
    );
    let n = w.len() as f64;
    let per_node: Vec<f64> = w
        .traffic
        .iter()
        .map(|t| (t.bytes_in + t.bytes_out) as f64 / 1024.0)
        .collect();
    Ok(Outcome {
        scenario: scenario.name(),
        links: w.model.name,
        nodes: w.len(),
        seed: p.seed,
        edits: w.edits_made,
        converged,
        convergence,
        kib_per_node_mean: per_node.iter().sum::<f64>() / n,
        kib_per_node_max: per_node.iter().copied().fold(0.0, f64::max),
        messages_per_node: w.traffic.iter().map(|t| t.messages_out as f64).sum::<f64>() / n,
        simulated_s: w.t.as_secs_f64(),
        wall_s: wall.elapsed().as_secs_f64(),
        events: w.events,
        to_promotion,
        artifact_mib_per_node,
        extra,
        broken,
    })
}

/// When the `release` run's events happen: EU proposes at once; the leads sign at their
/// own jurisdiction's node one after another from 30 s (artifacts are mirrored while they
/// sign), security last, at 40 s.
fn schedule_release(w: &mut World, mib: u64, t0: Duration, skip: Option<&str>) {
    w.release = Some(crate::release::Followed::new(mib, w.len()));
    w.schedule(t0, Action::Propose(Site::Eu.index() as NodeId));
    for (i, signer) in crate::release::SIGNERS.iter().enumerate() {
        if Some(*signer) == skip {
            continue;
        }
        let site = match signer.split('.').next() {
            Some("eu") => Site::Eu,
            Some("ca") => Site::Ca,
            Some("au") => Site::Au,
            _ => Site::Uk,
        };
        let at = t0 + Duration::from_secs(30 + 2 * i as u64 + if i == 4 { 2 } else { 0 });
        w.schedule(
            at,
            Action::Sign {
                node: site.index() as NodeId,
                signer,
            },
        );
    }
}

/// Runs until every honest node that is up has a time in `per_node` (one of the followed
/// release's: when each held it, when each promoted it), or `limit`.
fn run_until_everywhere(
    w: &mut World,
    limit: Duration,
    per_node: fn(&crate::release::Followed) -> &[Option<Duration>],
) -> bool {
    w.run_until_done(limit, |w| {
        w.release.as_ref().is_some_and(|r| {
            per_node(r)
                .iter()
                .enumerate()
                .all(|(n, at)| at.is_some() || !w.counts(n as NodeId))
        })
    })
}

/// `count` edits at random nodes of `editors`, at random moments in `[start, start + over)`.
fn edits(
    w: &mut World,
    rng: &mut ChaCha8Rng,
    editors: &[NodeId],
    count: usize,
    start: Duration,
    over: Duration,
) {
    let span = u64::try_from(over.as_millis()).unwrap_or(u64::MAX).max(1);
    for _ in 0..count {
        let at = start + Duration::from_millis(rng.gen_range(0..span));
        let n = editors[rng.gen_range(0..editors.len())];
        w.schedule(at, Action::Edit(n));
    }
}

/// Per returning node: from its return until it holds every edit made before it.
fn catch_up(w: &World) -> Spread {
    Spread::of(
        w.rejoins
            .iter()
            .filter_map(|(n, back)| {
                w.tracked
                    .iter()
                    .filter(|e| e.at <= *back)
                    .map(|e| e.arrived[*n as usize].map(|a| a.saturating_sub(*back)))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.into_iter().max().unwrap_or_default())
            })
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect(),
    )
}

/// Edits that reached the other side of the cut before it healed (must be none).
fn crossed_the_cut(w: &World) -> usize {
    w.tracked
        .iter()
        .filter(|e| {
            let au = w.site(e.origin) == Site::Au;
            e.arrived
                .iter()
                .enumerate()
                .any(|(n, a)| a.is_some() && (w.site(n as NodeId) == Site::Au) != au)
        })
        .count()
}

/// Median time from an edit at one jurisdiction's node to the arrival at another's.
fn site_matrix(w: &World) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for from in Site::ALL {
        for to in Site::ALL {
            if from == to {
                continue;
            }
            let ms: Vec<f64> = w
                .tracked
                .iter()
                .filter(|e| e.origin == from.index() as NodeId)
                .filter_map(|e| e.arrived[to.index()].map(|a| a.saturating_sub(e.at)))
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            if !ms.is_empty() {
                out.push((
                    format!("{} -> {} median ms", from.code(), to.code()),
                    format!("{:.0}", Spread::of(ms).p50),
                ));
            }
        }
    }
    out
}
