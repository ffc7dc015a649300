//! The config file: one test per kind of mistake, each asserting that the message
//! names the key, the value and what is allowed; every file in `policies/` loads
//! and runs; the built-in default is `policies/coalesce.toml`.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use sluicegate::mailbox::Policy;
use sluicegate_todo::config::{AckMode, BackendKind, Config, ConfigError};
use sluicegate_todo::domain::{ListName, TodoSystem};

/// A valid file to break in one place per test.
const BASE: &str = include_str!("../../../policies/coalesce.toml");

/// `BASE` with `from` replaced by `to` (which must change it).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE has no {from:?}");
    BASE.replace(from, to)
}

/// The error message for a config text that must be refused.
fn refused(text: &str) -> String {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("accepted a bad config: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `msg` contains every part.
fn names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message lacks {p:?}:\n{msg}");
    }
}

#[test]
fn unknown_key_at_the_top_level() {
    let msg = refused(&format!("extra = 1\n{BASE}"));
    names(
        &msg,
        &["extra", "unknown key", "storage, system, database, mailbox"],
    );
}

#[test]
fn unknown_key_in_a_section() {
    let msg = refused(&edit("default_ack =", "default_ak ="));
    names(
        &msg,
        &[
            "system.default_ak",
            "unknown key",
            "default_ack, call_timeout, idle_timeout, max_live_servers",
        ],
    );
    let msg = refused(&edit("[database]\n", "[database]\nthreads = 4\n"));
    names(&msg, &["database.threads", "workers, routing"]);
}

#[test]
fn unknown_key_in_a_mailbox_section() {
    let msg = refused(&edit("capacity = 1024\n", "capacity = 1024\ncapcity = 3\n"));
    names(
        &msg,
        &[
            "mailbox.todo_server.capcity",
            "\"drop_newest\"",
            "policy, capacity",
        ],
    );
}

#[test]
fn parameter_of_another_policy() {
    // `unbounded` takes no capacity: a stray one must not be silently ignored.
    let msg = refused(&edit(
        "[mailbox.database]\npolicy = \"unbounded\"\n",
        "[mailbox.database]\npolicy = \"unbounded\"\ncapacity = 5\n",
    ));
    names(
        &msg,
        &[
            "mailbox.database.capacity",
            "\"unbounded\"",
            "no parameters",
        ],
    );
    // `send_timeout` belongs to `block`, not `drop_newest`.
    let msg = refused(&edit(
        "capacity = 1024\n",
        "capacity = 1024\nsend_timeout = \"1s\"\n",
    ));
    names(
        &msg,
        &["mailbox.todo_server.send_timeout", "policy, capacity"],
    );
}

#[test]
fn unknown_mailbox_role() {
    let msg = refused(&format!(
        "{BASE}\n[mailbox.todo_sever]\npolicy = \"unbounded\"\n"
    ));
    names(
        &msg,
        &[
            "mailbox.todo_sever",
            "todo_server, database, database_worker",
        ],
    );
}

#[test]
fn wrong_type() {
    let msg = refused(&edit("workers = 3", "workers = \"three\""));
    names(
        &msg,
        &[
            "database.workers",
            "\"three\"",
            "whole number from 1 to 1024",
        ],
    );
    let msg = refused(&edit("capacity = 1024", "capacity = 10.5"));
    names(
        &msg,
        &["mailbox.todo_server.capacity", "10.5", "whole number"],
    );
    let msg = refused(&edit("data_dir = \"./data\"", "data_dir = 7"));
    names(&msg, &["storage.data_dir", "7", "directory path"]);
    let text = format!(
        "storage = \"files\"\n{}",
        edit(
            "[storage]\nbackend = \"sqlite\"\ndata_dir = \"./data\"\n",
            ""
        )
    );
    let msg = refused(&text);
    names(&msg, &["storage", "\"files\"", "[storage] table"]);
}

#[test]
fn bad_duration() {
    let msg = refused(&edit(
        "call_timeout = \"5s\"",
        "call_timeout = \"5 parsecs\"",
    ));
    names(
        &msg,
        &[
            "system.call_timeout",
            "\"5 parsecs\"",
            "\"250ms\"",
            "\"5s\"",
        ],
    );
    // A bare number has no unit.
    let msg = refused(&edit("idle_timeout = \"60s\"", "idle_timeout = 60"));
    names(
        &msg,
        &["system.idle_timeout", "60", "quoted number with a unit"],
    );
    let msg = refused(&edit(
        "policy = \"drop_newest\"\ncapacity = 1024",
        "policy = \"block\"\ncapacity = 8\nsend_timeout = \"soon\"",
    ));
    names(
        &msg,
        &["mailbox.todo_server.send_timeout", "\"soon\"", "\"5s\""],
    );
}

#[test]
fn zero_duration() {
    let msg = refused(&edit("call_timeout = \"5s\"", "call_timeout = \"0s\""));
    names(&msg, &["system.call_timeout", "\"0s\"", "above zero"]);
}

#[test]
fn zero_or_negative_capacity_and_counts() {
    let msg = refused(&edit("capacity = 1024", "capacity = 0"));
    names(&msg, &["mailbox.todo_server.capacity", "0", "at least 1"]);
    let msg = refused(&edit("capacity = 4096", "capacity = -3"));
    names(
        &msg,
        &["mailbox.database_worker.capacity", "-3", "at least 1"],
    );
    let msg = refused(&edit("workers = 3", "workers = 0"));
    names(&msg, &["database.workers", "0", "from 1 to 1024"]);
    let msg = refused(&edit("workers = 3", "workers = 5000"));
    names(&msg, &["database.workers", "5000", "from 1 to 1024"]);
    let msg = refused(&edit("max_live_servers = 100000", "max_live_servers = 0"));
    names(&msg, &["system.max_live_servers", "0", "at least 1"]);
}

#[test]
fn unknown_policy_name() {
    let msg = refused(&edit("policy = \"drop_newest\"", "policy = \"lifo\""));
    names(
        &msg,
        &[
            "mailbox.todo_server.policy",
            "\"lifo\"",
            "unbounded, drop_newest, drop_oldest, block, codel, coalesce",
        ],
    );
    // Issue 14, problem 7: the message read "is not a a policy".
    assert!(!msg.contains("a a "), "{msg}");
}

#[test]
fn unknown_ack_mode() {
    let msg = refused(&edit(
        "default_ack = \"applied\"",
        "default_ack = \"sometimes\"",
    ));
    names(
        &msg,
        &[
            "system.default_ack",
            "\"sometimes\"",
            "none, applied, durable",
        ],
    );
}

#[test]
fn unknown_backend() {
    let msg = refused(&edit("backend = \"sqlite\"", "backend = \"mysql\""));
    names(
        &msg,
        &[
            "storage.backend",
            "\"mysql\"",
            "files, sqlite, memory, postgres",
        ],
    );
}

#[test]
fn postgres_backend_needs_a_valid_url() {
    let pg = |url: &str| {
        edit(
            "backend = \"sqlite\"",
            &format!("backend = \"postgres\"\n{url}"),
        )
    };
    let msg = refused(&pg(""));
    names(&msg, &["storage.url", "missing", "postgres://"]);
    let msg = refused(&pg("url = \"postgres://u@h:notaport/db\""));
    names(&msg, &["storage.url", "not a PostgreSQL connection URL"]);
    let msg = refused(&pg("url = 5432"));
    names(&msg, &["storage.url", "5432", "quoted string"]);
    let msg = refused(&edit(
        "backend = \"sqlite\"",
        "backend = \"sqlite\"\nurl = \"postgres://u@h/db\"",
    ));
    names(&msg, &["storage.url", "only used by backend \"postgres\""]);
    for url in [
        "postgres://user@127.0.0.1:5433/db",
        "host=/tmp/sock port=5433 user=postgres dbname=x",
    ] {
        let c = Config::from_toml_str(&pg(&format!("url = \"{url}\""))).unwrap();
        assert_eq!(c.storage.backend, BackendKind::Postgres);
        assert_eq!(c.storage.url.as_deref(), Some(url));
        assert!(c
            .effective_settings()
            .contains(&format!("storage.url = {url}")));
    }
    let c = Config::from_toml_str(&pg("url = \"postgres://u:secret@h/db\"")).unwrap();
    let shown = c.effective_settings();
    assert!(
        !shown.contains("secret") && shown.contains("storage.url = (set"),
        "{shown}"
    );
}

#[test]
fn unknown_routing() {
    let msg = refused(&edit("routing = \"direct\"", "routing = \"random\""));
    names(&msg, &["database.routing", "\"random\"", "routed, direct"]);
}

#[test]
fn missing_required_parameter() {
    let msg = refused(&edit("capacity = 1024\n", ""));
    names(
        &msg,
        &["mailbox.todo_server.capacity", "missing", "whole number"],
    );
    let msg = refused(&edit(
        "policy = \"drop_newest\"\ncapacity = 1024",
        "policy = \"codel\"\ncapacity = 10\ntarget = \"5ms\"",
    ));
    names(
        &msg,
        &["mailbox.todo_server.interval", "missing", "duration"],
    );
    let msg = refused(&edit("policy = \"drop_newest\"\n", ""));
    names(
        &msg,
        &["mailbox.todo_server.policy", "missing", "drop_oldest"],
    );
    // A key of [system], [storage] or [database] left out is no mistake any more: it
    // keeps its built-in value (`a_file_holds_only_what_it_changes`). A mailbox
    // section is a policy with its parameters, so it is replaced whole.
}

/// Issue 14, problem 7: a file is laid over the built-in default, so it may hold
/// only what it changes. (Before, every section and key was required, and these
/// texts were refused with "missing"; `missing_section` is replaced by this test.)
#[test]
fn a_file_holds_only_what_it_changes() {
    let builtin = Config::builtin();
    let c = Config::from_toml_str("[system]\ndefault_ack=\"durable\"").unwrap();
    assert_eq!(c.system.default_ack, AckMode::Durable);
    assert_eq!(c.system.call_timeout, builtin.system.call_timeout);
    assert_eq!(
        (&c.storage, &c.database, &c.mailbox),
        (&builtin.storage, &builtin.database, &builtin.mailbox)
    );
    assert_eq!(Config::from_toml_str("").unwrap(), builtin);
    // Whole sections left out keep theirs.
    let c = Config::from_toml_str(&edit("[database]\nworkers = 3\nrouting = \"direct\"\n", ""))
        .unwrap();
    assert_eq!(c.database, builtin.database);
    let c =
        Config::from_toml_str(&edit("[mailbox.database]\npolicy = \"unbounded\"\n", "")).unwrap();
    assert_eq!(c.mailbox.database, builtin.mailbox.database);
    // A mailbox section replaces the role's policy whole: `unbounded` does not
    // inherit the built-in capacity of drop_newest.
    let c = Config::from_toml_str("[mailbox.todo_server]\npolicy = \"unbounded\"").unwrap();
    assert_eq!(c.mailbox.todo_server, Policy::Unbounded);
    assert_eq!(c.mailbox.database_worker, builtin.mailbox.database_worker);
    // A typo in a one-line file names the key, not a missing section.
    let msg = refused("[system]\ndefault_ak = \"durable\"");
    names(&msg, &["system.default_ak", "unknown key", "default_ack"]);
    assert!(!msg.contains("storage"), "{msg}");
}

#[test]
fn inconsistent_codel_parameters() {
    let msg = refused(&edit(
        "policy = \"drop_newest\"\ncapacity = 1024",
        "policy = \"codel\"\ncapacity = 10\ntarget = \"50ms\"\ninterval = \"5ms\"",
    ));
    names(
        &msg,
        &[
            "mailbox.todo_server",
            "interval",
            "\"5ms\"",
            "\"50ms\"",
            "at least target",
        ],
    );
}

#[test]
fn toml_syntax_error_names_the_line() {
    let msg = refused(&edit("workers = 3", "workers = = 3"));
    names(&msg, &["line", "workers"]);
}

#[test]
fn errors_from_a_file_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, edit("routing = \"direct\"", "routing = \"random\"")).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "database.routing"));
    names(
        &err.to_string(),
        &["mine.toml", "database.routing", "\"random\""],
    );
    let err = Config::load(&dir.path().join("absent.toml")).unwrap_err();
    names(&err.to_string(), &["absent.toml"]);
}

fn policy_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_policy_file_loads_and_says_what_it_trades() {
    let files = policy_files();
    assert!(files.len() >= 6, "{files:?}");
    for f in &files {
        let config = Config::load(f).unwrap_or_else(|e| panic!("{e}"));
        config.validate().unwrap();
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with('#'),
            "{} opens without a comment",
            f.display()
        );
        assert!(
            text.contains("Trades"),
            "{} does not say what it trades",
            f.display()
        );
        // What the file says survives a round trip through the serialized form.
        let again = Config::from_toml_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config, "{}", f.display());
    }
    let named: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "book",
        "drop-oldest",
        "drop-newest",
        "block",
        "codel",
        "coalesce",
    ] {
        assert!(
            named.iter().any(|n| n == want),
            "policies/{want}.toml missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_file_runs_the_system() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let list = ListName::new("check").unwrap();
    for f in policy_files() {
        let mut config = Config::load(&f).unwrap();
        config.storage.backend = BackendKind::Memory;
        let sys = TodoSystem::start(&config, Path::new("unused"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        sys.add_entry(&list, date, "x", Some(AckMode::Durable))
            .await
            .unwrap();
        assert_eq!(
            sys.entries(&list, None).await.unwrap().len(),
            1,
            "{}",
            f.display()
        );
        sys.shutdown().await;
    }
}

#[test]
fn the_builtin_default_is_policies_coalesce_toml() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/coalesce.toml");
    assert_eq!(Config::builtin(), Config::load(&path).unwrap());
    assert_eq!(
        Config::DEFAULT_TOML,
        std::fs::read_to_string(&path).unwrap()
    );
    let c = Config::builtin();
    assert_eq!(
        c.mailbox.database_worker,
        Policy::Coalesce { capacity: 4096 }
    );
    assert_eq!(c.system.default_ack, AckMode::Applied);
}

#[test]
fn the_postgres_example_loads() {
    let c = Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/postgres.toml"
    )))
    .unwrap();
    assert_eq!(c.storage.backend, BackendKind::Postgres);
    assert!(c.storage.url.as_deref().unwrap().starts_with("postgres://"));
}

#[test]
fn the_cluster_example_loads_and_needs_only_a_node_id() {
    let c = Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/cluster.toml"
    )))
    .unwrap();
    assert_eq!(c.storage.backend, BackendKind::Postgres);
    let cluster = c.cluster.expect("a [cluster] section");
    assert_eq!(
        cluster.node_id, None,
        "each node gives its own with --node-id"
    );
    assert_eq!(cluster.shards, 256);
    assert!(cluster.terms().is_ok());
}

#[test]
fn the_concurrency_limit_is_on_by_default_and_a_file_may_set_part_of_it() {
    let c = Config::from_toml_str("").unwrap();
    assert!(c.limit.enabled);
    let c = Config::from_toml_str("[limit]\nmax = 512").unwrap();
    assert_eq!(c.limit.max, 512);
    assert_eq!(c.limit.min, Config::builtin().limit.min);
    let c = Config::from_toml_str("[limit]\nenabled = false").unwrap();
    assert!(!c.limit.enabled);
}

#[test]
fn concurrency_limit_bounds_out_of_order_are_refused() {
    names(
        &refused("[limit]\nmin = 100\ninitial = 10"),
        &["limit", "min = 100", "1 <= min <= initial <= max"],
    );
    names(&refused("[limit]\nmin = 0"), &["limit", "min = 0"]);
    names(
        &refused("[limit]\ntolerance_percent = 50"),
        &["limit.tolerance_percent", "50", "100 or more"],
    );
    names(
        &refused("[limit]\nsize = 3"),
        &["limit", "size", "unknown key"],
    );
}
