//! A real PostgreSQL for the tests: the server at `SLUICEGATE_TEST_PG_URL` when that
//! is set, otherwise a private one started from Debian's `postgresql` binaries
//! (initdb into a temporary directory, a free port on 127.0.0.1 and a unix socket
//! in that directory, run as the `postgres` user when the tests run as root, since
//! initdb refuses root), stopped when the last test using it is done. Each test gets
//! a database of its own. Without the binaries the tests fail, naming the package.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The environment variable naming an existing server to test against.
pub const URL_VAR: &str = "SLUICEGATE_TEST_PG_URL";

/// The directory holding `initdb` and `pg_ctl`: on PATH, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("pg_ctl").is_file() {
                return d;
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server binaries (initdb, pg_ctl) are not installed, neither on PATH nor \
             in /usr/lib/postgresql/*/bin: install the Debian package `postgresql` \
             (scripts/test does), or set {URL_VAR} to a server's URL"
        ),
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A private PostgreSQL server in a temporary directory; stopped on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The TCP port on 127.0.0.1 (also the unix socket's number).
    pub port: u16,
    as_postgres: bool,
    running: bool,
}

impl PgServer {
    /// initdb and start a fresh server (panics with the reason if it cannot).
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("sluicegate-pg-")
            .tempdir()
            .unwrap();
        let as_postgres = is_root();
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(st.success(), "chown -R postgres: {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PgServer {
            dir,
            bin,
            port,
            as_postgres,
            running: false,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The unix socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// A command running `tool` as the server's owner.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = self
            .command(tool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}):\n{}\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Starts the server (again, after [`PgServer::stop`]); returns once it accepts connections.
    pub fn start_again(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.socket_dir().display()
        );
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server at once (`-m immediate`, as a crash would).
    pub fn stop(&mut self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        self.running = false;
    }

    /// A key-value connection string to database `db` over the unix socket.
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A `postgres://` URL to database `db` over TCP.
    pub fn tcp_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self
                .command("pg_ctl")
                .args([
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ])
                .output();
        }
    }
}

/// The private server shared by the tests of this binary while any of them runs.
static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

fn shared_server() -> Arc<PgServer> {
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let s = Arc::new(PgServer::start());
    *slot = Arc::downgrade(&s);
    s
}

/// A database of one test's own; dropped (on an external server) with it.
pub struct TestDb {
    /// Its connection URL.
    pub url: String,
    /// Where to connect to drop it (external server only).
    admin_url: Option<String>,
    name: String,
    /// Keeps the private server running.
    _server: Option<Arc<PgServer>>,
}

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Quotes a value of a key-value connection string.
fn quoted(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `url` with its database replaced by `db`, as a key-value connection string.
fn with_dbname(url: &str, db: &str) -> String {
    let c: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|e| panic!("{URL_VAR} is not a PostgreSQL URL: {e}"));
    let mut parts = Vec::new();
    for h in c.get_hosts() {
        match h {
            tokio_postgres::config::Host::Tcp(s) => parts.push(format!("host={}", quoted(s))),
            tokio_postgres::config::Host::Unix(p) => {
                parts.push(format!("host={}", quoted(&p.display().to_string())))
            }
        }
    }
    if let Some(p) = c.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = c.get_user() {
        parts.push(format!("user={}", quoted(u)));
    }
    if let Some(p) = c.get_password() {
        parts.push(format!("password={}", quoted(&String::from_utf8_lossy(p))));
    }
    parts.push(format!("dbname={}", quoted(db)));
    parts.join(" ")
}

/// Runs one statement on `url` (a fresh connection).
pub async fn execute(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let task = tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}

/// A fresh database: on `SLUICEGATE_TEST_PG_URL`'s server if set, else on this
/// binary's private server.
pub async fn fresh_db() -> TestDb {
    let name = format!(
        "sluicegate_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => {
            execute(&url, &format!("CREATE DATABASE {name}")).await;
            TestDb {
                url: with_dbname(&url, &name),
                admin_url: Some(url),
                name,
                _server: None,
            }
        }
        _ => {
            let server = tokio::task::spawn_blocking(shared_server).await.unwrap();
            execute(
                &server.socket_url("postgres"),
                &format!("CREATE DATABASE {name}"),
            )
            .await;
            TestDb {
                url: server.tcp_url(&name),
                admin_url: None,
                name,
                _server: Some(server),
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin) = self.admin_url.clone() else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Outside any runtime the test may still be inside of.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(execute(&admin, &sql));
        })
        .join();
    }
}
