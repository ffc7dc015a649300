//! `scripts/test`, the README's one test command, run with stand-in tools on PATH:
//! it names what to install when it cannot, asks only for what the tests its
//! arguments select need, and hands its arguments to `cargo test`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test")
}

/// A directory for PATH holding `bash` and `dirname` (the real ones) plus the given
/// stand-in scripts, so the real `prometheus`, `chromium`, `sudo`, `apt-get` and `cargo` are absent
/// (PostgreSQL's binaries may still be found in /usr/lib/postgresql/*/bin).
fn fake_path(dir: &Path, fakes: &[(&str, &str)]) -> String {
    for tool in ["bash", "dirname"] {
        let real = which(tool);
        std::os::unix::fs::symlink(real, dir.join(tool)).unwrap();
    }
    for (name, body) in fakes {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!{}\n{body}\n", which("bash").display())).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.display().to_string()
}

fn which(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap().split(':') {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("{tool} not on PATH");
}

fn run(path: &str, args: &[&str]) -> Output {
    Command::new(which("bash"))
        .arg(script())
        .args(args)
        .env_clear()
        .env("PATH", path)
        .output()
        .expect("run scripts/test")
}

#[test]
fn without_root_or_sudo_it_names_the_packages_to_install_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    // Not root (id -u says 1000), no sudo, no prometheus; cargo must not be reached.
    let path = fake_path(
        dir.path(),
        &[("id", "echo 1000"), ("cargo", "echo cargo-was-run; exit 0")],
    );
    let out = run(&path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("apt-get install prometheus"), "{stderr}");
    assert!(stderr.contains("not root, no sudo"), "{stderr}");
    assert!(!stdout.contains("cargo-was-run"), "{stdout}");
}

#[test]
fn with_everything_present_it_runs_cargo_test_no_fail_fast_with_the_extra_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_path(
        dir.path(),
        &[
            ("id", "echo 1000"),
            ("prometheus", "exit 0"),
            ("chromium", "exit 0"),
            ("initdb", "exit 0"),
            ("pg_ctl", "exit 0"),
            ("cargo", r#"echo "cargo $*"; exit 3"#),
        ],
    );
    let out = run(&path, &["--test", "http", "some_filter"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cargo test --no-fail-fast --test http some_filter"),
        "{stdout}"
    );
    // cargo's exit status is the script's.
    assert_eq!(out.status.code(), Some(3));
}

/// Not root, no sudo, none of the tools; `cargo` stands in and exits 3.
fn run_bare(args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = fake_path(
        dir.path(),
        &[("id", "echo 1000"), ("cargo", r#"echo "cargo $*"; exit 3"#)],
    );
    let out = run(&path, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stdout, stderr)
}

#[test]
fn a_subset_whose_tests_need_no_tool_asks_for_no_package() {
    for args in [
        &["--test", "http", "some_filter"][..],
        &["-p", "sluicegate"],
        &["-p", "sluicegate-todo", "--lib"],
        &["--workspace", "--exclude", "sluicegate-todo"],
        &["--features", "serde", "--test", "repo"],
    ] {
        let (code, stdout, stderr) = run_bare(args);
        assert!(!stderr.contains("apt-get"), "{args:?}: {stderr}");
        assert!(
            stdout.contains(&format!("cargo test --no-fail-fast {}", args.join(" "))),
            "{args:?}: {stdout}"
        );
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
    }
}

#[test]
fn a_subset_asks_only_for_the_packages_of_the_test_binaries_it_selects() {
    // `serve` runs Prometheus and Chromium (and PostgreSQL, which may be installed here).
    let (code, stdout, stderr) = run_bare(&["--test", "serve"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("prometheus: "), "{stderr}");
    assert!(stderr.contains("chromium: "), "{stderr}");
    // schemathesis runs only without arguments.
    assert!(!stderr.contains("python3-venv"), "{stderr}");
    assert!(!stdout.contains("cargo test"), "{stdout}");
    // A name filter alone may run every binary, so it asks for every tool.
    let (code, _, stderr) = run_bare(&["some_filter"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("prometheus: "), "{stderr}");
    assert!(stderr.contains("chromium: "), "{stderr}");
}

/// The binaries whose sources use the PostgreSQL of the tests (the support module
/// `pg`), from their files.
fn binaries_using_postgres(tests: &Path) -> Vec<String> {
    // In two pieces, so that this file does not match.
    let needle = concat!("support", "::pg");
    let mut found = Vec::new();
    for dir in std::fs::read_dir(tests).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.join("main.rs").is_file() {
            continue;
        }
        let uses_pg = std::fs::read_dir(&dir).unwrap().any(|f| {
            let f = f.unwrap().path();
            f.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&f).unwrap().contains(needle)
        });
        if uses_pg {
            found.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

#[test]
fn the_script_knows_every_test_binary_that_starts_a_postgresql() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let script = std::fs::read_to_string(script()).unwrap();
    let using = binaries_using_postgres(&tests);
    assert!(using.contains(&"system".to_string()), "{using:?}");
    for binary in using {
        let entry = format!("[{binary}]=\"");
        let line = script.lines().find(|l| l.trim().starts_with(&entry));
        assert!(
            line.is_some_and(|l| l.contains("postgresql")),
            "scripts/test's TOOLS_OF_BINARY must list postgresql for {binary}"
        );
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == "scripts/test"), "{ci}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("\nscripts/test "), "README quick start");
    assert!(
        !readme.contains("0.0.0.0"),
        "README binds something to every interface"
    );
}
