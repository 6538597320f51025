//! `cargo xtask dashboard-bench`: the uncached dashboard (`AnalyticsStore::dashboard`, the code the API runs)
//! timed on a PostgreSQL database of its own, seeded with `generate_series` (xtask/sql/dashboard_bench_seed.sql:
//! 1,000,000 users, 10,000 products, 1,000,000 orders with a line and an invoice each) when `--seed` is given.
//! The seed writes beside the repositories, so it ends with the counters' repair
//! (`DashboardCounters::repair`). Both the dashboard the API runs (counters plus range statements) and the
//! aggregates over the tables it replaced (`dashboard_from_tables`) are timed.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rental_repo::{AnalyticsRepo, AnalyticsStore, Backend, BackoffPolicy, DashboardCounters, Database, DatabaseConfig};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

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
    /// Recompute the dashboard's counters from the tables first (done after every seed anyway).
    #[arg(long)]
    pub repair: bool,
    /// Time only the dashboard the API runs, not also the aggregates over the tables.
    #[arg(long)]
    pub skip_tables: bool,
    /// Also time this many user creations with the counters' upsert against as many without it (the same
    /// statements as `UserRepo::create` and `UnitOfWork::commit`), one at a time and from 16 tasks at once;
    /// the users are deleted afterwards and the counters repaired.
    #[arg(long, default_value_t = 0)]
    pub write_cost: u32,
}

/// Options of `cargo xtask repair-counters`.
#[derive(Debug, clap::Args)]
pub struct RepairCountersArgs {
    /// The database (`sqlite://…` or `postgres://…`), migrated.
    #[arg(long)]
    pub database_url: String,
}

/// Recomputes the dashboard's counters from the tables and prints each figure.
///
/// # Errors
/// When the database cannot be reached or a statement fails (nothing changes then).
pub async fn repair_counters(args: RepairCountersArgs) -> anyhow::Result<()> {
    let db = Database::connect(&DatabaseConfig::with_url(&args.database_url))
        .await
        .context("cannot connect to the database")?;
    let counters = DashboardCounters::new(db);
    let started = Instant::now();
    let rows = counters.repair().await.context("the counters' repair failed")?;
    println!("counters repaired ({rows} rows) in {:.1} s", started.elapsed().as_secs_f64());
    for (name, value) in counters.totals().await? {
        println!("{name} {value}");
    }
    Ok(())
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
        // The migrations hold an advisory lock on one connection while they run on another: not on the
        // single connection of the seed.
        let migrator = Database::connect(&DatabaseConfig::with_url(&args.database_url))
            .await
            .context("cannot connect to the bench database")?;
        migrator.migrate(&BackoffPolicy::default()).await.context("cannot apply migrations")?;
        drop(migrator);
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
    if args.seed || args.repair {
        let started = Instant::now();
        let rows = DashboardCounters::new(db.clone()).repair().await.context("the counters' repair failed")?;
        println!("counters repaired ({rows} rows) in {:.1} s", started.elapsed().as_secs_f64());
    }
    let repo = AnalyticsRepo::new(db.clone());
    let record = repo.dashboard(chrono::Utc::now()).await.context("the dashboard failed")?;
    println!(
        "users {} (active {}), orders by status {:?}, held now {} of {}",
        record.users_total, record.users_active, record.orders_by_status, record.held_now, record.capacity
    );
    time("dashboard (counters + ranges)", args.runs, async || repo.dashboard(chrono::Utc::now()).await).await?;
    if !args.skip_tables {
        let at = chrono::Utc::now();
        let (counted, aggregated) = (repo.dashboard(at).await?, repo.dashboard_from_tables(at).await?);
        if counted != aggregated {
            bail!("the counters disagree with the tables:\n{counted:?}\n{aggregated:?}");
        }
        println!("the counters' dashboard equals the aggregates' at {at}");
        time("dashboard_from_tables (aggregates)", args.runs, async || {
            repo.dashboard_from_tables(chrono::Utc::now()).await
        })
        .await?;
    }
    if args.write_cost > 0 {
        write_cost(&args.database_url, args.write_cost).await?;
    }
    Ok(())
}

/// Prints what the counters cost a user creation: `n` creations with and without them, alternated in rounds
/// so that both see the same machine, one at a time and from 16 tasks at once.
async fn write_cost(url: &str, n: u32) -> anyhow::Result<()> {
    let config =
        DatabaseConfig { max_connections: Some(20), min_connections: Some(0), ..DatabaseConfig::with_url(url) };
    let db = Database::connect(&config).await.context("cannot connect to the bench database")?;
    for tasks in [1_u32, 16] {
        let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
        for round in 0..4 {
            for counted in [true, false] {
                let started = Instant::now();
                let workers: Vec<_> = (0..tasks)
                    .map(|task| {
                        let db = db.clone();
                        tokio::spawn(async move {
                            for i in (task..n / 4).step_by(tasks as usize) {
                                let email = format!("wc-{counted}-{tasks}-{round}-{i}@example.com");
                                create_user(&db, &email, counted).await?;
                            }
                            anyhow::Ok(())
                        })
                    })
                    .collect();
                for worker in workers {
                    worker.await??;
                }
                *(if counted { &mut with } else { &mut without }) += started.elapsed();
            }
        }
        let per = |d: Duration| ms(d) / f64::from(n);
        println!(
            "{n} user creations from {tasks} task(s): with the counters {:.3} ms each, without {:.3} ms each \
             (ratio {:.2})",
            per(with),
            per(without),
            with.as_secs_f64() / without.as_secs_f64()
        );
    }
    db.connection().execute_unprepared("DELETE FROM users WHERE email LIKE 'wc-%'").await?;
    DashboardCounters::new(db).repair().await.context("the counters' repair failed")?;
    Ok(())
}

/// One user with the customer role: the two INSERTs `UserRepo::create` sends, in a transaction, and with
/// `counted` also the counters' upsert `UnitOfWork::commit` sends for it (users_active and users_total in the
/// user's slot), so that the difference is the counters' alone (no query building on either side).
async fn create_user(db: &Database, email: &str, counted: bool) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let id = uuid::Uuid::now_v7();
    let txn = db.connection().begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO users (id, email, full_name, password_hash, is_active, is_superuser, created_at, updated_at) \
         VALUES ($1, $2, 'Write Cost', NULL, TRUE, FALSE, $3, $3)",
        [id.into(), email.into(), now.into()],
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO user_roles (user_id, role, created_at) VALUES ($1, 'customer', $2)",
        [id.into(), now.into()],
    ))
    .await?;
    if counted {
        // The slot as rental_repo's slot_of picks it: the id's last byte modulo the 64 slots.
        let slot = i16::from(id.as_bytes()[15] % 64);
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO dashboard_counters (name, slot, value) VALUES ($1, $2, $3), ($4, $5, $6) \
             ON CONFLICT (name, slot) DO UPDATE SET value = dashboard_counters.value + excluded.value",
            ["users_active".into(), slot.into(), 1_i64.into(), "users_total".into(), slot.into(), 1_i64.into()],
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Runs `dashboard` once to warm up, then `runs` times, and prints the min, median and max.
async fn time<T>(what: &str, runs: u32, dashboard: impl AsyncFn() -> rental_repo::RepoResult<T>) -> anyhow::Result<()> {
    dashboard().await.context("the dashboard failed")?;
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        dashboard().await.context("the dashboard failed")?;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "{what}, uncached, {} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
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
