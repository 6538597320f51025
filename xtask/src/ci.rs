//! `cargo xtask ci`: the steps of `.ci/run`, in the same order, by spawning cargo.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{cargo_command, workspace_root};

/// The PostgreSQL database the second test run uses, as in `.ci/run`.
const CI_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The Redis server the second test run may use, as in `.ci/run`.
const CI_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// One CI step: a title, cargo arguments and extra environment variables.
struct Step {
    title: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const STEPS: &[Step] = &[
    Step { title: "cargo fmt --check", args: &["fmt", "--all", "--check"], env: &[] },
    Step { title: "cargo clippy", args: &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], env: &[] },
    Step { title: "tests on SQLite", args: &["test", "--workspace"], env: &[] },
    Step {
        title: "tests on PostgreSQL",
        args: &["test", "--workspace"],
        env: &[("TEST_DATABASE_URL", CI_POSTGRES_URL), ("TEST_REDIS_URL", CI_REDIS_URL)],
    },
];

/// Runs every step from the workspace root and stops at the first that fails.
///
/// # Errors
/// When cargo cannot be started or a step fails.
pub fn run() -> anyhow::Result<()> {
    let cargo = cargo_command();
    for step in STEPS {
        println!("== {}", step.title);
        let status = Command::new(&cargo)
            .args(step.args)
            .envs(step.env.iter().copied())
            .env("CARGO_TERM_COLOR", "never")
            .current_dir(workspace_root())
            .status()
            .with_context(|| format!("cannot run {cargo}"))?;
        if !status.success() {
            bail!("step `{}` failed ({status})", step.title);
        }
    }
    println!("== all CI steps passed");
    Ok(())
}
