//! The pictures: of a comparison, requests and errors per second for each client, with setSecret and
//! finishSecret marked; of a soak, memory and old-generation connections over rotations; of a fleet, secret reads
//! per rotation against the number of replicas, and how the reads spread after a rotation window opens.

use std::path::Path;

use plotters::{coord::types::RangedCoordf64, prelude::*};

use crate::{
    fleet_report::{self, FleetSummary},
    metrics::{Timeline, BUCKET},
    report::Summary,
    soak::{Drain, SoakRun},
};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];
const SET_SECRET: RGBColor = RGBColor(230, 120, 0);
const FINISH_SECRET: RGBColor = RGBColor(44, 160, 44);

/// A white 1100 x 700 SVG canvas at `path`, which must end in `.svg`.
fn svg_root(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, String> {
    if path.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(format!(
            "--plot {}: only SVG is supported (it needs no fonts installed); use a .svg path",
            path.display()
        ));
    }
    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    Ok(root)
}

/// Draws `summaries` as an SVG at `path`: ops/s on top, errors/s below, rotations as vertical lines.
pub(crate) fn draw(path: &Path, summaries: &[Summary], title: &str) -> Result<(), String> {
    let root = svg_root(path)?;
    let (top, bottom) = root.split_vertically(430);
    let series = |pick: fn(&Timeline) -> &Vec<u64>| -> Vec<(&'static str, Vec<u64>)> {
        summaries
            .iter()
            .map(|s| (s.client, Timeline::per_second(pick(&s.run.timeline))))
            .collect()
    };
    let rotations = summaries
        .first()
        .map(|s| s.run.rotations.clone())
        .unwrap_or_default();
    chart(
        &top,
        title,
        "requests per second",
        &series(|t| &t.ok),
        &rotations,
    )?;
    chart(
        &bottom,
        "",
        "errors per second",
        &series(|t| &t.errors),
        &rotations,
    )?;
    root.present().map_err(|e| e.to_string())
}

fn chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &[(&'static str, Vec<u64>)],
    rotations: &[crate::sim::RotationMark],
) -> Result<(), String> {
    let seconds = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds, 0f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, rotation) in rotations.iter().enumerate() {
        for (at, color, label) in [
            (rotation.set_at, SET_SECRET, "setSecret"),
            (rotation.finish_at, FINISH_SECRET, "finishSecret"),
        ] {
            let line = chart
                .draw_series(LineSeries::new(
                    [(at, 0.0), (at, top)],
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
            if i == 0 {
                line.label(label).legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
        }
    }
    draw_lines(
        &mut chart,
        series.iter().map(|(client, values)| {
            let points = values.iter().enumerate();
            (
                *client,
                points.map(|(s, &v)| (s as f64 + 0.5, v as f64)).collect(),
            )
        }),
    )
}

/// Draws each named line in a colour of its own, then the legend.
fn draw_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    lines: impl IntoIterator<Item = (&'static str, Vec<(f64, f64)>)>,
) -> Result<(), String> {
    for (i, (name, points)) in lines.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Draws a soak as an SVG at `path`: resident memory on top, old-generation connections below, over rotations.
pub(crate) fn draw_soak(path: &Path, run: &SoakRun, title: &str) -> Result<(), String> {
    let root = svg_root(path)?;
    let (top, bottom) = root.split_vertically(350);
    let rss: Vec<(f64, f64)> = run
        .samples
        .iter()
        .map(|s| (f64::from(s.rotation), s.rss_kib as f64 / 1024.0))
        .collect();
    let at_finish = per_rotation(run, |d| d.old_at_finish);
    let after_drain = per_rotation(run, |d| d.old_after);
    let rotations = f64::from(run.plan.rotations.max(1));
    line_chart(
        &top,
        title,
        ("rotations", rotations),
        "resident memory (MiB)",
        false,
        &[("VmRSS", rss)],
    )?;
    line_chart(
        &bottom,
        "",
        ("rotations", rotations),
        "old-generation connections",
        true,
        &[
            ("at finishSecret", at_finish),
            ("after the drain", after_drain),
        ],
    )?;
    root.present().map_err(|e| e.to_string())
}

/// One value of every drain, at its rotation (1-based).
fn per_rotation(run: &SoakRun, value: fn(&Drain) -> u64) -> Vec<(f64, f64)> {
    run.drains
        .iter()
        .enumerate()
        .map(|(i, d)| (i as f64 + 1.0, value(d) as f64))
        .collect()
}

/// Lines over `x` (its name and its largest value, from 0); the y axis from 0 (`from_zero`) or from just under the
/// lowest value, to just over the highest.
fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    (x_label, x_max): (&str, f64),
    y_label: &str,
    from_zero: bool,
    series: &[(&'static str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let values = || {
        series
            .iter()
            .flat_map(|(_, points)| points.iter().map(|&(_, y)| y))
    };
    let high = values().fold(f64::MIN, f64::max).max(1.0);
    let low = if from_zero {
        0.0
    } else {
        values().fold(high, f64::min)
    };
    let margin = ((high - low) * 0.1).max(0.5);
    let (low, top) = ((low - margin).max(0.0), high + margin);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, low..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    draw_lines(
        &mut chart,
        series.iter().map(|(name, points)| (*name, points.clone())),
    )
}

/// Draws a fleet as an SVG at `path`: secret reads per rotation against replicas for each client on top; below,
/// rotapool's reads after each window opened, summed over the rotations, for the run with the most replicas.
pub(crate) fn draw_fleet(
    path: &Path,
    summaries: &[FleetSummary],
    title: &str,
) -> Result<(), String> {
    let root = svg_root(path)?;
    let (top, bottom) = root.split_vertically(350);
    let clients: Vec<&'static str> = crate::fleet::CLIENTS.iter().map(|c| c.name()).collect();
    let lines: Vec<(&'static str, Vec<(f64, f64)>)> = clients
        .iter()
        .map(|&client| {
            let points = summaries
                .iter()
                .filter(|s| s.run.kind.name() == client)
                .map(|s| (s.run.plan.replicas as f64, s.mean(|f| f.reads)))
                .collect();
            (client, points)
        })
        .collect();
    let most = summaries
        .iter()
        .map(|s| s.run.plan.replicas)
        .max()
        .unwrap_or(1);
    line_chart(
        &top,
        title,
        ("replicas", most as f64 * 1.05),
        "secret reads per rotation",
        true,
        &lines,
    )?;
    let widest = summaries
        .iter()
        .filter(|s| s.run.kind == crate::clients::ClientKind::Rotapool)
        .max_by_key(|s| s.run.plan.replicas);
    if let Some(widest) = widest {
        let run = widest.run;
        let seconds = run.plan.interval.as_secs_f64();
        let (current, pending) = fleet_report::spread(run);
        let points = |counts: Vec<u64>| {
            counts
                .into_iter()
                .enumerate()
                .map(|(i, n)| ((i as f64 + 0.5) * BUCKET.as_secs_f64(), n as f64))
                .collect()
        };
        line_chart(
            &bottom,
            &format!(
                "rotapool, {} replicas: reads per 100 ms after the window opened (all rotations)",
                run.plan.replicas
            ),
            (
                "seconds since the rotation window opened (NextRotationDate)",
                seconds,
            ),
            "secret reads",
            true,
            &[
                ("AWSCURRENT", points(current)),
                ("AWSPENDING", points(pending)),
            ],
        )?;
    }
    root.present().map_err(|e| e.to_string())
}
