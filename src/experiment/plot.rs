//! SVG plots (plotters): mailbox depth and call latency over time, one line per policy.

use std::path::Path;

use plotters::prelude::*;

use super::report::RunReport;

/// Writes `<scenario>-depth.svg` and `<scenario>-latency.svg` into `dir`.
pub fn write_plots(dir: &Path, scenario: &str, runs: &[RunReport]) -> Result<(), String> {
    plot(
        &dir.join(format!("{scenario}-depth.svg")),
        &format!("{scenario}: messages queued (all mailboxes)"),
        "messages",
        runs,
        |s| s.depth as f64,
    )?;
    plot(
        &dir.join(format!("{scenario}-latency.svg")),
        &format!("{scenario}: call latency p99 per window"),
        "ms",
        runs,
        |s| s.p99_ms,
    )
}

fn plot(
    path: &Path,
    title: &str,
    unit: &str,
    runs: &[RunReport],
    value: impl Fn(&super::report::Sample) -> f64,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    let max_t = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|s| s.t_ms))
        .fold(1.0, f64::max);
    let max_v = runs
        .iter()
        .flat_map(|r| r.series.iter().map(&value))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t / 1000.0, 0.0..max_v * 1.05)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(unit)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                r.series.iter().map(|s| (s.t_ms / 1000.0, value(s))),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(r.policy.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
