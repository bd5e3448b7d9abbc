//! What a run prints and writes: a table on stdout, a CSV, and SVG plots against the number
//! of nodes when several sizes were run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use crate::scenario::Outcome;

const COLUMNS: &str = "scenario,links,nodes,seed,edits,converged,convergence_p50_ms,convergence_p95_ms,convergence_max_ms,kib_per_node_mean,kib_per_node_max,messages_per_node,simulated_s,wall_s,events,promotion_p50_ms,promotion_max_ms,artifact_mib_per_node_mean,artifact_mib_per_node_max";

pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:<16} {:>5} {:>5} {:>5} {:>26} {:>20} {:>9} {:>8} {:>7}",
        "scenario",
        "links",
        "nodes",
        "edits",
        "conv",
        "convergence p50/p95/max ms",
        "KiB per node mean/max",
        "msgs/node",
        "sim s",
        "wall s"
    );
    for o in outcomes {
        let _ = writeln!(
            s,
            "{:<16} {:<16} {:>5} {:>5} {:>5} {:>26} {:>20} {:>9.0} {:>8.1} {:>7.1}",
            o.scenario,
            o.links,
            o.nodes,
            o.edits,
            if o.converged { "yes" } else { "NO" },
            format!(
                "{:.0} / {:.0} / {:.0}",
                o.convergence.p50, o.convergence.p95, o.convergence.max
            ),
            format!("{:.0} / {:.0}", o.kib_per_node_mean, o.kib_per_node_max),
            o.messages_per_node,
            o.simulated_s,
            o.wall_s,
        );
        if let Some(t) = &o.to_promotion {
            let _ = writeln!(
                s,
                "    last signature to live, every node p50/p95/max ms: {:.0} / {:.0} / {:.0}",
                t.p50, t.p95, t.max
            );
        }
        if let Some((mean, max)) = o.artifact_mib_per_node {
            let _ = writeln!(
                s,
                "    artifact MiB fetched + served per node mean/max: {mean:.0} / {max:.0}"
            );
        }
        for (k, v) in &o.extra {
            let _ = writeln!(s, "    {k}: {v}");
        }
    }
    s
}

pub fn csv(outcomes: &[Outcome]) -> String {
    let mut s = String::from(COLUMNS);
    s.push('\n');
    for o in outcomes {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.3},{:.3},{},{},{},{},{}",
            o.scenario,
            o.links,
            o.nodes,
            o.seed,
            o.edits,
            o.converged,
            o.convergence.p50,
            o.convergence.p95,
            o.convergence.max,
            o.kib_per_node_mean,
            o.kib_per_node_max,
            o.messages_per_node,
            o.simulated_s,
            o.wall_s,
            o.events,
            o.to_promotion
                .map(|t| format!("{:.1}", t.p50))
                .unwrap_or_default(),
            o.to_promotion
                .map(|t| format!("{:.1}", t.max))
                .unwrap_or_default(),
            o.artifact_mib_per_node
                .map(|(m, _)| format!("{m:.1}"))
                .unwrap_or_default(),
            o.artifact_mib_per_node
                .map(|(_, m)| format!("{m:.1}"))
                .unwrap_or_default(),
        );
    }
    s
}

/// Writes the CSV and, with more than one size, the plots; returns the files written.
pub fn write(dir: &Path, outcomes: &[Outcome]) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let Some(first) = outcomes.first() else {
        return Ok(Vec::new());
    };
    let stem = format!("{}-{}", first.scenario, first.links);
    let mut written = Vec::new();
    let csv_path = dir.join(format!("{stem}.csv"));
    std::fs::write(&csv_path, csv(outcomes))
        .with_context(|| format!("writing {}", csv_path.display()))?;
    written.push(csv_path.display().to_string());
    if outcomes.len() > 1 {
        let conv = dir.join(format!("{stem}-convergence.svg"));
        plot(
            &conv,
            &format!("{}: time to convergence ({})", first.scenario, first.links),
            "milliseconds",
            &[
                (
                    "median",
                    outcomes
                        .iter()
                        .map(|o| (o.nodes, o.convergence.p50))
                        .collect(),
                ),
                (
                    "slowest edit",
                    outcomes
                        .iter()
                        .map(|o| (o.nodes, o.convergence.max))
                        .collect(),
                ),
            ],
        )?;
        written.push(conv.display().to_string());
        let bytes = dir.join(format!("{stem}-bytes.svg"));
        plot(
            &bytes,
            &format!("{}: traffic per node ({})", first.scenario, first.links),
            "KiB sent + received",
            &[
                (
                    "mean",
                    outcomes
                        .iter()
                        .map(|o| (o.nodes, o.kib_per_node_mean))
                        .collect(),
                ),
                (
                    "busiest node",
                    outcomes
                        .iter()
                        .map(|o| (o.nodes, o.kib_per_node_max))
                        .collect(),
                ),
            ],
        )?;
        written.push(bytes.display().to_string());
        if outcomes.iter().all(|o| o.to_promotion.is_some()) {
            let promo = dir.join(format!("{stem}-promotion.svg"));
            plot(
                &promo,
                &format!(
                    "{}: last signature to live on every node ({})",
                    first.scenario, first.links
                ),
                "milliseconds",
                &[
                    (
                        "median node",
                        outcomes
                            .iter()
                            .filter_map(|o| o.to_promotion.map(|t| (o.nodes, t.p50)))
                            .collect(),
                    ),
                    (
                        "last node",
                        outcomes
                            .iter()
                            .filter_map(|o| o.to_promotion.map(|t| (o.nodes, t.max)))
                            .collect(),
                    ),
                ],
            )?;
            written.push(promo.display().to_string());
        }
    }
    Ok(written)
}

type Series = (&'static str, Vec<(usize, f64)>);

/// A line chart of measures against the number of nodes.
fn plot(path: &Path, title: &str, y_label: &str, series: &[Series]) -> Result<()> {
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let x_max = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(x, _)| *x as f64))
            .fold(1.0, f64::max);
        let y_max = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
            .fold(1.0, f64::max)
            * 1.1;
        let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max * 1.05, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("nodes")
            .y_desc(y_label)
            .draw()?;
        let colours = [BLUE, RED, GREEN, BLACK];
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = colours[i % colours.len()];
            let pts: Vec<(f64, f64)> = points.iter().map(|(x, y)| (*x as f64, *y)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow!("plotting {}: {e}", path.display()))
}
