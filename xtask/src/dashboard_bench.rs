//! `cargo xtask dashboard-bench`: the uncached dashboard (`AnalyticsStore::dashboard`, the code the API runs)
//! timed on a PostgreSQL database of its own, seeded with `generate_series` (xtask/sql/dashboard_bench_seed.sql:
//! 1,000,000 users, 10,000 products, 1,000,000 orders with a line and an invoice each) when `--seed` is given.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rental_repo::{AnalyticsRepo, AnalyticsStore, Backend, BackoffPolicy, Database, DatabaseConfig};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// The seed, split into statements at `;` + newline.
const SEED_SQL: &str = include_str!("../sql/dashboard_bench_seed.sql");

/// Options of `cargo xtask dashboard-bench`.
#[derive(Debug, clap::Args)]
pub struct DashboardBenchArgs {
    /// A PostgreSQL database of its own (e.g. `postgres://postgres@127.0.0.1:5432/cache_bench`); never `test`.
    #[arg(long)]
    pub database_url: String,
    /// Migrate and seed first; the database must hold no users.
    #[arg(long)]
    pub seed: bool,
    /// Timed runs of the dashboard, after one warm-up.
    #[arg(long, default_value_t = 10)]
    pub runs: u32,
}

/// Seeds (optionally) and prints the min, median and max of `--runs` uncached dashboards.
///
/// # Errors
/// When the database is not PostgreSQL, cannot be reached, is not empty before a seed, or a statement fails.
pub async fn run(args: DashboardBenchArgs) -> anyhow::Result<()> {
    // One connection: the seed's temporary tables and session settings live on it.
    let config = DatabaseConfig {
        max_connections: Some(1),
        min_connections: Some(1),
        ..DatabaseConfig::with_url(&args.database_url)
    };
    let db = Database::connect(&config).await.context("cannot connect to the bench database")?;
    if db.backend() != Backend::Postgres {
        bail!("the dashboard bench seeds with generate_series: PostgreSQL only");
    }
    let conn = db.connection();
    if args.seed {
        db.migrate(&BackoffPolicy::default()).await.context("cannot apply migrations")?;
        let users = conn
            .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT COUNT(*) AS n FROM users"))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if users > 0 {
            bail!("the bench database already holds {users} users: seed a fresh one");
        }
        let started = Instant::now();
        for statement in SEED_SQL.split(";\n").map(str::trim).filter(|s| !s.is_empty() && !is_comment(s)) {
            conn.execute_raw(Statement::from_string(DbBackend::Postgres, statement.to_owned()))
                .await
                .with_context(|| format!("seed statement failed: {}", first_line(statement)))?;
        }
        println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    }
    let repo = AnalyticsRepo::new(db.clone());
    let record = repo.dashboard(chrono::Utc::now()).await.context("the dashboard failed")?;
    println!(
        "users {} (active {}), orders by status {:?}, held now {} of {}",
        record.users_total, record.users_active, record.orders_by_status, record.held_now, record.capacity
    );
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        repo.dashboard(chrono::Utc::now()).await.context("the dashboard failed")?;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "uncached dashboard, {} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    Ok(())
}

fn is_comment(statement: &str) -> bool {
    statement.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

fn first_line(statement: &str) -> &str {
    statement.lines().find(|l| !l.trim_start().starts_with("--")).unwrap_or(statement)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}
