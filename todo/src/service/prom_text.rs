//! Reading the Prometheus text format the recorder renders, for the dashboard's
//! sampler: series by metric name with their labels ([`Snapshot`]), sums over label
//! matches, histogram buckets, and a quantile from the difference of two bucket sets.
//! Public so that the tests read `/metrics` with this same parser ([`parse_line`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// One series of the Prometheus text: its labels and value.
#[derive(Clone, Debug)]
pub struct Point {
    /// The labels, by name, their values unescaped.
    pub labels: BTreeMap<String, String>,
    /// The sample's value (`+Inf` and `-Inf` as infinities).
    pub value: f64,
}

/// One read of the recorder: series by metric name, and when it was taken.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When the text was read.
    pub at: Instant,
    /// Every sample, by series name (a histogram's `_bucket`, `_sum` and `_count`
    /// series under those names), in the order of the text.
    pub series: BTreeMap<String, Vec<Point>>,
}

impl Snapshot {
    /// Sum of the series named `name` whose labels include every `(key, value)` of `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.series
            .get(name)
            .map(|points| {
                points
                    .iter()
                    .filter(|p| matches(p, with))
                    .map(|p| p.value)
                    .sum()
            })
            .unwrap_or(0.0)
    }

    /// The distinct values of `label` among the series named `name`.
    pub fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.series
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|p| p.labels.get(label).cloned())
            .collect()
    }

    /// Cumulative bucket counts (by upper bound) of histogram `name`, summed over the
    /// series matching `with`.
    pub fn buckets(&self, name: &str, with: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for p in self
            .series
            .get(&format!("{name}_bucket"))
            .into_iter()
            .flatten()
            .filter(|p| matches(p, with))
        {
            let Some(le) = p.labels.get("le").and_then(|v| parse_value(v)) else {
                continue;
            };
            // Bounds are positive, so ordering their bit patterns orders the numbers.
            let e = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += p.value;
        }
        by_le.into_values().collect()
    }
}

/// Whether the labels of `p` include every `(key, value)` of `with`.
pub fn matches(p: &Point, with: &[(&str, &str)]) -> bool {
    with.iter()
        .all(|(k, v)| p.labels.get(*k).map(String::as_str) == Some(*v))
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        v => v.parse().ok(),
    }
}

/// Parses Prometheus text exposition (as `PrometheusHandle::render` writes it);
/// comments (`# HELP`, `# TYPE`) and lines that are not a sample are skipped.
pub fn parse(text: &str, at: Instant) -> Snapshot {
    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, point)) = parse_line(line) {
            series.entry(name).or_default().push(point);
        }
    }
    Snapshot { at, series }
}

/// One sample line, `name{key="value",...} value`, as its series name and point;
/// `None` when the line is not a sample (a comment, a blank line, a malformed one).
pub fn parse_line(line: &str) -> Option<(String, Point)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            s = s.trim_start_matches([',', ' ']);
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find('=')?;
            let key = s[..eq].trim().to_string();
            s = s[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = s.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => {
                        let (_, e) = chars.next()?;
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                    '"' => break i,
                    c => value.push(c),
                }
            };
            s = &s[end + 1..];
            labels.insert(key, value);
        }
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some((name, Point { labels, value }))
}

/// The `p` quantile (0..1) of the observations between two cumulative bucket lists,
/// interpolated linearly inside the bucket as Prometheus' `histogram_quantile` does;
/// `None` when nothing was observed. Above the highest finite bound it answers that bound.
pub fn quantile(old: &[(f64, f64)], new: &[(f64, f64)], p: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = new
        .iter()
        .map(|(le, n)| {
            let before = old.iter().find(|(l, _)| l == le).map_or(0.0, |(_, c)| *c);
            (*le, (n - before).max(0.0))
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = p * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for (le, cum) in &delta {
        if *cum >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let in_bucket = cum - below;
            let frac = if in_bucket > 0.0 {
                (rank - below) / in_bucket
            } else {
                1.0
            };
            return Some(lower + (le - lower) * frac);
        }
        lower = *le;
        below = *cum;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_inside_the_bucket_of_the_rank() {
        let old = [(0.1, 0.0), (1.0, 0.0), (f64::INFINITY, 0.0)];
        let new = [(0.1, 50.0), (1.0, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(&old, &new, 0.5), Some(0.1));
        let p75 = quantile(&old, &new, 0.75).unwrap();
        assert!((p75 - 0.55).abs() < 1e-9, "{p75}");
        assert_eq!(
            quantile(&new, &new, 0.5),
            None,
            "no observations in the window"
        );
    }

    #[test]
    fn parses_labels_and_sums_matching_series() {
        let text = "# TYPE x counter\nx{a=\"1\",b=\"q\\\"\"} 3\nx{a=\"2\"} 4\ny 1.5\n";
        let s = parse(text, Instant::now());
        assert_eq!(s.sum("x", &[]), 7.0);
        assert_eq!(s.sum("x", &[("b", "q\"")]), 3.0);
        assert_eq!(s.sum("y", &[]), 1.5);
    }
}
