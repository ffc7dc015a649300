//! The Grafana dashboard (`dashboards/sluicegate.json`): its queries, and the metric
//! and label names a PromQL expression refers to.

use super::serve::repo_file;

/// One query of the Grafana dashboard.
#[derive(Clone, Debug)]
pub struct DashboardQuery {
    /// The panel's title.
    pub panel: String,
    /// The PromQL expression.
    pub expr: String,
    /// The legend template, e.g. `{{mailbox}} {{outcome}}`.
    pub legend: Option<String>,
}

/// Every target of every panel (rows included) of `dashboards/sluicegate.json`.
pub fn dashboard_queries() -> Vec<DashboardQuery> {
    let text = std::fs::read_to_string(repo_file("dashboards/sluicegate.json"))
        .expect("read dashboards/sluicegate.json");
    let json: serde_json::Value =
        serde_json::from_str(&text).expect("dashboards/sluicegate.json is JSON");
    let mut out = Vec::new();
    fn walk(panels: &serde_json::Value, out: &mut Vec<DashboardQuery>) {
        for p in panels.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(DashboardQuery {
                        panel: p["title"].as_str().unwrap_or("?").to_string(),
                        expr: expr.to_string(),
                        legend: t["legendFormat"].as_str().map(str::to_string),
                    });
                }
            }
        }
    }
    walk(&json["panels"], &mut out);
    out
}

/// What a PromQL expression refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromqlRefs {
    /// Metric (series) names, suffixes such as `_bucket` kept.
    pub metrics: std::collections::BTreeSet<String>,
    /// Label names in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`.
    pub grouping: std::collections::BTreeSet<String>,
    /// Label names in `{...}` matchers.
    pub matchers: std::collections::BTreeSet<String>,
}

/// Picks metric and label names out of a PromQL expression: identifiers followed by
/// `(` are functions or aggregations, `{...}` holds matchers, `[...]` ranges, strings
/// are skipped, and the lists after `by`/`without`/`on`/`ignoring` are label names.
pub fn promql_refs(expr: &str) -> PromqlRefs {
    const KEYWORDS: [&str; 8] = [
        "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const AGGREGATIONS: [&str; 14] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut refs = PromqlRefs::default();
    let mut i = 0;
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            skip_string(&mut i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                if ident_start(chars[i]) {
                    let start = i;
                    while i < chars.len() && ident_char(chars[i]) {
                        i += 1;
                    }
                    refs.matchers.insert(chars[start..i].iter().collect());
                } else if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
                    skip_string(&mut i);
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let call = j < chars.len() && chars[j] == '(';
            if GROUPING.contains(&word.as_str()) {
                if call {
                    i = j + 1;
                    while i < chars.len() && chars[i] != ')' {
                        if ident_start(chars[i]) {
                            let s = i;
                            while i < chars.len() && ident_char(chars[i]) {
                                i += 1;
                            }
                            refs.grouping.insert(chars[s..i].iter().collect());
                        } else {
                            i += 1;
                        }
                    }
                    i += 1;
                }
            } else if AGGREGATIONS.contains(&word.as_str()) {
                // `sum by (x) (...)`: an aggregation whose grouping comes first.
            } else if !call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                refs.metrics.insert(word);
            }
        } else {
            i += 1;
        }
    }
    refs
}
