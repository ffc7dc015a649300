//! Reading `/metrics`: samples and `# TYPE` lines, each sample line read by the
//! service's own parser ([`prom_text::parse_line`]), strictly (a line it cannot read
//! fails the test).

use std::collections::BTreeMap;

use sluicegate_todo::service::prom_text;

/// One sample of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Series name (with any `_bucket`/`_sum`/`_count` suffix).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses Prometheus text exposition into samples, and `# TYPE` lines into a map
/// from family name to type. Each sample line is read by the service's own parser
/// ([`prom_text::parse_line`]); a line it cannot read fails the test.
pub fn parse_metrics(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, prom_text::Point { labels, value }) =
            prom_text::parse_line(line).unwrap_or_else(|| panic!("bad sample line {line:?}"));
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (samples, types)
}

/// The samples named `name` whose labels include every `(key, value)` of `with`.
pub fn find<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The text of one `GET url` (a service's `/metrics`), failing the test if the
/// request fails.
pub async fn scrape(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}
