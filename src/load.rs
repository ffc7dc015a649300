//! `sluicegate load`: an open-loop HTTP load generator. Requests are scheduled at a
//! constant rate and latency counts from each request's intended send time, so a
//! slow server cannot hide its queueing (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Options of one load run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Base URL of a running `sluicegate serve`, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Requests per second.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Lists chosen from.
    pub lists: usize,
    /// Percent of requests that add an entry (the rest read one date).
    pub write_pct: u8,
    /// Requests in flight at most (connections).
    pub connections: usize,
    /// Seed of the request mix.
    pub seed: u64,
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Requests scheduled.
    pub sent: u64,
    /// Seconds from the first scheduled send to the last answer.
    pub seconds: f64,
    /// Latency from intended send time, µs.
    pub latency: Histogram<u64>,
    /// Answers by HTTP status (`error` for transport failures).
    pub statuses: BTreeMap<String, u64>,
}

impl LoadReport {
    /// Human-readable summary.
    pub fn summary(&self) -> String {
        let q = |p: f64| self.latency.value_at_quantile(p) as f64 / 1000.0;
        let mut s = format!(
            "requests: {}  duration: {:.1} s  throughput: {:.0} req/s\n\
             latency from intended send (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
             statuses:",
            self.sent,
            self.seconds,
            self.latency.len() as f64 / self.seconds.max(1e-9),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            self.latency.max() as f64 / 1000.0
        );
        for (k, v) in &self.statuses {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push('\n');
        s
    }
}

/// Runs the load; `progress` is told of every answered request.
pub async fn run(
    opts: &LoadOptions,
    progress: impl Fn() + Send + Sync + 'static,
) -> Result<LoadReport, String> {
    if opts.rate <= 0.0 || !opts.rate.is_finite() {
        return Err(format!(
            "--rate {} is not allowed: it must be above 0",
            opts.rate
        ));
    }
    if opts.connections == 0 {
        return Err("--connections 0 is not allowed: it must be at least 1".into());
    }
    if opts.write_pct > 100 {
        return Err(format!(
            "--write-pct {} is not allowed: it must be 0 to 100",
            opts.write_pct
        ));
    }
    let base = opts.target.trim_end_matches('/').to_string();
    reqwest::Url::parse(&base).map_err(|e| format!("--target {base}: {e}"))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.connections)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let statuses: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.connections));
    let progress = Arc::new(progress);
    let total = (opts.rate * opts.duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / opts.rate);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let start = tokio::time::Instant::now();
    let wall = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended).await;
        let list = rng.gen_range(0..opts.lists.max(1));
        let day = rng.gen_range(1..=28);
        let write = rng.gen_range(0..100) < opts.write_pct;
        let (client, hist, statuses, permits, progress, base) = (
            client.clone(),
            hist.clone(),
            statuses.clone(),
            permits.clone(),
            progress.clone(),
            base.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let date = format!("2026-01-{day:02}");
            let resp = if write {
                client
                    .post(format!("{base}/lists/load-{list}/entries"))
                    .json(&serde_json::json!({"date": date, "title": format!("load {i}")}))
                    .send()
                    .await
            } else {
                client
                    .get(format!("{base}/lists/load-{list}/entries?date={date}"))
                    .send()
                    .await
            };
            let key = match resp {
                Ok(r) => {
                    let status = r.status().as_u16().to_string();
                    let _ = r.bytes().await;
                    status
                }
                Err(_) => "error".to_string(),
            };
            let us = intended.elapsed().as_micros().clamp(1, 120_000_000) as u64;
            let _ = hist.lock().unwrap_or_else(|e| e.into_inner()).record(us);
            *statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default() += 1;
            progress();
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let latency = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let statuses = statuses.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(LoadReport {
        sent: total,
        seconds: wall.elapsed().as_secs_f64(),
        latency,
        statuses,
    })
}
