//! `cargo xtask seed`: fills a database with many users through the repository's bulk insert.
//!
//! Batches of `--batch` users go through [`UserRepo::bulk_import`] (multi-row INSERTs in one transaction per
//! batch, duplicates caught by the unique index), `--concurrency` batches at a time. Every seeded user gets the same argon2id hash of
//! [`SEED_PASSWORD`], computed once: hashing a million passwords would take hours and prove nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, bail};
use argon2::Argon2;
use argon2::password_hash::PasswordHasher as _;
use indicatif::{ProgressBar, ProgressStyle};
use rental_domain::{Email, FullName, Role};
use rental_repo::{
    Backend, BackoffPolicy, CatalogueRepo, Database, DatabaseConfig, NewUserRecord, OrderImporter, UserRepo, UserStore,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::DEFAULT_DATABASE_URL;

/// The password of every seeded user.
pub const SEED_PASSWORD: &str = "seed-password-1";

/// Options of `cargo xtask seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Number of users to create.
    #[arg(long, default_value_t = 0)]
    pub users: u64,
    /// Number of products to create, each with two tracked units and a bulk stock level.
    #[arg(long, default_value_t = 0)]
    pub products: u64,
    /// Number of rental orders to create (1-3 lines each, with invoices), spread over the past two years and
    /// the next four months; needs customers and products, and a database without orders.
    #[arg(long, default_value_t = 0)]
    pub orders: u64,
    /// Categories the products are spread over.
    #[arg(long, default_value_t = 20)]
    pub categories: u64,
    /// Locations the stock is spread over.
    #[arg(long, default_value_t = 5)]
    pub locations: u64,
    /// Database to fill; migrations are applied first.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Users per bulk insert (one transaction each).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,
    /// Batches inserted at the same time, each on its own connection.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=32))]
    pub concurrency: u64,
    /// Keep every index during the load even when the tables start empty (by default, on PostgreSQL, the
    /// secondary non-unique indexes of empty tables are dropped for the load and rebuilt after it, as
    /// pg_restore does).
    #[arg(long)]
    pub keep_indexes: bool,
}

/// What every worker needs to build its batches.
#[derive(Debug)]
struct SeedPlan {
    /// Distinguishes the e-mails of this run from those of earlier runs.
    run_id: String,
    /// The shared argon2id PHC string.
    password_hash: String,
    users: u64,
    batch: u64,
    /// Index of the next batch to claim.
    next_batch: AtomicU64,
}

impl SeedPlan {
    /// The user with index `i`: `seed-<run>-<i>@example.com`, "Seed User i", a customer, active unless `i`
    /// ends in 9 (so 90% are active).
    fn user(&self, i: u64) -> anyhow::Result<NewUserRecord> {
        let email = Email::parse(&format!("seed-{}-{i}@example.com", self.run_id)).context("seed e-mail")?;
        let full_name = FullName::parse(&format!("Seed User {i}")).context("seed name")?;
        Ok(NewUserRecord {
            email,
            full_name,
            password_hash: Some(self.password_hash.clone()),
            is_active: i % 10 != 9,
            is_superuser: false,
            roles: vec![Role::Customer],
        })
    }

    /// Claims the next batch: the half-open range of user indexes to insert, or `None` when all are claimed.
    fn claim(&self) -> Option<std::ops::Range<u64>> {
        let batch = self.next_batch.fetch_add(1, Ordering::Relaxed);
        let start = batch.checked_mul(self.batch).filter(|start| *start < self.users)?;
        Some(start..(start + self.batch).min(self.users))
    }
}

/// Hashes [`SEED_PASSWORD`] once with argon2id and its default parameters.
fn seed_password_hash() -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(SEED_PASSWORD.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot hash the seed password: {e}"))?;
    Ok(hash.to_string())
}

/// Runs the seed and prints the insert rate.
///
/// # Errors
/// When the database cannot be reached or migrated, or an insert fails.
pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    if args.users == 0 && args.products == 0 && args.orders == 0 {
        bail!("give --users N, --products N and/or --orders N");
    }
    let config = DatabaseConfig {
        // One connection per worker, plus one spare for the pool's own checks.
        max_connections: u32::try_from(args.concurrency + 1).ok(),
        min_connections: Some(1),
        ..DatabaseConfig::with_url(&args.database_url)
    };
    let db =
        Database::connect(&config).await.with_context(|| format!("cannot connect to {}", config.redacted_url()))?;
    db.migrate(&BackoffPolicy::default()).await.context("cannot apply migrations")?;
    if args.users > 0 {
        seed_users(&db, &args).await?;
    }
    if args.products > 0 {
        seed_products(&db, &args).await?;
    }
    if args.orders > 0 {
        seed_orders(&db, &args).await?;
    }
    db.close().await.context("cannot close the pool")?;
    Ok(())
}

/// Seeds `--products` products with their units and stock, and prints the rate.
async fn seed_products(db: &Database, args: &SeedArgs) -> anyhow::Result<()> {
    let progress = ProgressBar::new(args.products).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} products ({per_sec}, eta {eta})",
        )
        .context("bad progress bar template")?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let repo = CatalogueRepo::new(db.clone());
    let created = crate::seed_catalogue::seed(
        repo,
        args.products,
        args.categories,
        args.locations,
        args.concurrency,
        progress.clone(),
    )
    .await?;
    progress.finish_and_clear();
    db.connection().execute_unprepared("ANALYZE").await.context("ANALYZE failed")?;
    let elapsed = started.elapsed();
    println!(
        "seeded {created} products ({} units, {} stock levels) in {} categories and {} locations in {:.1} s: \
         {:.0} products/s",
        created * 2,
        created,
        args.categories.max(1),
        args.locations.max(1),
        elapsed.as_secs_f64(),
        created as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Seeds `--orders` orders with their lines, events and invoices, and prints the rate.
async fn seed_orders(db: &Database, args: &SeedArgs) -> anyhow::Result<()> {
    let progress = ProgressBar::new(args.orders).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} orders ({per_sec}, eta {eta})",
        )
        .context("bad progress bar template")?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    // Orders are bigger than users (about seven rows each): batches of at most 2,000 orders.
    let batch = args.batch.min(2_000);
    let lines = crate::seed_orders::seed(
        OrderImporter::new(db.clone()),
        args.orders,
        batch,
        args.concurrency,
        progress.clone(),
    )
    .await?;
    progress.finish_and_clear();
    let loaded = started.elapsed();
    // Fresh statistics; on PostgreSQL VACUUM also sets the visibility map, so the reports' index-only scans
    // do not visit the heap.
    let maintenance = match db.backend() {
        Backend::Postgres => {
            "VACUUM (ANALYZE) rental_orders, order_lines, order_events, invoices, invoice_lines, usage_series, usage_marks, \
             products, units, stock_levels"
        }
        Backend::Sqlite => "ANALYZE",
    };
    db.connection().execute_unprepared(maintenance).await.context("VACUUM/ANALYZE failed")?;
    let elapsed = started.elapsed();
    println!(
        "seeded {} orders ({lines} lines) in {:.1} s ({:.1} s loading, {:.1} s vacuum/analyze): {:.0} orders/s; \
         batch {batch}, concurrency {}",
        args.orders,
        elapsed.as_secs_f64(),
        loaded.as_secs_f64(),
        (elapsed - loaded).as_secs_f64(),
        args.orders as f64 / elapsed.as_secs_f64(),
        args.concurrency
    );
    Ok(())
}

/// Seeds `--users` users and prints the rate.
async fn seed_users(db: &Database, args: &SeedArgs) -> anyhow::Result<()> {
    let db = db.clone();
    let deferred = if args.keep_indexes { Vec::new() } else { defer_indexes(&db).await? };
    let repo = UserRepo::new(db.clone());

    let plan = Arc::new(SeedPlan {
        run_id: Uuid::new_v4().simple().to_string(),
        password_hash: seed_password_hash()?,
        users: args.users,
        batch: args.batch,
        next_batch: AtomicU64::new(0),
    });
    let progress = ProgressBar::new(args.users).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} users ({per_sec}, eta {eta})",
        )
        .context("bad progress bar template")?
        .progress_chars("=> "),
    );

    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency {
        workers.spawn(insert_batches(repo.clone(), Arc::clone(&plan), progress.clone()));
    }
    // Returning early drops the set, which aborts the other workers; the indexes are rebuilt either way.
    let mut outcome = Ok(());
    while let Some(finished) = workers.join_next().await {
        if let Err(err) = finished.context("a seed worker panicked").and_then(|r| r) {
            outcome = Err(err);
            break;
        }
    }
    drop(workers);
    progress.finish_and_clear();
    let loaded = started.elapsed();
    rebuild_indexes(&db, &deferred).await?;
    outcome?;
    // Fresh statistics, or the planner guesses at a million rows (and autovacuum may be off).
    db.connection().execute_unprepared("ANALYZE").await.context("ANALYZE failed")?;
    let elapsed = started.elapsed();
    if !deferred.is_empty() {
        println!(
            "rows loaded in {:.1} s; {} deferred indexes rebuilt and statistics gathered in {:.1} s",
            loaded.as_secs_f64(),
            deferred.len(),
            (elapsed - loaded).as_secs_f64()
        );
    }

    let rate = args.users as f64 / elapsed.as_secs_f64();
    println!(
        "seeded {} users (run {}) in {:.1} s: {rate:.0} rows/s; batch {}, concurrency {}",
        args.users,
        plan.run_id,
        elapsed.as_secs_f64(),
        args.batch,
        args.concurrency
    );
    println!("every seeded user has the password `{SEED_PASSWORD}`");
    Ok(())
}

/// On PostgreSQL with empty `users` and `user_roles` tables, drops their secondary non-unique indexes and
/// returns their definitions for [`rebuild_indexes`]. Primary keys and unique indexes stay, so the load is
/// still checked for duplicates. Elsewhere, or with rows present, changes nothing.
async fn defer_indexes(db: &Database) -> anyhow::Result<Vec<(String, String)>> {
    if db.backend() != Backend::Postgres {
        return Ok(Vec::new());
    }
    let conn = db.connection();
    let empty = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT NOT EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM user_roles) AS empty",
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "empty"))
        .transpose()?
        .unwrap_or(false);
    if !empty {
        return Ok(Vec::new());
    }
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename IN ('users', 'user_roles') AND indexdef NOT LIKE 'CREATE UNIQUE INDEX%' ORDER BY indexname",
        ))
        .await?;
    let mut deferred = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("", "indexname")?;
        let definition: String = row.try_get("", "indexdef")?;
        conn.execute_unprepared(&format!("DROP INDEX \"{name}\"")).await.with_context(|| format!("dropping {name}"))?;
        deferred.push((name, definition));
    }
    Ok(deferred)
}

/// Recreates the indexes [`defer_indexes`] dropped, from their own definitions.
async fn rebuild_indexes(db: &Database, deferred: &[(String, String)]) -> anyhow::Result<()> {
    for (name, definition) in deferred {
        db.connection().execute_unprepared(definition).await.with_context(|| format!("rebuilding {name}"))?;
    }
    Ok(())
}

/// One worker: claims batches until none are left and bulk-inserts each.
async fn insert_batches(repo: UserRepo, plan: Arc<SeedPlan>, progress: ProgressBar) -> anyhow::Result<()> {
    while let Some(range) = plan.claim() {
        let (first, count) = (range.start, range.end - range.start);
        let rows = range.map(|i| plan.user(i)).collect::<anyhow::Result<Vec<_>>>()?;
        let at = chrono::Utc::now();
        repo.database()
            .write(async |uow| repo.bulk_import(uow, rows, at).await)
            .await
            .with_context(|| format!("bulk insert of users {first}.. failed"))?;
        progress.inc(count);
    }
    Ok(())
}
