//! The layering of the workspace, checked on every `cargo test --workspace`: see `xtask::layering`.

use xtask::layering::DependencyGraph;

#[test]
fn crates_keep_their_layering() {
    let graph = DependencyGraph::of_workspace().unwrap();
    // A check that saw no edges would pass vacuously; the HTTP binary must be seen reaching actix-web.
    assert!(graph.path("rental-api", "actix-web").is_some(), "the dependency graph looks empty");
    let violations = graph.violations().unwrap();
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(report.is_empty(), "layering violations:\n{}", report.join("\n"));
}
