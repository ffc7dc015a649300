//! SVG plots (plotters): mailbox depth and call latency over time, one line per policy
//! (each run samples about 50 times, see `measure.rs`); a run too short for a line
//! (fewer than [`MIN_POINTS`] samples) turns the plot into a bar chart of each run's
//! totals, and a plot without samples says so in words instead of showing empty axes.
//! Each plot states under its title which of these it is.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{RunReport, Sample};

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

/// Fewest samples a run's line needs to show a shape; with fewer, the plot is a
/// bar chart of each run's totals instead (and says so).
pub const MIN_POINTS: usize = 20;

/// One of a scenario's two plots.
struct Plot<'a> {
    path: PathBuf,
    /// What is plotted, after `<scenario>: `.
    what: &'a str,
    unit: &'a str,
    /// The sampled value.
    value: fn(&Sample) -> f64,
    /// The run's total for the bar chart, and what it is.
    total: fn(&RunReport) -> f64,
    total_what: &'a str,
}

/// Writes `<scenario>-depth.svg` and `<scenario>-latency.svg` into `dir`: lines over
/// time when every run has at least [`MIN_POINTS`] samples, otherwise bars of each
/// run's totals; each plot states which it is.
///
/// # Errors
///
/// [`PlotError`] naming the file that could not be drawn or written.
pub fn write_plots(dir: &Path, scenario: &str, runs: &[RunReport]) -> Result<(), PlotError> {
    draw(
        scenario,
        runs,
        &Plot {
            path: dir.join(format!("{scenario}-depth.svg")),
            what: "messages queued (all mailboxes)",
            unit: "messages",
            value: |s| s.depth as f64,
            total: |r| {
                r.roles
                    .iter()
                    .map(|role| role.peak_depth)
                    .max()
                    .unwrap_or(0) as f64
            },
            total_what: "most messages queued at once in one mailbox (srv peak, db peak)",
        },
    )?;
    draw(
        scenario,
        runs,
        &Plot {
            path: dir.join(format!("{scenario}-latency.svg")),
            what: "call latency p99 per window",
            unit: "ms",
            value: |s| s.p99_ms,
            total: |r| r.p99_ms,
            total_what: "p99 latency of the whole run (p99 ms)",
        },
    )
}

/// Which kind of plot `runs` get: `None` when no run has a sample, `Some(true)` for
/// lines (every run has at least [`MIN_POINTS`] samples), `Some(false)` for bars.
fn as_lines(runs: &[RunReport]) -> Option<bool> {
    if runs.iter().all(|r| r.series.is_empty()) {
        None
    } else {
        Some(runs.iter().all(|r| r.series.len() >= MIN_POINTS))
    }
}

fn draw(scenario: &str, runs: &[RunReport], p: &Plot) -> Result<(), PlotError> {
    let path = p.path.as_path();
    match as_lines(runs) {
        None => no_data(path, &format!("{scenario}: {}", p.what), runs),
        Some(true) => lines(path, &format!("{scenario}: {}", p.what), runs, p),
        Some(false) => bars(scenario, runs, p),
    }
}

/// A drawing area with the title and a line of small print below it; the rest of it.
fn titled<'a>(
    path: &'a Path,
    size: (u32, u32),
    title: &str,
    note: &str,
) -> Result<DrawingArea<SVGBackend<'a>, plotters::coord::Shift>, PlotError> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(PlotError::at(path))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(PlotError::at(path))?;
    let (top, body) = root.split_vertically(24);
    top.draw_text(
        note,
        &("sans-serif", 13).into_font().color(&RGBColor(74, 85, 104)),
        (20, 4),
    )
    .map_err(PlotError::at(path))?;
    Ok(body)
}

/// One line per run over time, a dot per sample.
fn lines(path: &Path, title: &str, runs: &[RunReport], p: &Plot) -> Result<(), PlotError> {
    let value = p.value;
    let counts = runs.iter().map(|r| r.series.len());
    let (fewest, most) = (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0));
    let note = if fewest == most {
        format!("Time series: one dot per sample, {fewest} samples per run.")
    } else {
        format!("Time series: one dot per sample, {fewest} to {most} samples per run.")
    };
    let max_t = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|s| s.t_ms))
        .fold(1.0, f64::max);
    let max_v = runs
        .iter()
        .flat_map(|r| r.series.iter().map(value))
        .fold(1.0, f64::max);
    let root = titled(path, (900, 500), title, &note)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t / 1000.0, 0.0..max_v * 1.05)
        .map_err(PlotError::at(path))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(p.unit)
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
            .label(format!("{} ({} samples)", r.policy, r.series.len()))
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

/// One bar per run: its total, for runs too short for a time series.
fn bars(scenario: &str, runs: &[RunReport], p: &Plot) -> Result<(), PlotError> {
    let path = p.path.as_path();
    let short: Vec<String> = runs
        .iter()
        .filter(|r| r.series.len() < MIN_POINTS)
        .map(|r| format!("{}: {}", r.policy, r.series.len()))
        .collect();
    let note = format!(
        "Bar chart of run totals, not a time series: some runs had fewer than {MIN_POINTS} samples ({}).",
        short.join(", ")
    );
    let title = format!("{scenario}: {}", p.total_what);
    let totals: Vec<f64> = runs.iter().map(p.total).collect();
    let max_v = totals.iter().copied().fold(1.0, f64::max);
    let root = titled(path, (900, 500), &title, &note)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        // A discrete range includes its end: `0..n - 1` is n segments.
        .build_cartesian_2d(
            (0..runs.len().max(1) as i32 - 1).into_segmented(),
            0.0..max_v * 1.15,
        )
        .map_err(PlotError::at(path))?;
    let name = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => runs
            .get(*i as usize)
            .map_or(String::new(), |r| r.policy.clone()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(runs.len())
        .x_label_formatter(&name)
        .x_desc("run (policy)")
        .y_desc(p.unit)
        .draw()
        .map_err(PlotError::at(path))?;
    let label = ("sans-serif", 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, v) in totals.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let x = i as i32;
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(x), 0.0),
                (SegmentValue::Exact(x + 1), *v),
            ],
            color.filled(),
        );
        bar.set_margin(0, 0, 20, 20);
        chart
            .draw_series(std::iter::once(bar))
            .map_err(PlotError::at(path))?;
        chart
            .draw_series(std::iter::once(Text::new(
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                },
                (SegmentValue::CenterOf(x), *v + max_v * 0.01),
                label.clone(),
            )))
            .map_err(PlotError::at(path))?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RoleStats;

    fn run(policy: &str, samples: usize) -> RunReport {
        RunReport {
            scenario: "mixed".into(),
            policy: policy.into(),
            p99_ms: 2.5,
            roles: vec![RoleStats {
                role: "todo_server".into(),
                peak_depth: 17,
                ..RoleStats::default()
            }],
            series: (0..samples)
                .map(|i| Sample {
                    t_ms: i as f64,
                    depth: i,
                    p99_ms: 1.0,
                })
                .collect(),
            ..RunReport::default()
        }
    }

    fn plots(runs: &[RunReport]) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        write_plots(dir.path(), "mixed", runs).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        (read("mixed-depth.svg"), read("mixed-latency.svg"))
    }

    #[test]
    fn runs_with_enough_samples_are_lines_that_say_how_many() {
        let (depth, latency) = plots(&[run("book", 51), run("coalesce", 60)]);
        for svg in [&depth, &latency] {
            assert!(svg.contains("Time series"), "{svg}");
            assert!(svg.contains("51 to 60 samples per run"), "{svg}");
            assert!(svg.contains("book (51 samples)"), "{svg}");
            assert!(!svg.contains("Bar chart"), "{svg}");
        }
    }

    #[test]
    fn a_run_too_short_for_a_line_turns_the_plot_into_bars_of_totals() {
        let (depth, latency) = plots(&[run("book", 51), run("coalesce", 3)]);
        for svg in [&depth, &latency] {
            assert!(
                svg.contains("Bar chart of run totals, not a time series"),
                "{svg}"
            );
            assert!(svg.contains("fewer than 20 samples (coalesce: 3)"), "{svg}");
            assert!(!svg.contains("Time series"), "{svg}");
            assert_eq!(
                svg.matches("<rect").count() - 1,
                2,
                "a bar per run (and the background)"
            );
        }
        // The bars are the runs' totals: the largest mailbox peak and the run's p99.
        assert!(depth.contains("\n17\n"), "{depth}");
        assert!(latency.contains("\n2.500\n"), "{latency}");
    }

    #[test]
    fn runs_without_samples_say_so_in_words() {
        let (depth, _) = plots(&[run("book", 0), run("coalesce", 0)]);
        assert!(depth.contains("No samples"), "{depth}");
    }
}
