//! The service crate's modules form layers that point one way (the framework,
//! `sluicegate`, is a crate of its own below them all, so Cargo already keeps it
//! from naming any of them): a module of `todo/src/` may
//! name (through `crate::...` or a `super::` chain that leaves it) only modules of
//! its own or a lower layer. The order is written once, in [`LAYERS`]; `src/lib.rs`'s
//! Layout section and the README's Layout table describe the same order. A source
//! scan, comments ignored, so a new `use crate::config` in `domain/` fails here.

use std::path::{Path, PathBuf};

/// The library's top-level modules, lowest layer first. Each may use only those
/// listed before it.
const LAYERS: [&str; 8] = [
    "domain",
    "cluster",
    "storage",
    "config",
    "start",
    "service",
    "load",
    "experiment",
];

/// One place where a module names a module of a higher layer.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    names: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}` names `crate::{}`, a higher layer",
            self.file, self.line, self.from, self.names
        )
    }
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

/// `text` with `//` comments (doc comments included) blanked, lines kept.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `text` names: `crate::a`, each item of
/// `crate::{a, b::c}`, and `super::...::a` where the `super`s climb out of
/// `module_path` (the file's module, e.g. `["domain", "system"]`) to the crate
/// root. Each with its 1-based line.
fn named_modules(text: &str, module_path: &[String]) -> Vec<(usize, String)> {
    let code = without_comments(text);
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue; // part of a longer identifier, e.g. `my_crate::`
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident_at(&group[i..]);
                        out.push((line_of(at + "crate::{".len() + i), name.to_string()));
                    }
                    _ => {}
                }
            }
        } else {
            out.push((line_of(at), ident_at(rest).to_string()));
        }
    }
    for (at, _) in code.match_indices("super::") {
        if at >= "super::".len() && code[..at].ends_with("super::") {
            continue; // counted from the first `super` of the chain
        }
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups >= module_path.len() {
            out.push((line_of(at), ident_at(rest).to_string()));
        }
    }
    out
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `domain/system.rs` -> `[domain, system]`,
/// `domain/mod.rs` -> `[domain]`, `config.rs` -> `[config]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every place under `src` where a module names a higher layer's module.
fn violations(src: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    for module in LAYERS {
        let mut files = Vec::new();
        let single = src.join(format!("{module}.rs"));
        if single.is_file() {
            files.push(single);
        }
        if src.join(module).is_dir() {
            rust_files(&src.join(module), &mut files);
        }
        // A layer with no source is `every_module_of_the_library_has_a_layer`'s to report.
        let own = rank(module).unwrap();
        for file in files {
            let rel = file.strip_prefix(src).unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, named) in named_modules(&text, &module_path(rel)) {
                if rank(&named).is_some_and(|r| r > own) {
                    out.push(Violation {
                        file: format!("src/{}", rel.display()),
                        line,
                        from: module.to_string(),
                        names: named,
                    });
                }
            }
        }
    }
    out
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_names_a_higher_layer() {
    let found = violations(&src_dir());
    let listed: Vec<String> = found.iter().map(|v| v.to_string()).collect();
    assert!(
        found.is_empty(),
        "layers point down ({}), but:\n{}",
        LAYERS.join(" <- "),
        listed.join("\n")
    );
}

#[test]
fn every_module_of_the_library_has_a_layer() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';')
        })
        .collect();
    assert!(modules.contains(&"domain"), "lib.rs declares {modules:?}");
    for m in &modules {
        assert!(
            rank(m).is_some(),
            "src/lib.rs declares `{m}`, which LAYERS does not place"
        );
    }
    for m in LAYERS {
        assert!(
            modules.contains(&m),
            "LAYERS names `{m}`, which src/lib.rs does not declare"
        );
    }
}

#[test]
fn the_scan_finds_every_form_of_naming_a_module() {
    let text = "\
//! Docs may mention crate::service freely.
use crate::domain::AckMode;
use crate::{config::Config,
    cluster::{Shard, Lease}, storage};
fn f() { super::super::service::run(); crate::load::go(); } // crate::experiment
use super::sibling;
";
    let path = vec!["domain".to_string(), "system".to_string()];
    let found = named_modules(text, &path);
    assert_eq!(
        found,
        vec![
            (2, "domain".to_string()),
            (3, "config".to_string()),
            (4, "cluster".to_string()),
            (4, "storage".to_string()),
            (5, "load".to_string()),
            (5, "service".to_string()), // found by the second pass, for `super::`
        ]
    );
}

#[test]
fn lib_rs_layout_lists_the_layers_in_this_order() {
    // lib.rs's Layout section names each layer as a [`module`] link, lowest first.
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let layout = &lib[lib.find("# Layout").expect("lib.rs has a Layout section")..];
    let mut last = 0;
    for m in LAYERS {
        let at = layout
            .find(&format!("- [`{m}`]"))
            .unwrap_or_else(|| panic!("lib.rs's Layout has no item for `{m}`"));
        assert!(at >= last, "lib.rs's Layout lists `{m}` out of order");
        last = at;
    }
}
