//! The picture of a run: requests and errors per second for each client, with setSecret and finishSecret marked.

use std::path::Path;

use plotters::prelude::*;

use crate::{metrics::Timeline, report::Summary};

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

/// Draws `summaries` as an SVG at `path`: ops/s on top, errors/s below, rotations as vertical lines.
pub(crate) fn draw(path: &Path, summaries: &[Summary], title: &str) -> Result<(), String> {
    if path.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(format!(
            "--plot {}: only SVG is supported (it needs no fonts installed); use a .svg path",
            path.display()
        ));
    }
    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
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
    for (i, (client, values)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                values
                    .iter()
                    .enumerate()
                    .map(|(s, &v)| (s as f64 + 0.5, v as f64)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*client)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}
