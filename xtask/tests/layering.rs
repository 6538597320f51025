//! The layering of the workspace, checked on every `cargo test --workspace`: see `xtask::layering`.

use xtask::layering::DependencyGraph;
use xtask::public_api;

#[test]
fn crates_keep_their_layering() {
    let graph = DependencyGraph::of_workspace().unwrap();
    // A check that saw no edges would pass vacuously; the HTTP binary must be seen reaching actix-web.
    assert!(graph.path("rental-api", "actix-web").is_some(), "the dependency graph looks empty");
    let violations = graph.violations().unwrap();
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(report.is_empty(), "layering violations:\n{}", report.join("\n"));
}

#[test]
fn no_driver_type_is_reachable_from_the_service_api() {
    let report = public_api::check_workspace(&xtask::workspace_root()).unwrap();
    // A scan that inspected nothing would pass vacuously: the error chain must have been followed into the repo.
    for name in ["rental_service::ServiceError", "rental_repo::RepoError", "rental_repo::DatabaseError"] {
        assert!(report.inspected.contains(name), "{name} was not inspected: {:?}", report.inspected);
    }
    let leaks: Vec<String> = report.leaks.iter().map(ToString::to_string).collect();
    assert!(leaks.is_empty(), "driver types in rental-service's public API:\n{}", leaks.join("\n"));
}

/// The groundwork issue's rule for the code's shape: no Rust source file over 800 lines (a file that grows past
/// it is split along its concerns, as `payments/deposit/` and `cache/tests.rs` were).
#[test]
fn no_source_file_is_over_800_lines() {
    const LIMIT: usize = 800;
    let root = xtask::workspace_root();
    let mut pending = vec![root.join("crates"), root.join("bins"), root.join("xtask"), root.join("migrations")];
    let (mut seen, mut over) = (0, Vec::new());
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target" && name != "node_modules") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                seen += 1;
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > LIMIT {
                    over.push(format!("{} ({lines} lines)", path.strip_prefix(&root).unwrap().display()));
                }
            }
        }
    }
    assert!(seen > 100, "only {seen} Rust files found under {}", root.display());
    assert!(over.is_empty(), "source files over {LIMIT} lines:\n{}", over.join("\n"));
}
