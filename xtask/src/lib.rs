//! Project automation for the rental backend, run as `cargo xtask <command>`.
//!
//! Everything that would otherwise be a shell script lives here: the CI steps, seeding a database with many
//! users, the HTTP load generator, the job queue's benchmark and the check that the crates keep their layering. The library part exists
//! so that `tests/layering.rs` runs the same layering check under `cargo test --workspace`.
//!
//! xtask is a tool, not part of the product: it may depend on any crate of the workspace, and nothing may
//! depend on it.

pub mod ci;
pub mod dashboard_bench;
pub mod layering;
pub mod loadtest;
pub mod public_api;
pub mod queue_bench;
pub mod seed;
pub mod seed_catalogue;
pub mod seed_orders;

use std::path::{Path, PathBuf};

/// The database used when neither `--database-url` nor `DATABASE_URL` is given: the binary's own default.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/rental.db?mode=rwc";

/// The workspace root (the parent of this crate's directory), where `cargo` commands and `target/` live.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The `cargo` that runs us (cargo sets `CARGO` for `cargo run` and `cargo test`), else the one on `PATH`.
pub fn cargo_command() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// A multi-threaded tokio runtime for the async commands.
///
/// # Errors
/// When the runtime cannot be built (no threads can be spawned).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")
}
