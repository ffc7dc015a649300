//! The shipped dashboards against a running service: every metric and label the
//! Grafana dashboard's PromQL names is exported on `/metrics`, and the Prometheus
//! scrape config points at the service's default address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::json;
use sluicegate_todo::config::Config;
use sluicegate_todo::domain::ListName;
use sluicegate_todo::service::{self, ServeOptions};

use crate::support::dashboard::{dashboard_queries, promql_refs};
use crate::support::eventually::poll_until;
use crate::support::prom::{parse_metrics, scrape, Sample};
use crate::support::serve::repo_file;

#[test]
fn the_promql_reader_finds_metrics_and_labels() {
    let r = promql_refs(
        "histogram_quantile(0.99, sum by (le, mailbox) \
         (rate(a_seconds_bucket{result!=\"ok\", role=~\"x|y\"}[1m])))",
    );
    assert_eq!(r.metrics, BTreeSet::from(["a_seconds_bucket".to_string()]));
    assert_eq!(
        r.grouping,
        BTreeSet::from(["le".to_string(), "mailbox".to_string()])
    );
    assert_eq!(
        r.matchers,
        BTreeSet::from(["result".to_string(), "role".to_string()])
    );
    let r = promql_refs("sum(increase(b_total[5m])) without (x) / on(y) c + 1.5e3");
    assert_eq!(
        r.metrics,
        BTreeSet::from(["b_total".to_string(), "c".to_string()])
    );
    assert_eq!(
        r.grouping,
        BTreeSet::from(["x".to_string(), "y".to_string()])
    );
}

#[test]
fn the_dashboard_covers_what_the_issue_asks_for() {
    let queries = dashboard_queries();
    let all: BTreeSet<String> = queries
        .iter()
        .flat_map(|q| promql_refs(&q.expr).metrics)
        .collect();
    for needed in [
        "sluicegate_mailbox_depth",
        "sluicegate_mailbox_messages_total",
        "sluicegate_mailbox_sojourn_seconds_bucket",
        "sluicegate_mailbox_send_wait_seconds_bucket",
        "sluicegate_call_duration_seconds_bucket",
        "sluicegate_calls_total",
        "sluicegate_server_restarts_total",
        "sluicegate_http_requests_total",
        "sluicegate_http_request_duration_seconds_bucket",
    ] {
        assert!(all.contains(needed), "no panel queries {needed}: {all:?}");
    }
}

#[test]
fn every_legend_label_survives_its_aggregation() {
    for q in dashboard_queries() {
        let Some(legend) = &q.legend else { continue };
        let refs = promql_refs(&q.expr);
        for part in legend.split("{{").skip(1) {
            let label = part.split("}}").next().unwrap().trim();
            assert!(
                refs.grouping.contains(label),
                "panel {:?}: legend uses {{{{{label}}}}} but {:?} keeps only {:?}",
                q.panel,
                q.expr,
                refs.grouping
            );
        }
    }
}

#[test]
fn the_prometheus_config_scrapes_the_default_address() {
    let text = std::fs::read_to_string(repo_file("dashboards/prometheus.yml")).unwrap();
    assert!(!text.contains('\t'), "YAML allows no tabs for indentation");
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim_end())
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(lines.contains(&"scrape_configs:"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().trim_start_matches("- ") == "job_name: sluicegate"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.trim() == "metrics_path: /metrics"),
        "{text}"
    );
    // The address `sluicegate serve` listens on by default.
    let target = lines
        .iter()
        .find(|l| l.trim_start().starts_with("- targets:"))
        .expect("a static target");
    assert!(
        target.contains("\"127.0.0.1:8080\"") || target.contains("\"localhost:8080\""),
        "{target}"
    );
    for l in &lines {
        let indent = l.len() - l.trim_start().len();
        assert_eq!(indent % 2, 0, "odd indentation: {l:?}");
    }
}

/// Starts the service in this process and sends traffic that makes every metric
/// family appear: each route, 4xx errors, a crashing list server that is restarted
/// and then given up on.
async fn service_with_traffic(dir: &std::path::Path) -> (service::Running, String) {
    let running = service::start(ServeOptions {
        config: Config::builtin(),
        config_path: None,
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        data_dir: dir.to_path_buf(),
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::new();
    let resp = c
        .post(format!("{base}/lists/dash/entries"))
        .json(&json!({"date": "2026-11-27", "title": "one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = c
        .patch(format!("{base}/lists/dash/entries/1"))
        .json(&json!({"title": "uno"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = c
        .get(format!("{base}/lists/dash/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = c
        .delete(format!("{base}/lists/dash/entries/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = c
        .delete(format!("{base}/lists/dash/entries/99"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = c
        .post(format!("{base}/lists/dash/entries"))
        .json(&json!({"date": "yesterday", "title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Crash one list server past its restart intensity (3 in 5 s): restarts, then
    // an escalation.
    let system = running.system();
    let crashy = ListName::new("crashy").unwrap();
    let mut events = system.supervisor().subscribe();
    let mut escalated = false;
    // A call that reaches the server while it is being restarted is answered
    // "stopped"; such tries do not crash it and are simply repeated.
    for _ in 0..50 {
        match system.inject_panic(&crashy).await {
            Ok(())
            | Err(
                sluicegate_todo::domain::TodoSystemError::Stopped
                | sluicegate_todo::domain::TodoSystemError::NotStarted(_),
            ) => {}
            Err(e) => panic!("inject_panic: {e}"),
        }
        while let Ok(e) = events.try_recv() {
            escalated |= matches!(e, sluicegate::runtime::SupervisorEvent::Escalated { .. });
        }
        if escalated {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(escalated, "repeated crashes escalate");
    (running, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_dashboard_is_exported_by_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let (running, base) = service_with_traffic(dir.path()).await;
    let queries = dashboard_queries();
    let needed: BTreeSet<String> = queries
        .iter()
        .flat_map(|q| promql_refs(&q.expr).metrics)
        .collect();
    // Scrape twice at least: the first scrape's own request is counted in the
    // second. Some series appear only once the traffic's work has settled (a
    // commit's metrics when its batch is durable), so scrape again until every
    // metric the dashboard uses is there (or report what is missing, below).
    let metrics_url = format!("{base}/metrics");
    let _ = scrape(&metrics_url).await;
    let mut text = scrape(&metrics_url).await;
    poll_until(async || {
        text = scrape(&metrics_url).await;
        let (samples, _) = parse_metrics(&text);
        needed
            .iter()
            .all(|n| samples.iter().any(|s| &s.name == n))
            .then_some(())
    })
    .await;
    let (samples, types) = parse_metrics(&text);
    let mut by_name: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in &samples {
        by_name.entry(&s.name).or_default().push(s);
    }

    assert!(queries.len() >= 10, "the dashboard has its panels");
    let mut problems = Vec::new();
    for q in &queries {
        let refs = promql_refs(&q.expr);
        assert!(!refs.metrics.is_empty(), "no metric in {:?}", q.expr);
        for name in &refs.metrics {
            let Some(series) = by_name.get(name.as_str()) else {
                problems.push(format!("{:?}: {name} is not exported", q.panel));
                continue;
            };
            // `_bucket` series must come from a histogram family; others from a
            // family of their own name.
            let family_type = match name.strip_suffix("_bucket") {
                Some(family) => types.get(family).map(|t| (family, t.as_str())),
                None => types
                    .get(name.as_str())
                    .map(|t| (name.as_str(), t.as_str())),
            };
            match (name.ends_with("_bucket"), family_type) {
                (true, Some((_, "histogram"))) => {}
                (false, Some((_, "counter" | "gauge"))) => {}
                (_, other) => {
                    problems.push(format!("{:?}: {name} has family/type {other:?}", q.panel))
                }
            }
            for label in refs.grouping.iter().chain(&refs.matchers) {
                if !series.iter().any(|s| s.labels.contains_key(label)) {
                    problems.push(format!(
                        "{:?}: {name} has no label {label:?} used in {:?}",
                        q.panel, q.expr
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn restart_and_escalation_counters_start_at_zero_for_every_role() {
    // A separate process: this binary's in-process service has crashed servers.
    let dir = tempfile::tempdir().unwrap();
    let mut s = crate::support::serve::Serve::start(&[
        "--config",
        repo_file("policies/book.toml").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (samples, _) = parse_metrics(&text);
    // The book routes through a `database` router, so all three roles exist.
    for role in ["todo_server", "database_worker", "database"] {
        for name in [
            "sluicegate_server_restarts_total",
            "sluicegate_server_escalations_total",
        ] {
            let found = crate::support::prom::find(&samples, name, &[("role", role)]);
            assert_eq!(found.len(), 1, "{name}{{role={role:?}}} missing:\n{text}");
            assert_eq!(found[0].value, 0.0);
        }
    }
    s.signal("TERM");
    assert!(s.wait_exit().success(), "{}", s.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_counted_with_their_status_and_route() {
    let dir = tempfile::tempdir().unwrap();
    let running = service::start(ServeOptions {
        config: Config::builtin(),
        config_path: None,
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::new();
    // Over the body limit, announced by Content-Length: refused before any handler.
    let resp = c
        .post(format!("{base}/lists/big/entries"))
        .header("content-type", "application/json")
        .body(vec![b' '; service::BODY_LIMIT + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A method the route does not have.
    let resp = c
        .put(format!("{base}/lists/big/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // No such route.
    let resp = c.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let text = scrape(&format!("{base}/metrics")).await;
    let (samples, _) = parse_metrics(&text);
    for (method, route, status) in [
        ("POST", "/lists/{list}/entries", "413"),
        ("PUT", "/lists/{list}/entries", "405"),
        ("GET", "unmatched", "404"),
    ] {
        let found = crate::support::prom::find(
            &samples,
            service::HTTP_REQUESTS,
            &[("method", method), ("route", route), ("status", status)],
        );
        assert_eq!(
            found.len(),
            1,
            "{method} {route} {status} not counted; HTTP series: {:#?}",
            crate::support::prom::find(&samples, service::HTTP_REQUESTS, &[])
        );
        assert!(found[0].value >= 1.0);
    }
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_times_out_as_408_and_is_counted() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::builtin();
    // The request timeout is the call timeout plus one second.
    config.system.call_timeout = std::time::Duration::from_millis(200);
    let running = service::start(ServeOptions {
        config,
        config_path: None,
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let addr = running.addr;
    // A body that never finishes arriving: the request times out.
    let response = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(crate::support::eventually::PATIENCE))
            .unwrap();
        write!(
            conn,
            "POST /lists/slow/entries HTTP/1.1\r\nhost: {addr}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"date\""
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");

    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (samples, _) = parse_metrics(&text);
    let found = crate::support::prom::find(
        &samples,
        service::HTTP_REQUESTS,
        &[
            ("method", "POST"),
            ("route", "/lists/{list}/entries"),
            ("status", "408"),
        ],
    );
    assert_eq!(found.len(), 1, "408 not counted:\n{text}");
    running.shutdown().await.unwrap();
}

#[test]
fn the_dashboard_is_well_formed_for_grafana() {
    let text = std::fs::read_to_string(repo_file("dashboards/sluicegate.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(d["title"].is_string() && d["uid"].is_string());
    let variables: BTreeSet<String> = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(|n| format!("${{{n}}}")))
        .collect();
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_i64().expect("numeric id")),
            "{title}: duplicate id"
        );
        let g = &p["gridPos"];
        let b = ["x", "y", "w", "h"].map(|k| g[k].as_i64().expect("gridPos"));
        assert!(b[0] >= 0 && b[2] > 0 && b[0] + b[2] <= 24, "{title}: {g}");
        for (other, o) in &boxes {
            let apart = b[0] + b[2] <= o[0]
                || o[0] + o[2] <= b[0]
                || b[1] + b[3] <= o[1]
                || o[1] + o[3] <= b[1];
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((title.to_string(), b));
        let mut refs = BTreeSet::new();
        for t in p["targets"].as_array().expect("targets") {
            assert!(refs.insert(t["refId"].as_str().expect("refId")), "{title}");
            for ds in [&p["datasource"], &t["datasource"]] {
                if let Some(uid) = ds["uid"].as_str() {
                    assert_eq!(ds["type"], "prometheus", "{title}");
                    assert!(
                        !uid.starts_with('$') || variables.contains(uid),
                        "{title}: datasource {uid} is not a dashboard variable"
                    );
                }
            }
        }
    }
}
