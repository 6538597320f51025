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
