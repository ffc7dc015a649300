//! A real Prometheus (Debian's `prometheus` package) on loopback scrapes a running
//! service with the shipped scrape config, and mailbox metrics and every dashboard
//! query are read back through its HTTP query API.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use sluicegate_todo::config::Config;
use sluicegate_todo::domain::ListName;
use sluicegate_todo::service::{self, Running, ServeOptions};

use crate::support::dashboard::dashboard_queries;
use crate::support::eventually::{poll_until, PATIENCE};
use crate::support::serve::repo_file;

const SKIP_VAR: &str = "SLUICEGATE_SKIP_PROMETHEUS";

/// The path of a program on `PATH` (or in /usr/bin, where Debian puts it), or `None`.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The program, or `None` when it is absent and the skip variable is set; fails
/// with instructions when it is absent otherwise.
fn required(program: &str) -> Option<PathBuf> {
    if let Some(path) = which(program) {
        return Some(path);
    }
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: `{program}` is not installed and {SKIP_VAR}=1");
        return None;
    }
    panic!(
        "`{program}` is not on PATH. This test runs a real Prometheus: install Debian's \
         package (`apt-get install prometheus`, as .ci/run does), or set {SKIP_VAR}=1 \
         to skip it."
    );
}

/// A Prometheus child process, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query; the `data` object of a successful answer.
    async fn query(&mut self, promql: &str) -> Value {
        let url = format!(
            "{}/api/v1/query?query={}",
            self.base,
            utf8_percent_encode(promql, NON_ALPHANUMERIC)
        );
        let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(body["status"], "success", "query {promql:?}: {body}");
        body["data"].clone()
    }

    /// Polls `promql` until it returns at least one sample that `pred` accepts.
    async fn wait_for(&mut self, promql: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let url = format!(
            "{}/api/v1/query?query={}",
            self.base,
            utf8_percent_encode(promql, NON_ALPHANUMERIC)
        );
        let mut last = Value::Null;
        let found = poll_until(async || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", self.log());
            }
            let body = reqwest::get(&url).await.ok()?.json::<Value>().await.ok()?;
            let found = body["data"]["result"]
                .as_array()
                .and_then(|r| r.iter().find(|s| pred(s)))
                .cloned();
            last = body;
            found
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no sample for {promql:?} within {PATIENCE:?}; last answer: {last}\nprometheus log:\n{}",
                self.log()
            )
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped `dashboards/prometheus.yml`, pointed at `target` and scraping every 1 s.
fn scrape_config(target: SocketAddr) -> String {
    let shipped = std::fs::read_to_string(repo_file("dashboards/prometheus.yml")).unwrap();
    let config = shipped
        .replace("\"127.0.0.1:8080\"", &format!("\"{target}\""))
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s");
    assert!(
        config.contains(&target.to_string()) && config.contains("scrape_interval: 1s"),
        "dashboards/prometheus.yml no longer has the expected target/interval lines:\n{shipped}"
    );
    config
}

fn start_prometheus(binary: &Path, dir: &Path, target: SocketAddr) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, scrape_config(target)).unwrap();
    let port = free_port();
    let log = dir.join("prometheus.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn start_service(dir: &Path) -> Running {
    service::start(ServeOptions {
        config: Config::builtin(),
        config_path: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
    })
    .await
    .unwrap()
}

fn value_of(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn the_shipped_scrape_config_passes_promtool() {
    let Some(promtool) = required("promtool") else {
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(repo_file("dashboards/prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_service_and_serves_its_mailbox_metrics() {
    let Some(binary) = required("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The real binary, as a user runs it (and apart from this process's metrics).
    let mut serve = crate::support::serve::Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    let target = serve.addr;
    let mut prom = start_prometheus(&binary, dir.path(), target);

    let up = prom.wait_for("up{job=\"sluicegate\"}", |_| true).await;
    assert_eq!(up["metric"]["instance"], target.to_string());
    assert_eq!(value_of(&up), 1.0, "the scrape succeeds: {up}");

    let config = Config::builtin();
    let worker = config.policy_for("database_worker").unwrap();
    let sample = prom
        .wait_for("sluicegate_mailbox_capacity", |s| {
            s["metric"]["mailbox"] == "database_worker"
        })
        .await;
    assert_eq!(sample["metric"]["job"], "sluicegate");
    assert_eq!(sample["metric"]["instance"], target.to_string());
    assert_eq!(sample["metric"]["policy"], worker.name());
    assert_eq!(
        value_of(&sample),
        worker.capacity().unwrap_or(0) as f64,
        "{sample}"
    );
    let live = prom
        .wait_for("sluicegate_mailboxes{mailbox=\"database_worker\"}", |_| {
            true
        })
        .await;
    assert_eq!(value_of(&live), config.database.workers as f64);

    drop(prom);
    serve.signal("TERM");
    assert!(serve.wait_exit().success(), "{}", serve.stderr_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_and_shows_a_first_escalation() {
    let Some(binary) = required("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let running = start_service(&dir.path().join("data")).await;
    let mut prom = start_prometheus(&binary, dir.path(), running.addr);
    // Prometheus has seen the service before anything happens.
    prom.wait_for("up{job=\"sluicegate\"}", |s| value_of(s) == 1.0)
        .await;

    let base = format!("http://{}", running.addr);
    let c = reqwest::Client::new();
    for i in 0..20 {
        let resp = c
            .post(format!("{base}/lists/prom-{}/entries", i % 4))
            .json(&json!({"date": "2026-11-27", "title": format!("entry {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    }
    let resp = c
        .get(format!("{base}/lists/prom-0/entries?date=not-a-date"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);

    // Crash one list server until the supervisor gives up on it.
    let system = running.system();
    let crashy = ListName::new("crashy").unwrap();
    let mut events = system.supervisor().subscribe();
    let mut escalated = false;
    for _ in 0..50 {
        let _ = system.inject_panic(&crashy).await;
        while let Ok(e) = events.try_recv() {
            escalated |= matches!(e, sluicegate::runtime::SupervisorEvent::Escalated { .. });
        }
        if escalated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(escalated, "repeated crashes escalate");

    // The dashboard's restarts panel shows the first (and only) escalation.
    let increase = prom
        .wait_for(
            "sum by (role) (increase(sluicegate_server_escalations_total[1m]))",
            |s| s["metric"]["role"] == "todo_server" && value_of(s) > 0.0,
        )
        .await;
    assert!(value_of(&increase) > 0.0);

    // Every query of the dashboard is valid PromQL and, after this traffic, has data.
    for q in dashboard_queries() {
        let data = prom.wait_for(&q.expr, |_| true).await;
        assert!(data.is_object(), "{}: {}", q.panel, q.expr);
        let answer = prom.query(&q.expr).await;
        assert_eq!(answer["resultType"], "vector", "{}: {answer}", q.expr);
    }

    running.shutdown().await.unwrap();
}
