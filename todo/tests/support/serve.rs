//! Running the real `sluicegate` binary: start `serve`, read its `listening on` line,
//! signal it, collect its output; HTTP and JSON-error helpers; files of the repository.
//! `SLUICEGATE_BIN` picks another binary to test (e.g. an older build,
//! `scripts/against-ref.sh`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use super::eventually::{poll_until_blocking, PATIENCE};

/// The binary under test: `$SLUICEGATE_BIN` if set and not empty, else the one
/// cargo built.
pub fn bin() -> PathBuf {
    std::env::var_os("SLUICEGATE_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sluicegate")))
}

/// Runs `sluicegate <args>` to its end.
pub fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run sluicegate")
}

/// A response's status and its JSON body.
pub async fn get_json(c: &reqwest::Client, url: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let resp = c.get(url).send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.expect("a JSON body"))
}

/// Every entry of the list at `entries_url` (`.../lists/{list}/entries`), following
/// `Link: rel="next"` pages; `None` when the list does not exist (404). Panics on any
/// other failure.
pub async fn all_entries(c: &reqwest::Client, entries_url: &str) -> Option<Vec<serde_json::Value>> {
    try_all_entries(c, entries_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`all_entries`] that hands a failure back (the request failed, or a page was not
/// `200` with a JSON array) instead of panicking, for readers that retry.
pub async fn try_all_entries(
    c: &reqwest::Client,
    entries_url: &str,
) -> Result<Option<Vec<serde_json::Value>>, String> {
    let origin = {
        let rest = entries_url.split_once("://").map_or("", |(_, r)| r);
        let host_len = rest.find('/').unwrap_or(rest.len());
        entries_url[..entries_url.len() - rest.len() + host_len].to_string()
    };
    let mut out = Vec::new();
    let mut next = Some(entries_url.to_string());
    while let Some(url) = next.take() {
        let resp = c
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND && out.is_empty() {
            return Ok(None);
        }
        next = resp
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| Some(format!("{origin}{}", &l[l.find('<')? + 1..l.find('>')?])));
        let body = resp.text().await.unwrap_or_default();
        if status != reqwest::StatusCode::OK {
            return Err(format!("GET {url}: {status} {body}"));
        }
        let page: Vec<serde_json::Value> = serde_json::from_str(&body)
            .map_err(|e| format!("GET {url}: not an array of entries ({e}): {body}"))?;
        out.extend(page);
    }
    Ok(Some(out))
}

/// An error response's status and the message of its `{"error": "..."}` body
/// (panics when the body is not such JSON: every error of the API is).
pub async fn error_of(resp: reqwest::Response) -> (reqwest::StatusCode, String) {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.expect("error bodies are JSON");
    (
        status,
        body["error"]
            .as_str()
            .expect("an \"error\" string")
            .to_string(),
    )
}

/// A file of the repository (e.g. `policies/book.toml`), independent of the working
/// directory: the service crate lives in `todo/`, one level below the workspace root.
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A running `sluicegate serve` child; killed on drop if still running.
pub struct Serve {
    child: Child,
    /// The address from its `listening on` line.
    pub addr: SocketAddr,
    /// The first stdout line, as printed.
    pub first_line: String,
    stdout_rest: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; they end when the process has exited.
    readers: Vec<JoinHandle<()>>,
    /// Holds a config file written for this server, if any.
    _config_dir: Option<tempfile::TempDir>,
}

impl Serve {
    /// `serve` on `data_dir` with `config` (written to a file of its own), on a free
    /// port of 127.0.0.1.
    pub fn with_config(config: &sluicegate_todo::config::Config, data_dir: &Path) -> Serve {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, toml::to_string(config).expect("config as TOML")).unwrap();
        let mut s = Serve::start(&[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        s._config_dir = Some(dir);
        s
    }

    /// Graceful stop: SIGTERM, and the exit must be a success.
    pub fn shutdown(mut self) {
        self.signal("TERM");
        let status = self.wait_exit();
        assert!(status.success(), "exit {status}: {}", self.stderr_text());
    }

    /// Runs `sluicegate serve <args>` and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Serve {
        Self::start_with_env(args, &[])
    }

    /// Same, with extra environment variables (e.g. `RUST_LOG`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !env.iter().any(|(k, _)| *k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sluicegate serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err_pipe = child.stderr.take().expect("stderr piped");
        let err_lines = stderr.clone();
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                err_lines.lock().unwrap().push(line);
            }
        });
        let stdout_rest = Arc::new(Mutex::new(Vec::new()));
        let out_pipe = child.stdout.take().expect("stdout piped");
        let (first_tx, first_rx) = mpsc::channel();
        let rest = stdout_rest.clone();
        let out_reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(out_pipe).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = first_tx.send(first);
            }
            drop(first_tx);
            for line in lines {
                let Ok(line) = line else { break };
                rest.lock().unwrap().push(line);
            }
        });
        let first_line = match first_rx.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                // The pipe is closed now: wait for its last lines.
                poll_until_blocking(|| err_reader.is_finished().then_some(()));
                panic!(
                    "serve {args:?} printed no `listening on` line ({e}); stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        let addr = first_line
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("unexpected first stdout line: {first_line:?}"));
        Serve {
            child,
            addr,
            first_line,
            stdout_rest,
            stderr,
            readers: vec![out_reader, err_reader],
            _config_dir: None,
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`, `INT`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// Waits for the process to exit (panics after [`PATIENCE`]) and for the reader
    /// threads to take its last lines.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let Some(status) = poll_until_blocking(|| self.child.try_wait().expect("try_wait")) else {
            let _ = self.child.kill();
            panic!(
                "serve did not exit within {PATIENCE:?}; stderr:\n{}",
                self.stderr_text()
            );
        };
        self.wait_for_readers();
        status
    }

    /// SIGKILL; waits for the exit and for the reader threads to take the last lines.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill serve");
        let status = self.child.wait().expect("wait for serve");
        self.wait_for_readers();
        status
    }

    /// Waits (up to [`PATIENCE`]) until the stdout and stderr readers have read to the
    /// end of their pipes, which close when the process exits.
    fn wait_for_readers(&self) {
        poll_until_blocking(|| self.readers.iter().all(|r| r.is_finished()).then_some(()));
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Stdout lines after the first one.
    pub fn stdout_rest(&self) -> Vec<String> {
        self.stdout_rest.lock().unwrap().clone()
    }

    /// Waits until `count` stderr lines contain `needle`; false after [`PATIENCE`].
    pub fn wait_for_stderr(&self, needle: &str, count: usize) -> bool {
        poll_until_blocking(|| {
            let lines = self.stderr.lock().unwrap();
            (lines.iter().filter(|l| l.contains(needle)).count() >= count).then_some(())
        })
        .is_some()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal by name to a process with the `kill` command.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}
