//! `scripts/test`, the README's one test command, run with stand-in tools on PATH:
//! it names what to install when it cannot, and hands its arguments to `cargo test`.

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
