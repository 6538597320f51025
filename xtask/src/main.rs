//! `cargo xtask <command>`: see the crate documentation of the `xtask` library.

use clap::{Parser, Subcommand};
use xtask::{ci, dashboard_bench, layering, loadtest, queue_bench, runtime, seed};

/// Automation for the rental backend.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the CI steps of `.ci/run`: fmt check, clippy -D warnings, tests on SQLite, tests on PostgreSQL.
    Ci,
    /// Check that the crates keep their layering (also run as a test by `cargo test --workspace`).
    CheckLayering,
    /// Fill a database with many users, quickly, and print the insert rate.
    ///
    /// E-mails are `seed-<run id>-<i>@example.com`, unique across runs; names are "Seed User <i>"; every user is a
    /// customer, 90% are active. All seeded users share ONE argon2id hash, computed once, of the password
    /// `seed-password-1`.
    Seed(seed::SeedArgs),
    /// Load-test a running rental API (loopback only) and print the results as a Markdown table.
    ///
    /// Needs a built server (`cargo build --release -p rental-api`). With --spawn-server it starts
    /// target/release/rental-api itself; otherwise point --base-url at a running one, pass an admin's
    /// --email/--password and --server-pid for the memory figure.
    Loadtest(loadtest::LoadtestArgs),
    /// Measure the durable job queue in this process: no-op jobs per second through 1..n worker instances,
    /// the cost of an enqueue in a unit of work, and the enqueue-to-start latency on an idle queue.
    ///
    /// Wants a fresh database (it deletes its own `bench.*` jobs and refuses a queue holding other jobs).
    QueueBench(queue_bench::QueueBenchArgs),
    /// Time the uncached staff dashboard on PostgreSQL, after seeding (with --seed) 1,000,000 users and
    /// 1,000,000 orders by generate_series into a database of its own.
    DashboardBench(dashboard_bench::DashboardBenchArgs),
    /// Recompute the dashboard's counters (`dashboard_counters`) from the tables, in one transaction, on a
    /// migrated SQLite or PostgreSQL database; safe while the API runs. For counters that drifted after writes
    /// made beside the repositories (SQL by hand, a restore of one table).
    RepairCounters(dashboard_bench::RepairCountersArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Ci => ci::run(),
        Task::CheckLayering => layering::run(),
        Task::Seed(args) => runtime()?.block_on(seed::run(args)),
        Task::Loadtest(args) => runtime()?.block_on(loadtest::run(args)),
        Task::QueueBench(args) => runtime()?.block_on(queue_bench::run(args)),
        Task::DashboardBench(args) => runtime()?.block_on(dashboard_bench::run(args)),
        Task::RepairCounters(args) => runtime()?.block_on(dashboard_bench::repair_counters(args)),
    }
}
