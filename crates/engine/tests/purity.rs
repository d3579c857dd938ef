//! Architecture invariant: the engine is pure. It depends on `domain` only (no tokio, no
//! store, no HTTP) and never touches a clock, the file system or the network.

use std::path::Path;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn manifest_depends_on_domain_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = read(&dir.join("Cargo.toml"));
    assert!(
        !manifest.contains("tokio"),
        "engine must not depend on tokio"
    );
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap_or("")
        .split("\n[")
        .next()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        deps,
        vec!["domain.workspace = true"],
        "engine dependencies: {deps:?}"
    );
}

#[test]
fn sources_read_no_clock_and_do_no_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![dir];
    let forbidden = [
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::env",
        "tokio::",
        "thread_rng",
    ];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{e}")) {
            let p = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let src = read(&p);
                for f in forbidden {
                    assert!(!src.contains(f), "{} uses {f}", p.display());
                }
            }
        }
    }
}
