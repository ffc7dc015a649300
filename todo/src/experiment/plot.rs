//! SVG plots (plotters): mailbox depth and call latency over time, one line per policy;
//! a plot without samples says so in words instead of showing empty axes.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::report::RunReport;

/// A plot could not be drawn or written; the cause (plotters' error, an I/O error
/// inside it) is the error's source.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the plot {}", path.display())]
pub struct PlotError {
    /// The SVG file being written.
    pub path: PathBuf,
    /// What plotters reported.
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl PlotError {
    /// A closure turning plotters' error into a `PlotError` for `path`.
    fn at<E: std::error::Error + Send + Sync + 'static>(
        path: &Path,
    ) -> impl Fn(E) -> PlotError + '_ {
        move |e| PlotError {
            path: path.to_path_buf(),
            source: Box::new(e),
        }
    }
}

/// Writes `<scenario>-depth.svg` and `<scenario>-latency.svg` into `dir`.
///
/// # Errors
///
/// [`PlotError`] naming the file that could not be drawn or written.
pub fn write_plots(dir: &Path, scenario: &str, runs: &[RunReport]) -> Result<(), PlotError> {
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
) -> Result<(), PlotError> {
    if runs.iter().all(|r| r.series.is_empty()) {
        return no_data(path, title, runs);
    }
    let max_t = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|s| s.t_ms))
        .fold(1.0, f64::max);
    let max_v = runs
        .iter()
        .flat_map(|r| r.series.iter().map(&value))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::at(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t / 1000.0, 0.0..max_v * 1.05)
        .map_err(PlotError::at(path))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(unit)
        .draw()
        .map_err(PlotError::at(path))?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                r.series.iter().map(|s| (s.t_ms / 1000.0, value(s))),
                color.stroke_width(2),
            ))
            .map_err(PlotError::at(path))?;
        chart
            .draw_series(
                r.series
                    .iter()
                    .map(|s| Circle::new((s.t_ms / 1000.0, value(s)), 2, color.filled())),
            )
            .map_err(PlotError::at(path))?
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
        .map_err(PlotError::at(path))?;
    root.present().map_err(PlotError::at(path))
}

/// Why a scenario has no time series, in words for the plot.
fn why_empty(runs: &[RunReport]) -> String {
    match runs.first().map(|r| r.scenario.as_str()) {
        Some("crash") => "No samples: crash runs its writer in a separate process and kills it \
                          with SIGKILL; only the counts after the restart are measured (see the table)."
            .into(),
        None => "No samples: no run finished.".into(),
        Some(_) => "No samples: every run ended before the first sampling tick.".into(),
    }
}

/// A plot with no data: its title and, where the axes would be, why there is nothing.
fn no_data(path: &Path, title: &str, runs: &[RunReport]) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (900, 240)).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::at(path))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(PlotError::at(path))?;
    let style = ("sans-serif", 16).into_font().color(&BLACK);
    let policies: Vec<&str> = runs.iter().map(|r| r.policy.as_str()).collect();
    let lines = [
        why_empty(runs),
        format!("Policies run: {}.", policies.join(", ")),
    ];
    for (i, line) in lines.iter().enumerate() {
        root.draw_text(line, &style, (20, 60 + 30 * i as i32))
            .map_err(PlotError::at(path))?;
    }
    root.present().map_err(PlotError::at(path))
}
