//! `cargo xtask ci`: the steps of `.ci/run`, in the same order, by spawning cargo.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::layering::DependencyGraph;
use crate::{cargo_command, workspace_root};

/// The PostgreSQL database the second test run uses, as in `.ci/run`.
const CI_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The Redis server the second test run may use, as in `.ci/run`.
const CI_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A database the tests run on: its title and the environment that selects it.
struct TestRun {
    title: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const TEST_RUNS: &[TestRun] = &[
    TestRun { title: "SQLite", env: &[] },
    TestRun { title: "PostgreSQL", env: &[("TEST_DATABASE_URL", CI_POSTGRES_URL), ("TEST_REDIS_URL", CI_REDIS_URL)] },
];

/// Runs every step from the workspace root and stops at the first that fails: formatting, lints, then on each
/// database the workspace's tests and every crate's tests alone (`cargo test -p <crate>`).
///
/// # Errors
/// When cargo cannot be started or a step fails.
pub fn run() -> anyhow::Result<()> {
    step("cargo fmt --check", &["fmt", "--all", "--check"], &[])?;
    step("cargo clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    let crates = DependencyGraph::of_workspace()?.members().to_vec();
    for run in TEST_RUNS {
        step(&format!("tests on {}", run.title), &["test", "--workspace"], run.env)?;
        for name in &crates {
            step(&format!("tests of {name} alone on {}", run.title), &["test", "-p", name], run.env)?;
        }
    }
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
