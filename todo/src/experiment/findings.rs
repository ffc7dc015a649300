//! Findings: the chapter's questions answered in plain words from a run's numbers,
//! one [`Finding`] per scenario, opening `report.html` and each scenario's Markdown.
//!
//! Every figure in a sentence is computed from the [`RunReport`]s (nothing is
//! hard-coded), and a sentence claims no more than the figures show: two figures
//! within [`ABOUT_EQUAL`] of each other are "about the same", a comparison names
//! its figures, and a finding about something a run did not measure is left out.

use std::collections::BTreeMap;

use super::report::RunReport;
use super::scenario::Scenario;

/// Two figures differing by at most this share of the larger are called about equal.
pub const ABOUT_EQUAL: f64 = 0.05;

/// What one scenario's runs answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The scenario.
    pub scenario: Scenario,
    /// The chapter's question the scenario asks.
    pub question: &'static str,
    /// The answer, one or two sentences (each ending with a full stop).
    pub sentences: Vec<String>,
}

impl Finding {
    /// The sentences as one paragraph.
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
}

/// The findings of every scenario that ran, in order.
pub fn findings(all: &[(Scenario, Vec<RunReport>)]) -> Vec<Finding> {
    all.iter().map(|(s, runs)| finding(*s, runs)).collect()
}

/// The question `scenario` asks.
pub fn question(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Mixed => "How do the policies serve ordinary traffic (mostly writes, many lists)?",
        Scenario::Overload => "What does a process do when its queue is full?",
        Scenario::SlowDisk => {
            "When storage is slower than the writers, where does the work wait: in queues or in the callers (backpressure)?"
        }
        Scenario::Bottleneck => {
            "Is one database process the bottleneck, does a pool of workers help, and does routing every request through one process undo it?"
        }
        Scenario::Crash => "How many acknowledged writes does a kill -9 lose?",
        Scenario::Poison => "Does a process that keeps crashing take the others down (supervised restarts)?",
        Scenario::Cold => "What does the first request to a new list cost while the database is backlogged?",
        Scenario::Soak => "Does memory stay flat when overload goes on and on?",
    }
}

/// The finding of one scenario from its runs.
pub fn finding(scenario: Scenario, runs: &[RunReport]) -> Finding {
    let sentences = if runs.is_empty() {
        vec!["No run finished.".to_string()]
    } else {
        match scenario {
            Scenario::Mixed => mixed(runs),
            Scenario::Overload => overload(runs),
            Scenario::SlowDisk => slow_disk(runs),
            Scenario::Bottleneck => bottleneck(runs),
            Scenario::Crash => crash(runs),
            Scenario::Poison => poison(runs),
            Scenario::Cold => cold(runs),
            Scenario::Soak => soak(runs),
        }
    };
    Finding {
        scenario,
        question: question(scenario),
        sentences: sentences.into_iter().map(sentence).collect(),
    }
}

// ---- formatting -------------------------------------------------------------

/// Capitalised, with a full stop.
fn sentence(s: String) -> String {
    let mut c = s.chars();
    let mut out = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>(),
        None => return s,
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// A whole number with thousands separators: `12,345`.
fn int(x: f64) -> String {
    let n = x.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Milliseconds, three significant figures or so: `0.042 ms`, `8.97 ms`, `106 ms`.
fn ms(x: f64) -> String {
    let digits = match x.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    format!("{x:.digits$} ms")
}

fn rate(x: f64) -> String {
    format!("{} ops/s", int(x))
}

fn mib(x: f64) -> String {
    format!("{x:.1} MiB")
}

/// `part` as a share of `whole`: `30 %`, `0.4 %`.
fn pct(part: f64, whole: f64) -> String {
    if whole <= 0.0 {
        return "n/a".into();
    }
    let p = 100.0 * part / whole;
    if p > 0.0 && p < 1.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// Whether `a` and `b` are within [`ABOUT_EQUAL`] of the larger.
pub fn about_equal(a: f64, b: f64) -> bool {
    (a - b).abs() <= ABOUT_EQUAL * a.abs().max(b.abs())
}

/// How `v` compares with the best figure `best`: `+35 %`, `12×`, `-20 %`.
fn versus(v: f64, best: f64) -> String {
    if best <= 0.0 {
        return String::new();
    }
    let r = v / best;
    if r >= 10.0 {
        format!("{r:.0}×")
    } else if r >= 2.0 {
        format!("{r:.1}×")
    } else if (r - 1.0).abs() < 0.095 {
        // One decimal below 10 %: a figure just outside [`ABOUT_EQUAL`] shows as
        // `+5.3 %`, never as a rounded `+5 %` that would read as about equal.
        format!("{:+.1} %", (r - 1.0) * 100.0)
    } else {
        format!("{:+.0} %", (r - 1.0) * 100.0)
    }
}

/// Whether less or more of a figure is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Lower,
    Higher,
}

/// A figure compared across runs.
struct Metric {
    /// E.g. `p99 latency`.
    what: &'static str,
    better: Better,
    get: fn(&RunReport) -> f64,
    show: fn(f64) -> String,
}

/// The runs compared on `m`, in words: the best (and any about equal to it), then the others
/// with how far off they are; or that they were all about the same.
fn compare(runs: &[&RunReport], label: fn(&RunReport) -> String, m: &Metric) -> String {
    let mut ranked: Vec<(String, f64)> = runs.iter().map(|r| (label(r), (m.get)(r))).collect();
    ranked.sort_by(|a, b| {
        let o = a.1.total_cmp(&b.1);
        if m.better == Better::Lower {
            o
        } else {
            o.reverse()
        }
    });
    let shown = |items: &[(String, f64)]| -> Vec<String> {
        items
            .iter()
            .map(|(l, v)| format!("{l} {}", (m.show)(*v)))
            .collect()
    };
    let Some(&(_, best)) = ranked.first() else {
        return String::new();
    };
    if ranked.len() == 1 {
        return format!("{} was {}", m.what, shown(&ranked)[0]);
    }
    let tied = ranked
        .iter()
        .take_while(|(_, v)| about_equal(*v, best))
        .count();
    if tied == ranked.len() {
        let values = if ranked.len() <= 3 {
            list(&shown(&ranked))
        } else {
            let lo = ranked.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
            let hi = ranked.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
            format!("{} to {}", (m.show)(lo), (m.show)(hi))
        };
        return format!(
            "{} was about the same under {} ({values}; within {:.0} %)",
            m.what,
            if ranked.len() == 2 {
                "both"
            } else {
                "every policy"
            },
            ABOUT_EQUAL * 100.0
        );
    }
    let (word, worst_word) = if m.better == Better::Lower {
        ("lowest", "highest")
    } else {
        ("highest", "lowest")
    };
    let (top, rest) = ranked.split_at(tied);
    let top_text = if top.len() == 1 {
        format!("{} ({})", top[0].0, (m.show)(top[0].1))
    } else {
        format!(
            "{} (about equal: {})",
            list(&top.iter().map(|t| t.0.clone()).collect::<Vec<_>>()),
            list(&top.iter().map(|t| (m.show)(t.1)).collect::<Vec<_>>())
        )
    };
    let other = |(l, v): &(String, f64)| {
        let d = versus(*v, best);
        if d.is_empty() {
            format!("{l} {}", (m.show)(*v))
        } else {
            format!("{l} {} ({d})", (m.show)(*v))
        }
    };
    let others = match rest {
        [.., (l, v)] if rest.len() > 2 => format!(
            "{worst_word} under {l} ({}, {}), the other {} in between",
            (m.show)(*v),
            versus(*v, best),
            rest.len() - 1
        ),
        _ => rest.iter().map(other).collect::<Vec<_>>().join(", "),
    };
    format!("{} was {word} under {top_text}; {others}", m.what)
}

/// `between 33 (coalesce) and 153 (drop-newest)`: the smallest and largest of `items`.
fn range(items: &[(String, f64)], show: impl Fn(f64) -> String) -> String {
    let lo = items.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let hi = items.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo.1 == hi.1 => format!("{} under each", show(lo.1)),
        (Some(lo), Some(hi)) => format!(
            "between {} ({}) and {} ({})",
            show(lo.1),
            lo.0,
            show(hi.1),
            hi.0
        ),
        _ => String::new(),
    }
}

/// `0.012 ms to 0.056 ms`: the smallest and largest of `items`, unnamed.
fn span(items: &[(String, f64)], show: impl Fn(f64) -> String) -> String {
    let lo = items.iter().map(|i| i.1).fold(f64::INFINITY, f64::min);
    let hi = items.iter().map(|i| i.1).fold(f64::NEG_INFINITY, f64::max);
    if lo == hi {
        show(lo)
    } else {
        format!("{} to {}", show(lo), show(hi))
    }
}

/// The same figure of several runs: one per run (`92 and 108 messages respectively`)
/// for up to three runs, else their [`range`].
fn each_or_range(items: &[(String, f64)], show: impl Fn(f64) -> String, unit: &str) -> String {
    match items {
        [(_, v)] => format!("{}{unit}", show(*v)),
        _ if items.len() <= 3 => format!(
            "{}{unit} respectively",
            list(&items.iter().map(|(_, v)| show(*v)).collect::<Vec<_>>())
        ),
        _ => format!("{}{unit}", range(items, show)),
    }
}

fn policy(r: &RunReport) -> String {
    r.policy.clone()
}

/// `book (ack none)`, or just the policy if the ack mode was not recorded.
fn policy_ack(r: &RunReport) -> String {
    if r.ack.is_empty() {
        r.policy.clone()
    } else {
        format!("{} (ack {})", r.policy, r.ack)
    }
}

const THROUGHPUT: Metric = Metric {
    what: "throughput",
    better: Better::Higher,
    get: RunReport::completed_per_s,
    show: rate,
};

const P99: Metric = Metric {
    what: "p99 latency",
    better: Better::Lower,
    get: |r| r.p99_ms,
    show: ms,
};

fn errors(r: &RunReport) -> u64 {
    r.errors.values().sum()
}

/// Messages the mailboxes refused, dropped, shed, expired or timed out, all roles.
fn dropped(r: &RunReport) -> u64 {
    ["todo_server", "database_worker", "database"]
        .iter()
        .map(|role| r.lost_in_mailboxes(role))
        .sum()
}

/// The most messages queued at once in one mailbox of any role.
fn peak(r: &RunReport) -> u64 {
    r.roles
        .iter()
        .map(|s| s.peak_depth as u64)
        .max()
        .unwrap_or(0)
}

/// The database's largest queue (workers or router).
fn db_peak(r: &RunReport) -> f64 {
    r.roles
        .iter()
        .filter(|s| s.role != "todo_server")
        .map(|s| s.peak_depth)
        .max()
        .unwrap_or(0) as f64
}

/// What went wrong in a run, as a clause (`12 errors, 3 acknowledged writes lost after
/// restart`), or `None` if nothing did.
fn trouble(r: &RunReport) -> Option<String> {
    let mut parts = Vec::new();
    if errors(r) > 0 {
        parts.push(format!(
            "{} of {} operations failed",
            int(errors(r) as f64),
            int(r.offered as f64)
        ));
    }
    if r.lost_after_restart > 0 {
        parts.push(format!(
            "{} of {} acknowledged writes were lost after the restart",
            int(r.lost_after_restart as f64),
            int(r.acked as f64)
        ));
    }
    if r.ryw_violations > 0 {
        parts.push(format!(
            "{} reads missed the reader's own acknowledged write",
            int(r.ryw_violations as f64)
        ));
    }
    (!parts.is_empty()).then(|| format!("under {}, {}", r.policy, list(&parts)))
}

/// Troubles of every run, or that there were none.
fn troubles(runs: &[RunReport]) -> String {
    let t: Vec<String> = runs.iter().filter_map(trouble).collect();
    if t.is_empty() {
        "no run had an error, lost an acknowledged write after the restart, or missed a reader's own write"
            .into()
    } else {
        t.join("; ")
    }
}

fn refs(runs: &[RunReport]) -> Vec<&RunReport> {
    runs.iter().collect()
}

// ---- scenarios --------------------------------------------------------------

/// `under book, coalesce and codel`, or `under every policy` when that is all of them.
fn under(names: &[String], of: usize) -> String {
    if names.len() == of && of > 2 {
        "under every policy".into()
    } else {
        format!("under {}", list(names))
    }
}

fn mixed(runs: &[RunReport]) -> Vec<String> {
    let all = refs(runs);
    vec![
        format!(
            "{}, and {}",
            compare(&all, policy, &THROUGHPUT),
            compare(&all, policy, &P99)
        ),
        troubles(runs),
    ]
}

fn overload(runs: &[RunReport]) -> Vec<String> {
    let all = refs(runs);
    let (kept, other): (Vec<&RunReport>, Vec<&RunReport>) = runs
        .iter()
        .partition(|r| errors(r) == 0 && dropped(r) == 0 && r.lost_after_restart == 0);
    let mut fate = Vec::new();
    if !kept.is_empty() {
        let names: Vec<String> = kept.iter().map(|r| r.policy.clone()).collect();
        let peaks: Vec<(String, f64)> = kept
            .iter()
            .map(|r| (r.policy.clone(), peak(r) as f64))
            .collect();
        let waiting: Vec<(String, f64)> = kept
            .iter()
            .map(|r| (r.policy.clone(), r.lost_at_end as f64))
            .collect();
        fate.push(format!(
            "{} nothing was refused or dropped and no acknowledged write was lost; the largest \
             mailbox queue reached {}, and {} were not yet stored when the workload ended",
            under(&names, runs.len()),
            each_or_range(&peaks, int, " messages"),
            each_or_range(&waiting, int, " acknowledged writes"),
        ));
    }
    for r in other {
        let mut parts = Vec::new();
        if errors(r) > 0 {
            parts.push(format!(
                "{} of {} operations ({}) were refused or failed",
                int(errors(r) as f64),
                int(r.offered as f64),
                pct(errors(r) as f64, r.offered as f64)
            ));
        }
        if dropped(r) > 0 {
            parts.push(format!(
                "its mailboxes refused or dropped {} messages",
                int(dropped(r) as f64)
            ));
        }
        parts.push(if r.lost_after_restart > 0 {
            format!(
                "{} of {} acknowledged writes were lost",
                int(r.lost_after_restart as f64),
                int(r.acked as f64)
            )
        } else {
            format!(
                "none of {} acknowledged writes was lost",
                int(r.acked as f64)
            )
        });
        fate.push(format!("under {} {}", r.policy, list(&parts)));
    }
    vec![
        format!("under write-only overload, {}", compare(&all, policy, &P99)),
        fate.join("; "),
    ]
}

fn slow_disk(runs: &[RunReport]) -> Vec<String> {
    let all = refs(runs);
    let db = Metric {
        what: "the database's largest queue",
        better: Better::Lower,
        get: db_peak,
        show: |v| format!("{} messages", int(v)),
    };
    let reached: Vec<(String, f64)> = runs
        .iter()
        .filter_map(|r| r.durable_after_ms.map(|t| (r.policy.clone(), t)))
        .collect();
    let never: Vec<String> = runs
        .iter()
        .filter(|r| r.durable_after_ms.is_none())
        .map(|r| r.policy.clone())
        .collect();
    let mut durable = Vec::new();
    if !reached.is_empty() {
        let names: Vec<String> = reached.iter().map(|(p, _)| p.clone()).collect();
        durable.push(if reached.iter().all(|(_, t)| *t < 1.0) {
            format!(
                "{} every acknowledged write was in storage within 1 ms of the workload's end",
                under(&names, runs.len())
            )
        } else {
            format!(
                "{} every acknowledged write was in storage {} after the workload's end",
                under(&names, runs.len()),
                each_or_range(&reached, ms, "")
            )
        });
    }
    if !never.is_empty() {
        durable.push(format!(
            "under {} not every acknowledged write was stored within the limit",
            list(&never)
        ));
    }
    vec![
        format!(
            "with every store slowed down, {}; {}",
            compare(&all, policy, &db),
            durable.join(", and ")
        ),
        format!(
            "callers waited: {}, and {}; {}",
            compare(&all, policy, &P99),
            compare(&all, policy, &THROUGHPUT),
            troubles(runs)
        ),
    ]
}

/// `book/3-direct` → (`book`, `3-direct`).
fn variant(label: &str) -> (&str, &str) {
    label.rsplit_once('/').unwrap_or((label, ""))
}

/// Two figures of one policy compared: `12,000 vs 6,500 ops/s (+85 %)`, or about equal.
fn pair(a: f64, b: f64) -> String {
    if about_equal(a, b) {
        format!("about equal ({} vs {} ops/s)", int(a), int(b))
    } else {
        format!("{} vs {} ops/s ({})", int(a), int(b), versus(a, b))
    }
}

/// Throughput of variant `a` against variant `b` for every policy: one clause per
/// policy for up to two policies, else the range of the ratio and who was about equal.
fn pairs(
    by: &[(&str, BTreeMap<&str, &RunReport>)],
    a: &str,
    b: &str,
    what: &str,
) -> Option<String> {
    let found: Vec<(&str, f64, f64)> = by
        .iter()
        .filter_map(|(base, v)| {
            Some((
                *base,
                v.get(a)?.completed_per_s(),
                v.get(b)?.completed_per_s(),
            ))
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    if found.len() <= 2 {
        let each: Vec<String> = found
            .iter()
            .map(|(base, x, y)| format!("{base} {}", pair(*x, *y)))
            .collect();
        return Some(each.join("; "));
    }
    let ratios: Vec<(String, f64)> = found
        .iter()
        .map(|(base, x, y)| (base.to_string(), x / y.max(1e-9)))
        .collect();
    let equal: Vec<String> = found
        .iter()
        .filter(|(_, x, y)| about_equal(*x, *y))
        .map(|(base, ..)| base.to_string())
        .collect();
    let ratio = |r: f64| versus(r, 1.0);
    let mut text = format!("{what} {}", range(&ratios, ratio));
    if equal.len() == found.len() {
        text.push_str(", about equal under every policy");
    } else if !equal.is_empty() {
        text.push_str(&format!(", about equal under {}", list(&equal)));
    }
    Some(text)
}

fn bottleneck(runs: &[RunReport]) -> Vec<String> {
    let mut by: Vec<(&str, BTreeMap<&str, &RunReport>)> = Vec::new();
    for r in runs {
        let (base, v) = variant(&r.policy);
        match by.iter_mut().find(|(b, _)| *b == base) {
            Some((_, m)) => {
                m.insert(v, r);
            }
            None => by.push((base, BTreeMap::from([(v, r)]))),
        }
    }
    let router: Vec<(String, f64)> = by
        .iter()
        .filter_map(|(base, v)| {
            let s = v.get("3-routed")?.role("database")?;
            Some((base.to_string(), s.peak_depth as f64))
        })
        .collect();
    let mut out = Vec::new();
    if let Some(direct) = pairs(&by, "3-direct", "3-routed", "direct vs routed throughput") {
        let queue = if router.is_empty() {
            String::new()
        } else {
            format!(
                " (the router's queue peaked at {})",
                each_or_range(&router, int, " messages")
            )
        };
        out.push(format!(
            "three workers addressed directly vs through the one router process{queue}: {direct}"
        ));
    }
    if let Some(pool) = pairs(&by, "3-routed", "1-routed", "throughput") {
        out.push(format!("three routed workers vs one: {pool}"));
    }
    if out.is_empty() {
        out.push(compare(&refs(runs), policy, &THROUGHPUT));
    }
    out
}

fn crash(runs: &[RunReport]) -> Vec<String> {
    let kills: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.extra.get("killed_after_ms").copied())
        .collect();
    let when = match kills.as_slice() {
        [] => String::new(),
        [first, ..] if kills.iter().all(|k| k == first) => {
            format!(" {} into the run", ms(*first))
        }
        _ => " (at a different moment per policy; see killed_after_ms)".into(),
    };
    let lost: Vec<String> = runs
        .iter()
        .map(|r| {
            if r.lost_after_restart == 0 {
                format!("{} none of {}", policy_ack(r), int(r.acked as f64))
            } else {
                format!(
                    "{} {} of {} ({})",
                    policy_ack(r),
                    int(r.lost_after_restart as f64),
                    int(r.acked as f64),
                    pct(r.lost_after_restart as f64, r.acked as f64)
                )
            }
        })
        .collect();
    let safe: Vec<String> = runs
        .iter()
        .filter(|r| r.lost_after_restart == 0)
        .map(|r| r.policy.clone())
        .collect();
    let unreadable: Vec<String> = runs
        .iter()
        .filter(|r| r.unreadable_lists > 0)
        .map(|r| format!("{} under {}", int(r.unreadable_lists as f64), r.policy))
        .collect();
    let read_back = if unreadable.is_empty() {
        "every list read back after the restart".to_string()
    } else {
        format!(
            "lists that could not be read back after the restart: {}",
            list(&unreadable)
        )
    };
    let second = match safe.len() {
        0 if runs.len() > 1 => format!("every policy lost acknowledged writes; {read_back}"),
        0 => read_back,
        n if n == runs.len() => {
            format!("no acknowledged write was lost; {read_back}")
        }
        _ => format!("only {} lost nothing; {read_back}", list(&safe)),
    };
    vec![
        format!(
            "after a SIGKILL{when} and a restart, acknowledged writes lost: {}",
            lost.join("; ")
        ),
        second,
    ]
}

fn poison(runs: &[RunReport]) -> Vec<String> {
    let panics: Vec<f64> = runs
        .iter()
        .map(|r| r.extra.get("poison_panics").copied().unwrap_or(0.0))
        .collect();
    let names: Vec<String> = runs.iter().map(|r| r.policy.clone()).collect();
    let first = match panics.as_slice() {
        [p, ..] if panics.iter().all(|x| x == p) && *p >= 1.0 => format!(
            "{} the `poison` list's server was made to panic {} times, and each panic request \
             found a server running, so its supervisor restarted it at least {} times",
            under(&names, runs.len()),
            int(*p),
            int(*p - 1.0)
        ),
        [p, ..] if panics.iter().all(|x| x == p) => "no panic was injected".to_string(),
        _ => {
            let each: Vec<String> = runs
                .iter()
                .zip(&panics)
                .map(|(r, p)| {
                    format!(
                        "{} {} panics (at least {} restarts)",
                        r.policy,
                        int(*p),
                        int((p - 1.0).max(0.0))
                    )
                })
                .collect();
            format!(
                "the `poison` list's server was made to panic, each panic request finding a \
                 server running: {}",
                list(&each)
            )
        }
    };
    // What the rest did, without the policy's name, so equal runs read once.
    let rest = |r: &RunReport| {
        let hostile = match (
            r.extra.get("hostile_writes_ok"),
            r.extra.get("hostile_writes_failed"),
        ) {
            (Some(ok), Some(failed)) => format!(
                ", and {} of {} durable writes to hostile list names were stored",
                int(*ok),
                int(ok + failed)
            ),
            _ => String::new(),
        };
        format!(
            "completed {} of {} operations and lost {} of {} acknowledged writes{hostile}",
            int(r.completed as f64),
            int(r.offered as f64),
            int(r.lost_after_restart as f64),
            int(r.acked as f64)
        )
    };
    let texts: Vec<String> = runs.iter().map(rest).collect();
    let second = if texts.iter().all(|t| *t == texts[0]) {
        format!(
            "meanwhile the other lists' traffic {} {}",
            under(&names, runs.len()),
            texts[0]
        )
    } else {
        let each: Vec<String> = runs
            .iter()
            .zip(&texts)
            .map(|(r, t)| format!("under {} it {t}", r.policy))
            .collect();
        format!("meanwhile the other lists' traffic: {}", each.join("; "))
    };
    vec![first, second]
}

fn cold(runs: &[RunReport]) -> Vec<String> {
    let measured: Vec<&RunReport> = runs
        .iter()
        .filter(|r| {
            r.extra.contains_key("new_list_first_request_ms")
                && r.extra.contains_key("existing_list_read_ms")
        })
        .collect();
    if measured.is_empty() {
        return vec!["the first-touch figures were not recorded".into()];
    }
    let get = |r: &RunReport, k: &str| r.extra.get(k).copied().unwrap_or(0.0);
    let failed: Vec<String> = measured
        .iter()
        .filter(|r| r.extra.get("new_list_ok") == Some(&0.0))
        .map(|r| r.policy.clone())
        .collect();
    let failed_text = if failed.is_empty() {
        String::new()
    } else {
        format!(" (it failed under {})", list(&failed))
    };
    let first = if measured.len() <= 2 {
        let each: Vec<String> = measured
            .iter()
            .map(|r| {
                let (first, read) = (
                    get(r, "new_list_first_request_ms"),
                    get(r, "existing_list_read_ms"),
                );
                let backlog = r
                    .extra
                    .get("db_backlog_at_probe")
                    .map(|b| format!(" with {} database messages queued", int(*b)))
                    .unwrap_or_default();
                let cmp = if about_equal(first, read) {
                    "about the same".to_string()
                } else {
                    versus(first, read)
                };
                format!(
                    "under {}{backlog}, the first request to a new list took {} and a read of \
                     an existing list {} ({cmp})",
                    r.policy,
                    ms(first),
                    ms(read)
                )
            })
            .collect();
        format!("{}{failed_text}", each.join("; "))
    } else {
        let of = |k: &str| -> Vec<(String, f64)> {
            measured
                .iter()
                .map(|r| (r.policy.clone(), get(r, k)))
                .collect()
        };
        let times: Vec<(String, f64)> = measured
            .iter()
            .map(|r| {
                let (first, read) = (
                    get(r, "new_list_first_request_ms"),
                    get(r, "existing_list_read_ms"),
                );
                (r.policy.clone(), first / read.max(1e-9))
            })
            .collect();
        format!(
            "with {} database messages queued, the first request to a new list took \
             {}{failed_text}: {} as long as a read of an existing list ({})",
            range(&of("db_backlog_at_probe"), int),
            range(&of("new_list_first_request_ms"), ms),
            range(&times, |x| format!("{x:.0}×")),
            span(&of("existing_list_read_ms"), ms)
        )
    };
    let mut out = vec![first];
    if measured.len() > 1 {
        let cost = Metric {
            what: "the first request's latency",
            better: Better::Lower,
            get: |r| {
                r.extra
                    .get("new_list_first_request_ms")
                    .copied()
                    .unwrap_or(0.0)
            },
            show: ms,
        };
        out.push(compare(&measured, policy, &cost));
    }
    out
}

fn soak(runs: &[RunReport]) -> Vec<String> {
    let mut flat = Vec::new();
    let mut changed = Vec::new();
    for r in runs {
        let (Some(start), Some(end)) = (
            r.extra.get("rss_first_minute_mib").copied(),
            r.extra.get("rss_at_end_mib").copied(),
        ) else {
            continue;
        };
        let rounds = int(r.extra.get("rounds").copied().unwrap_or(0.0));
        if about_equal(start, end) {
            flat.push(format!(
                "{} ({} → {}, {rounds} rounds)",
                r.policy,
                mib(start),
                mib(end)
            ));
        } else {
            let how = if end > start { "grew" } else { "fell" };
            changed.push(format!(
                "under {} it {how} from {} to {} ({}) over {rounds} rounds",
                r.policy,
                mib(start),
                mib(end),
                versus(end, start)
            ));
        }
    }
    let mut out = Vec::new();
    if !flat.is_empty() {
        out.push(format!(
            "resident memory stayed flat (at the end within {:.0} % of its peak in the first \
             minute) under {}",
            ABOUT_EQUAL * 100.0,
            list(&flat)
        ));
    }
    if !changed.is_empty() {
        out.push(format!(
            "resident memory did not stay flat: {}",
            changed.join("; ")
        ));
    }
    if out.is_empty() {
        out.push("memory over time was not recorded".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RoleStats;

    fn run(policy: &str, done: u64, p99: f64) -> RunReport {
        RunReport {
            scenario: "x".into(),
            policy: policy.into(),
            offered: done,
            completed: done,
            seconds: 1.0,
            p99_ms: p99,
            acked: done,
            ..RunReport::default()
        }
    }

    fn role(name: &str, peak: usize, outcomes: &[(&str, u64)]) -> RoleStats {
        RoleStats {
            role: name.into(),
            peak_depth: peak,
            outcomes: outcomes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..RoleStats::default()
        }
    }

    #[test]
    fn words_and_numbers_are_formatted_for_reading() {
        assert_eq!(int(1234567.4), "1,234,567");
        assert_eq!(int(999.0), "999");
        assert_eq!(ms(0.0421), "0.042 ms");
        assert_eq!(ms(8.967), "8.97 ms");
        assert_eq!(ms(105.9), "106 ms");
        assert_eq!(pct(3.0, 1000.0), "0.3 %");
        assert_eq!(pct(300.0, 1000.0), "30 %");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
        assert_eq!(versus(150.0, 100.0), "+50 %");
        // Just outside "about equal": one decimal, so it cannot read as 5 %.
        assert!(!about_equal(6.04, 5.73));
        assert_eq!(versus(6.04, 5.73), "+5.4 %");
        assert_eq!(versus(80.0, 100.0), "-20 %");
        assert_eq!(versus(1200.0, 100.0), "12×");
        assert_eq!(sentence("p99 was low".into()), "P99 was low.");
        assert!(about_equal(100.0, 95.0) && !about_equal(100.0, 94.0));
    }

    #[test]
    fn mixed_names_the_faster_policy_with_its_numbers() {
        let f = finding(
            Scenario::Mixed,
            &[run("book", 6847, 105.919), run("coalesce", 33500, 8.967)],
        );
        assert_eq!(f.question, question(Scenario::Mixed));
        assert_eq!(
            f.sentences[0],
            "Throughput was highest under coalesce (33,500 ops/s); book 6,847 ops/s (-80 %), \
             and p99 latency was lowest under coalesce (8.97 ms); book 106 ms (12×)."
        );
        assert!(f.sentences[1].starts_with("No run had an error"), "{f:?}");
    }

    #[test]
    fn figures_within_five_percent_are_called_about_the_same() {
        let f = finding(
            Scenario::Mixed,
            &[run("block", 10_000, 2.0), run("codel", 9_700, 2.05)],
        );
        assert!(
            f.sentences[0].starts_with(
                "Throughput was about the same under both (block 10,000 ops/s and codel 9,700 ops/s; within 5 %)"
            ),
            "{f:?}"
        );
        assert!(
            f.sentences[0].contains("p99 latency was about the same"),
            "{f:?}"
        );
        // Three runs, two of them tied for best: both named as best.
        let three = [run("a", 100, 1.0), run("b", 100, 1.03), run("c", 100, 3.0)];
        let text = compare(&refs(&three), policy, &P99);
        assert_eq!(
            text,
            "p99 latency was lowest under a and b (about equal: 1.00 ms and 1.03 ms); c 3.00 ms (3.0×)"
        );
    }

    #[test]
    fn mixed_reports_errors_losses_and_stale_reads() {
        let mut bad = run("drop-oldest", 900, 1.0);
        bad.offered = 1000;
        bad.errors.insert("refused".into(), 100);
        bad.acked = 700;
        bad.lost_after_restart = 7;
        bad.ryw_violations = 2;
        let f = finding(Scenario::Mixed, &[run("book", 1000, 1.0), bad]);
        assert_eq!(
            f.sentences[1],
            "Under drop-oldest, 100 of 1,000 operations failed, 7 of 700 acknowledged writes \
             were lost after the restart and 2 reads missed the reader's own acknowledged write."
        );
    }

    #[test]
    fn overload_says_who_kept_everything_and_who_refused_how_much() {
        let mut book = run("book", 1000, 108.2);
        book.lost_at_end = 40;
        book.roles = vec![role("todo_server", 8, &[]), role("database", 189, &[])];
        let mut drop = run("drop-newest", 700, 4.0);
        drop.offered = 1000;
        drop.acked = 700;
        drop.errors.insert("refused".into(), 300);
        drop.roles = vec![role("todo_server", 64, &[("rejected", 300)])];
        let f = finding(Scenario::Overload, &[book, drop]);
        assert_eq!(f.question, "What does a process do when its queue is full?");
        assert_eq!(
            f.sentences[0],
            "Under write-only overload, p99 latency was lowest under drop-newest (4.00 ms); \
             book 108 ms (27×)."
        );
        assert_eq!(
            f.sentences[1],
            "Under book nothing was refused or dropped and no acknowledged write was lost; the \
             largest mailbox queue reached 189 messages, and 40 acknowledged writes were not yet \
             stored when the workload ended; under drop-newest 300 of 1,000 \
             operations (30 %) were refused or failed, its mailboxes refused or dropped 300 \
             messages and none of 700 acknowledged writes was lost."
        );
    }

    #[test]
    fn crash_counts_lost_acknowledged_writes_per_policy_and_ack_mode() {
        let mut book = run("book", 5000, 0.0);
        book.ack = "none".into();
        book.lost_after_restart = 1234;
        book.extra.insert("killed_after_ms".into(), 812.0);
        let mut coalesce = run("coalesce", 3000, 0.0);
        coalesce.ack = "applied".into();
        coalesce.extra.insert("killed_after_ms".into(), 812.0);
        let f = finding(Scenario::Crash, &[book, coalesce]);
        assert_eq!(
            f.sentences,
            vec![
                "After a SIGKILL 812 ms into the run and a restart, acknowledged writes lost: \
                 book (ack none) 1,234 of 5,000 (25 %); coalesce (ack applied) none of 3,000."
                    .to_string(),
                "Only coalesce lost nothing; every list read back after the restart.".to_string(),
            ]
        );
    }

    #[test]
    fn bottleneck_compares_direct_with_routed_and_pool_with_one_worker() {
        let f = finding(
            Scenario::Bottleneck,
            &[
                run("book/1-routed", 3000, 1.0),
                run("book/3-routed", 6500, 1.0),
                run("book/3-direct", 12000, 1.0),
            ],
        );
        assert_eq!(
            f.sentences,
            vec![
                "Three workers addressed directly vs through the one router process: book \
                 12,000 vs 6,500 ops/s (+85 %)."
                    .to_string(),
                "Three routed workers vs one: book 6,500 vs 3,000 ops/s (2.2×).".to_string(),
            ]
        );
    }

    #[test]
    fn slow_disk_names_the_smallest_backlog_and_when_everything_was_stored() {
        let mut book = run("book", 2000, 50.0);
        book.roles = vec![role("database_worker", 400, &[])];
        book.durable_after_ms = Some(107.0);
        let mut coalesce = run("coalesce", 2000, 5.0);
        coalesce.roles = vec![role("database_worker", 40, &[])];
        let f = finding(Scenario::SlowDisk, &[book, coalesce]);
        assert!(
            f.sentences[0].starts_with(
                "With every store slowed down, the database's largest queue was lowest under \
                 coalesce (40 messages); book 400 messages (10×); under book every acknowledged \
                 write was in storage 107 ms after the workload's end, and under coalesce not \
                 every acknowledged write was stored within the limit."
            ),
            "{f:?}"
        );
        assert!(
            f.sentences[1].contains("throughput was about the same under both"),
            "{f:?}"
        );
    }

    #[test]
    fn poison_counts_panics_and_what_the_rest_completed() {
        let mut r = run("coalesce", 2000, 1.0);
        r.acked = 1600;
        r.extra.insert("poison_panics".into(), 20.0);
        r.extra.insert("hostile_writes_ok".into(), 100.0);
        r.extra.insert("hostile_writes_failed".into(), 0.0);
        let f = finding(Scenario::Poison, &[r]);
        assert_eq!(
            f.sentences[0],
            "Under coalesce the `poison` list's server was made to panic 20 times, and each \
             panic request found a server running, so its supervisor restarted it at least 19 times."
        );
        assert_eq!(
            f.sentences[1],
            "Meanwhile the other lists' traffic under coalesce completed 2,000 of 2,000 \
             operations and lost 0 of 1,600 acknowledged writes, and 100 of 100 durable writes \
             to hostile list names were stored."
        );
    }

    #[test]
    fn cold_compares_the_first_touch_with_a_warm_read() {
        let mut book = run("book", 0, 0.0);
        book.extra = BTreeMap::from([
            ("db_backlog_at_probe".into(), 300.0),
            ("new_list_first_request_ms".into(), 45.0),
            ("new_list_ok".into(), 1.0),
            ("existing_list_read_ms".into(), 1.5),
            ("existing_list_ok".into(), 1.0),
        ]);
        let mut coalesce = book.clone();
        coalesce.policy = "coalesce".into();
        coalesce
            .extra
            .insert("new_list_first_request_ms".into(), 1.52);
        let f = finding(Scenario::Cold, &[book, coalesce]);
        assert_eq!(
            f.sentences[0],
            "Under book with 300 database messages queued, the first request to a new list took \
             45.0 ms and a read of an existing list 1.50 ms (30×); under coalesce with 300 \
             database messages queued, the first request to a new list took 1.52 ms and a read \
             of an existing list 1.50 ms (about the same)."
        );
        assert_eq!(
            f.sentences[1],
            "The first request's latency was lowest under coalesce (1.52 ms); book 45.0 ms (30×)."
        );
    }

    #[test]
    fn soak_says_flat_only_within_five_percent() {
        let mut flat = run("coalesce", 1, 1.0);
        flat.extra = BTreeMap::from([
            ("rounds".into(), 12.0),
            ("rss_first_minute_mib".into(), 20.0),
            ("rss_at_end_mib".into(), 20.5),
        ]);
        let mut grew = flat.clone();
        grew.policy = "book".into();
        grew.extra.insert("rss_at_end_mib".into(), 30.0);
        let f = finding(Scenario::Soak, &[flat, grew]);
        assert_eq!(
            f.sentences,
            vec![
                "Resident memory stayed flat (at the end within 5 % of its peak in the first \
                 minute) under coalesce (20.0 MiB → 20.5 MiB, 12 rounds)."
                    .to_string(),
                "Resident memory did not stay flat: under book it grew from 20.0 MiB to 30.0 MiB \
                 (+50 %) over 12 rounds."
                    .to_string(),
            ]
        );
    }

    #[test]
    fn many_policies_are_summed_up_by_best_worst_and_range() {
        let runs = [
            run("a", 1000, 1.0),
            run("b", 990, 2.0),
            run("c", 700, 3.0),
            run("d", 500, 4.0),
            run("e", 400, 8.0),
        ];
        assert_eq!(
            compare(&refs(&runs), policy, &THROUGHPUT),
            "throughput was highest under a and b (about equal: 1,000 ops/s and 990 ops/s); \
             lowest under e (400 ops/s, -60 %), the other 2 in between"
        );
        let tied: Vec<RunReport> = (0..4)
            .map(|i| run(&format!("p{i}"), 100 + i, 1.0))
            .collect();
        assert_eq!(
            compare(&refs(&tied), policy, &THROUGHPUT),
            "throughput was about the same under every policy (100 ops/s to 103 ops/s; within 5 %)"
        );
        // Overload with four policies that kept everything: ranges, named at both ends.
        let kept: Vec<RunReport> = [("w", 10, 5), ("x", 90, 0), ("y", 30, 7), ("z", 20, 1)]
            .iter()
            .map(|(p, peak_depth, waiting)| {
                let mut r = run(p, 100, 1.0);
                r.roles = vec![role("todo_server", *peak_depth, &[])];
                r.lost_at_end = *waiting;
                r
            })
            .collect();
        assert_eq!(
            finding(Scenario::Overload, &kept).sentences[1],
            "Under every policy nothing was refused or dropped and no acknowledged write was \
             lost; the largest mailbox queue reached between 10 (w) and 90 (x) messages, and \
             between 0 (x) and 7 (y) acknowledged writes were not yet stored when the workload ended."
        );
    }

    #[test]
    fn bottleneck_with_many_policies_gives_the_range_of_the_ratio() {
        let mut runs = Vec::new();
        for (p, one, routed, direct) in [
            ("a", 1000, 2500, 2600),
            ("b", 1000, 3000, 2700),
            ("c", 1100, 2400, 2500),
        ] {
            runs.push(run(&format!("{p}/1-routed"), one, 1.0));
            runs.push(run(&format!("{p}/3-routed"), routed, 1.0));
            runs.push(run(&format!("{p}/3-direct"), direct, 1.0));
        }
        let f = finding(Scenario::Bottleneck, &runs);
        assert_eq!(
            f.sentences,
            vec![
                "Three workers addressed directly vs through the one router process: direct vs \
                 routed throughput between -10 % (b) and +4.2 % (c), about equal under a and c."
                    .to_string(),
                "Three routed workers vs one: throughput between 2.2× (c) and 3.0× (b)."
                    .to_string(),
            ]
        );
    }

    #[test]
    fn cold_with_many_policies_gives_ranges_and_names_failures() {
        let runs: Vec<RunReport> = [
            ("a", 300.0, 45.0, 1.5, 1.0),
            ("b", 30.0, 3.0, 1.0, 1.0),
            ("c", 0.0, 9.0, 0.5, 0.0),
        ]
        .iter()
        .map(|(p, backlog, first, read, ok)| {
            let mut r = run(p, 0, 0.0);
            r.extra = BTreeMap::from([
                ("db_backlog_at_probe".into(), *backlog),
                ("new_list_first_request_ms".into(), *first),
                ("new_list_ok".into(), *ok),
                ("existing_list_read_ms".into(), *read),
                ("existing_list_ok".into(), 1.0),
            ]);
            r
        })
        .collect();
        let f = finding(Scenario::Cold, &runs);
        assert_eq!(
            f.sentences,
            vec![
                "With between 0 (c) and 300 (a) database messages queued, the first request to \
                 a new list took between 3.00 ms (b) and 45.0 ms (a) (it failed under c): \
                 between 3× (b) and 30× (a) as long as a read of an existing list (0.500 ms to \
                 1.50 ms)."
                    .to_string(),
                "The first request's latency was lowest under b (3.00 ms); c 9.00 ms (3.0×), a \
                 45.0 ms (15×)."
                    .to_string(),
            ]
        );
    }

    #[test]
    fn no_runs_no_claims() {
        assert_eq!(
            finding(Scenario::Crash, &[]).sentences,
            vec!["No run finished."]
        );
    }
}
