//! Architecture invariants checked against the source tree, like `crates/engine/tests/purity.rs`:
//!
//! - the folders of `crates/server/src` import each other only in the directions
//!   ARCHITECTURE.md documents ("Folders of `crates/server/src`"), so there is no import cycle
//!   between them;
//! - only `clock.rs` reads the wall clock;
//! - the one door to case data: only `privacy/authz.rs` (and the operator's evidence export)
//!   obtains a request's `store::Authorized`, and the server's own reads
//!   (`Authorized::system`) stand only in the modules that are no one's request;
//! - every crate's "may not depend on" column of ARCHITECTURE.md's codemap holds for the
//!   `Cargo.toml` files (direct dependencies, and those a workspace crate brings in).

#![allow(clippy::unwrap_used)] // Tests state their expectations with unwrap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The source without `//` comments (doc links are not imports).
fn code(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segments of every `crate::…` path in `src`, including each item of a grouped
/// `use crate::{a::x, b}`.
fn crate_paths(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` or an identifier ending in `crate`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Items at the top level of the group, up to its closing brace.
            let (mut depth, mut item, mut items) = (0usize, String::new(), Vec::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 && c != ',' {
                    item.push(c);
                }
            }
            items.push(item);
            for item in items {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    out.insert(first.to_owned());
                }
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !first.is_empty() {
                out.insert(first);
            }
        }
    }
    out
}

/// The folders of `crates/server/src` and the folders each may import, as ARCHITECTURE.md
/// documents them (lowest first). Keep the two in step.
const FOLDERS: &[(&str, &[&str])] = &[
    ("http", &[]),
    ("cluster_node", &[]),
    ("privacy", &["http"]),
    ("live", &["cluster_node", "privacy", "http"]),
    ("pipeline", &["cluster_node", "live", "http"]),
    ("ingest", &["pipeline", "http"]),
    ("court", &["live", "privacy", "http"]),
    ("alerts", &["live", "privacy", "http"]),
    (
        "api",
        &[
            "alerts",
            "court",
            "ingest",
            "pipeline",
            "live",
            "cluster_node",
            "privacy",
            "http",
        ],
    ),
];

/// Items of the crate root every folder may use: the state handed to every handler, the
/// configuration, the clock and the error of `start` (the listeners bind inside it). `clock`
/// and `config` import no folder (checked below); `AppState` holds the folders' handles and
/// is the wiring's, not a folder's.
const ROOT_ITEMS: &[&str] = &["AppState", "StartError", "Config", "config", "clock"];

#[test]
fn the_allowed_directions_between_folders_have_no_cycle() {
    let allowed: BTreeMap<&str, &[&str]> = FOLDERS.iter().copied().collect();
    // Each folder may use only folders listed before it, so the table is a DAG.
    for (i, (folder, uses)) in FOLDERS.iter().enumerate() {
        for u in *uses {
            let pos = FOLDERS.iter().position(|(f, _)| f == u);
            assert!(
                pos.is_some_and(|p| p < i),
                "{folder} may use {u}, which is not a folder below it"
            );
            assert!(allowed.contains_key(u));
        }
    }
}

#[test]
fn every_folder_imports_only_the_folders_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = FOLDERS.iter().copied().collect();
    let mut found_folders = BTreeSet::new();
    let mut violations = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            found_folders.insert(name.clone());
            let Some(uses) = allowed.get(name.as_str()) else {
                violations.push(format!(
                    "src/{name}/ is not in the folder table (ARCHITECTURE.md and FOLDERS)"
                ));
                continue;
            };
            for file in rust_files(&p) {
                let text = code(&read(&file));
                assert!(
                    !text.contains("super::super"),
                    "{}: reach other folders by `crate::` paths",
                    file.display()
                );
                for first in crate_paths(&text) {
                    let ok = first == name
                        || uses.contains(&first.as_str())
                        || ROOT_ITEMS.contains(&first.as_str());
                    if !ok {
                        violations.push(format!(
                            "{} uses crate::{first}",
                            file.strip_prefix(&src).unwrap().display()
                        ));
                    }
                }
            }
        } else if name == "clock.rs" || name == "config.rs" {
            // The root leaves import no folder.
            for first in crate_paths(&code(&read(&p))) {
                if allowed.contains_key(first.as_str()) {
                    violations.push(format!("{name} uses crate::{first}"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
    let listed: BTreeSet<String> = allowed.keys().map(|s| s.to_string()).collect();
    assert_eq!(found_folders, listed, "folders on disk vs the table");
}

#[test]
fn only_the_clock_reads_the_wall_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in rust_files(&src) {
        if file.ends_with("clock.rs") {
            continue;
        }
        let text = code(&read(&file));
        for f in ["Timestamp::now", "SystemTime::now", "UNIX_EPOCH"] {
            assert!(
                !text.contains(f),
                "{} reads the wall clock ({f}); use AppState::clock",
                file.display()
            );
        }
    }
}

/// Where the server may read case data as itself (`store::Authorized::system`): no one's
/// request, so nothing to log. Each with why.
const SYSTEM_READS: &[(&str, &str)] = &[
    (
        "ingest/mod.rs",
        "the references of the impossible-jump check, shown to no one",
    ),
    (
        "pipeline/mod.rs",
        "at start, whether a backlog alert is still open, shown to no one",
    ),
    (
        "privacy/retention.rs",
        "the retention job: which incidents keep a party's data",
    ),
];

/// Where a request's token is obtained: the store's `authorize` appends the access-log
/// records; only the one door (and the operator's export, which logs first) calls it.
const AUTHORIZE_CALLERS: &[&str] = &["privacy/authz.rs", "privacy/evidence.rs"];

#[test]
fn only_the_one_door_obtains_a_token_and_system_reads_stay_in_their_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut system = BTreeSet::new();
    let mut authorize = BTreeSet::new();
    for file in rust_files(&src) {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = code(&read(&file));
        if text.contains("Authorized::system") {
            system.insert(rel.clone());
        }
        if text.contains(".authorize(") || text.contains("append_audit(") {
            authorize.insert(rel);
        }
    }
    let allowed: BTreeSet<String> = SYSTEM_READS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        system, allowed,
        "Authorized::system outside the modules listed in SYSTEM_READS (or one listed no longer uses it)"
    );
    let allowed: BTreeSet<String> = AUTHORIZE_CALLERS.iter().map(|f| f.to_string()).collect();
    assert!(
        authorize.is_subset(&allowed),
        "a request's token obtained outside the one door: {authorize:?}"
    );
}

/// The rows of ARCHITECTURE.md's codemap: (path, "may not depend on" cell), in order.
fn codemap() -> Vec<(String, String)> {
    let doc = read(&workspace().join("ARCHITECTURE.md"));
    let section = doc
        .split("## Codemap")
        .nth(1)
        .expect("ARCHITECTURE.md has a Codemap section");
    let section = section.split("\n## ").next().unwrap_or("");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split('|').collect();
            let path = cells[0]
                .trim()
                .trim_matches('`')
                .trim_end_matches('/')
                .to_owned();
            let forbidden = cells.last().unwrap().trim().to_owned();
            (path, forbidden)
        })
        .collect()
}

/// The package names of a manifest's normal and build dependencies (any target).
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let value: toml::Table = toml::from_str(&read(manifest)).unwrap();
    let mut tables = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        if let Some(t) = value.get(key).and_then(|v| v.as_table()) {
            tables.push(t.clone());
        }
    }
    if let Some(targets) = value.get("target").and_then(|v| v.as_table()) {
        for t in targets.values() {
            for key in ["dependencies", "build-dependencies"] {
                if let Some(d) = t.get(key).and_then(|v| v.as_table()) {
                    tables.push(d.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for t in tables {
        for (name, spec) in t {
            let package = spec
                .get("package")
                .and_then(|p| p.as_str())
                .map(str::to_owned)
                .unwrap_or(name);
            out.insert(package);
        }
    }
    out
}

const HTTP_CRATES: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "http",
    "reqwest",
    "tower",
    "tower-http",
    "utoipa",
    "utoipa-axum",
    "tokio-tungstenite",
    "server",
];

/// Whether dependency `dep` is what the codemap's word names.
fn named(word: &str, dep: &str, below: &[String]) -> Option<bool> {
    Some(match word {
        "tokio" => dep == "tokio" || dep.starts_with("tokio-"),
        "HTTP" => HTTP_CRATES.contains(&dep),
        "anything below" => below.iter().any(|b| b == dep),
        "—" => false,
        w if !w.contains(' ') => w == dep,
        _ => return None,
    })
}

#[test]
fn every_crate_keeps_the_codemaps_may_not_depend_on_column() {
    let root = workspace();
    let rows = codemap();
    let crates: Vec<(String, String)> = rows
        .iter()
        .filter(|(path, _)| {
            path.starts_with("crates/") && root.join(path).join("Cargo.toml").is_file()
        })
        .map(|(path, f)| (path.trim_start_matches("crates/").to_owned(), f.clone()))
        .collect();
    // Every crate of the workspace has its row.
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let p = entry.unwrap().path();
        if p.join("Cargo.toml").is_file() {
            on_disk.insert(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let in_map: BTreeSet<String> = crates.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(on_disk, in_map, "crates on disk vs rows of the codemap");

    let direct: BTreeMap<String, BTreeSet<String>> = on_disk
        .iter()
        .map(|c| {
            (
                c.clone(),
                dependencies(&root.join("crates").join(c).join("Cargo.toml")),
            )
        })
        .collect();
    // A workspace crate brings its own dependencies with it.
    let closure = |c: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![c.to_owned()];
        while let Some(k) = stack.pop() {
            for d in direct.get(&k).into_iter().flatten() {
                if seen.insert(d.clone()) && direct.contains_key(d) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    };
    let mut violations = Vec::new();
    for (i, (krate, forbidden)) in crates.iter().enumerate() {
        let below: Vec<String> = crates[i + 1..].iter().map(|(c, _)| c.clone()).collect();
        let deps = closure(krate);
        for word in forbidden
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            let word = word.trim_matches('`');
            assert!(
                named(word, "", &below).is_some(),
                "{krate}: the codemap's \"{word}\" names no crates this test knows"
            );
            for dep in &deps {
                if named(word, dep, &below) == Some(true) {
                    violations.push(format!("{krate} depends on {dep} ({word})"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_codemaps_folder_rows_say_what_the_folder_table_allows() {
    let allowed: BTreeMap<&str, &[&str]> = FOLDERS.iter().copied().collect();
    let rows: BTreeMap<String, String> = codemap()
        .into_iter()
        .filter_map(|(path, f)| {
            let folder = path.strip_prefix("crates/server/src/")?;
            allowed.contains_key(folder).then(|| (folder.to_owned(), f))
        })
        .collect();
    for (folder, uses) in &allowed {
        let column = rows
            .get(*folder)
            .unwrap_or_else(|| panic!("the codemap has no row for crates/server/src/{folder}"));
        let named: BTreeSet<&str> = if column == "every other folder" {
            allowed.keys().copied().filter(|f| f != folder).collect()
        } else {
            column
                .split(',')
                .map(str::trim)
                .filter(|w| allowed.contains_key(w))
                .collect()
        };
        let expected: BTreeSet<&str> = allowed
            .keys()
            .copied()
            .filter(|f| f != folder && !uses.contains(f))
            .collect();
        assert_eq!(
            named, expected,
            "crates/server/src/{folder}: the codemap's \"may not depend on\" vs FOLDERS"
        );
    }
}

#[test]
fn the_path_scanner_sees_grouped_and_inline_paths() {
    let paths = crate_paths(
        "use crate::{http::dto, privacy::authz::{self, check}};\nlet x = crate::live::Hub::new();\n$crate::nope",
    );
    assert_eq!(
        paths,
        ["http", "live", "privacy"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}
