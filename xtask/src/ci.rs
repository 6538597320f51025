//! `cargo xtask ci`: the steps of `.ci/run`, in the same order, by spawning cargo.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::layering::DependencyGraph;
use crate::{cargo_command, workspace_root};

/// The PostgreSQL database the second test run uses, as in `.ci/run`.
const CI_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The Redis server the second test run may use, as in `.ci/run`.
const CI_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The binary crate: `.ci/run`'s contract step builds it alone, so the per-crate step leaves it out.
const BINARY_CRATE: &str = "rental-api";

/// Runs every step from the workspace root and stops at the first that fails, as `.ci/run` does: formatting,
/// lints, the workspace's tests on SQLite, every library crate's tests alone (`cargo test -p <crate>`, once: the
/// features it is built with do not depend on the database), then the workspace's tests on PostgreSQL.
///
/// # Errors
/// When cargo cannot be started or a step fails.
pub fn run() -> anyhow::Result<()> {
    step("cargo fmt --check", &["fmt", "--all", "--check"], &[])?;
    step("cargo clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    step("tests on SQLite", &["test", "--workspace"], &[])?;
    let crates = DependencyGraph::of_workspace()?.members().to_vec();
    for name in crates.iter().filter(|name| name.as_str() != BINARY_CRATE) {
        step(&format!("tests of {name} alone on SQLite"), &["test", "-p", name], &[])?;
    }
    step(
        "tests on PostgreSQL",
        &["test", "--workspace"],
        &[("TEST_DATABASE_URL", CI_POSTGRES_URL), ("TEST_REDIS_URL", CI_REDIS_URL)],
    )?;
    println!("== all CI steps passed");
    Ok(())
}

/// Runs one cargo command from the workspace root.
fn step(title: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let cargo = cargo_command();
    println!("== {title}");
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .env("CARGO_TERM_COLOR", "never")
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("step `{title}` failed ({status})");
    }
    Ok(())
}
