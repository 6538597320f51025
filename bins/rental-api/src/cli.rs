//! The command line: `serve` (default), `work`, `migrate`, `create-admin`, `openapi`, `print-config`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpServer, web};
use anyhow::Context;
use clap::{Parser, Subcommand};
use rental_repo::{BackoffPolicy, Database};
use rental_service::{ServiceError, Services};

use crate::background::{Background, shutdown_signal};
use crate::monitoring::Monitoring;
use crate::settings::Settings;
use crate::state::AppState;
use crate::{app, telemetry};

/// Rental-management backend.
#[derive(Debug, Parser)]
#[command(name = "rental-api", version, about)]
pub struct Cli {
    /// Directory of `default.toml` and `{RENTAL_ENV}.toml`.
    #[arg(long, env = "RENTAL_CONFIG_DIR", default_value = "config", global = true)]
    pub config_dir: PathBuf,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve HTTP (the default).
    Serve,
    /// Apply migrations and run background work only: the job worker and the scheduler, no HTTP.
    Work,
    /// Apply pending migrations and exit.
    Migrate,
    /// Create an administrator (superuser with the admin role).
    CreateAdmin {
        /// The administrator's e-mail address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input (required, so it never shows in `ps`).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print the OpenAPI 3.1 document as JSON.
    Openapi,
    /// Print the effective configuration, secrets redacted.
    PrintConfig,
}

/// Runs the command line.
///
/// # Errors
/// Whatever stops the command; `main` prints it with its causes.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        return print(&serde_json::to_string_pretty(&app::openapi_document())?);
    }
    let settings = Settings::load(&cli.config_dir)?;
    match command {
        Command::PrintConfig => print(&format!("# profile: {}\n{}", settings.env, settings.to_redacted_toml()?)),
        Command::Migrate => {
            telemetry::init(&settings.log)?;
            let db = connect(&settings).await?;
            tracing::info!("migrations are up to date");
            db.close().await?;
            Ok(())
        }
        Command::CreateAdmin { email, password_stdin } => {
            telemetry::init(&settings.log)?;
            if !password_stdin {
                anyhow::bail!("give the password on standard input with --password-stdin");
            }
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).context("reading the password from standard input")?;
            let password = input.lines().next().unwrap_or_default();
            let db = connect(&settings).await?;
            let services = Services::new(db, &settings.service_config())?;
            match services.users.create_admin(&email, password).await {
                Ok(user) => {
                    println!("created administrator {} ({})", user.email, user.id);
                    Ok(())
                }
                Err(ServiceError::Conflict { .. }) => anyhow::bail!("a user with the e-mail {email} already exists"),
                Err(err) => Err(err.into()),
            }
        }
        Command::Serve => {
            telemetry::init(&settings.log)?;
            serve(settings).await
        }
        Command::Work => {
            telemetry::init(&settings.log)?;
            work(settings).await
        }
        Command::Openapi => Ok(()),
    }
}

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", text.trim_end()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    let db = Database::connect(&settings.database)
        .await
        .with_context(|| format!("connecting to {}", settings.database.redacted_url()))?;
    db.migrate(&BackoffPolicy::default()).await.context("applying migrations")?;
    Ok(db)
}

/// Serves HTTP and runs the background work until SIGINT or SIGTERM; then stops taking requests and jobs,
/// lets in-flight requests and running jobs finish within `server.shutdown_timeout_secs`, and gives back the
/// jobs that did not.
///
/// # Errors
/// When the database cannot be prepared, a setting cannot be used or the address cannot be bound.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    log_start(&settings);
    let db = connect(&settings).await?;
    let pool = db.pool_stats();
    tracing::info!(
        backend = ?db.backend(),
        database = %settings.database.redacted_url(),
        pool_size = pool.size,
        pool_min = pool.min_connections,
        pool_max = pool.max_connections,
        "database ready"
    );
    let mut services = Services::new(db.clone(), &settings.service_config())?;
    let payments = crate::routes::payments::Payments::from_config(&settings.stripe).context("stripe settings")?;
    payments.attach(&mut services);
    match services.users.admin_exists().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "no administrator exists yet; create one with: \
             echo 'a-long-password' | rental-api create-admin --email you@example.com --password-stdin"
        ),
        Err(err) => tracing::warn!(error = %err, "could not check for an administrator"),
    }
    let server = settings.server.clone();
    let grace = Duration::from_secs(server.shutdown_timeout_secs);
    let probe = settings.database.probe_settings().and_then(|probe| db.start_probe(probe));
    let background = Background::start(&settings, &services, grace)?;

    let monitoring = Arc::new(
        Monitoring::new(&settings.monitor, &services, Some(background.mail_stats()), effective_settings(&settings))
            .context("monitor settings")?,
    );
    monitoring.monitor.components.register(Arc::new(payments.component()));
    // The process-wide `metrics` recorder: whatever else in the process records through the facade is served
    // by `/metrics` beside our own metrics.
    if let Err(err) = monitoring.monitor.exporter.install_global() {
        tracing::warn!(error = %err, "metrics recorded outside the monitor will not be exported");
    }
    let refresher = monitoring.monitor.spawn_refresher().context("starting the system metrics refresher")?;
    if settings.monitor.metrics_token.is_none() && !settings.is_development() {
        tracing::warn!(
            "GET /metrics is open to anyone who reaches the port; set RENTAL__MONITOR__METRICS_TOKEN to require a token"
        );
    }
    let state = web::Data::new(AppState {
        services,
        db: db.clone(),
        metrics: monitoring.monitor.requests.clone(),
        monitoring,
        started: Instant::now(),
        slow_request: Duration::from_millis(settings.log.slow_request_ms),
        worker: background.worker_stats(),
        payments,
    });
    let workers = server.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    tracing::info!(host = %server.host, port = server.port, workers, env = %settings.env, "listening");
    // One set of middleware for all workers: the rate limits count per process (or across instances through
    // Redis), not per worker.
    let redis = crate::redis::SharedRedis::connect_or_warn(&settings.redis).await?;
    let layers = crate::middleware::HttpLayers::new(&settings.http, redis).map_err(anyhow::Error::msg)?;
    tracing::info!(
        rate_limits = layers.limiter().enabled(),
        shared_through_redis = layers.limiter().shared(),
        "middleware ready"
    );
    let config = server.clone();
    let http = HttpServer::new(move || app::build_with(Some(state.clone()), config.clone(), layers.clone()).0)
        .workers(workers)
        .shutdown_timeout(server.shutdown_timeout_secs)
        .disable_signals()
        .bind((server.host.as_str(), server.port))
        .with_context(|| format!("binding {}:{}", server.host, server.port))?
        .run();
    let handle = http.handle();
    let http = tokio::spawn(http);
    shutdown_signal().await;
    tracing::info!(deadline_secs = server.shutdown_timeout_secs, "shutting down: draining requests and jobs");
    // Both drain at once, within the same deadline.
    tokio::join!(handle.stop(true), background.shutdown());
    http.await.context("HTTP server task")?.context("HTTP server")?;
    refresher.stop();
    if let Some(probe) = probe {
        probe.stop().await;
    }
    if let Err(err) = db.close().await {
        tracing::warn!(error = %err, "closing the database pool");
    }
    tracing::info!("stopped");
    Ok(())
}

/// What `/monitoring/system` shows of the configuration: the performance profile in effect, its host and
/// values and the keys that override them, with the values those keys set.
fn effective_settings(settings: &Settings) -> serde_json::Value {
    serde_json::json!({
        "performance": settings.effective,
        "server_workers": settings.server.workers,
        "database_max_connections": settings.database.max_connections,
        "database_min_connections": settings.database.min_connections,
        "user_cache_capacity": settings.cache.user_capacity,
        "list_cache_capacity": settings.cache.list_capacity,
        "max_concurrent_hashes": settings.auth.max_concurrent_hashes,
        "max_waiting_hashes": settings.auth.max_waiting_hashes,
        "job_concurrency": settings.worker.concurrency,
        "job_claim_batch": settings.worker.claim_batch,
    })
}

/// Logs the version, the environment and the performance profile in effect, with the keys that override it.
fn log_start(settings: &Settings) {
    let Some(effective) = &settings.effective else { return };
    let values = &effective.values;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        env = %settings.env,
        profile = %effective.profile,
        cores = effective.host.cores,
        memory_mib = effective.host.memory_mib,
        http_workers = values.http_workers,
        postgres_pool = %format!("{}/{}", values.postgres_min_connections, values.postgres_max_connections),
        sqlite_pool = values.sqlite_max_connections,
        user_cache = values.user_cache_capacity,
        list_cache = values.list_cache_capacity,
        concurrent_hashes = values.concurrent_hashes,
        job_concurrency = values.job_concurrency,
        overridden = ?effective.overridden,
        "starting rental-api"
    );
}

/// Runs the job worker and the scheduler without HTTP until SIGINT or SIGTERM, then shuts them down within
/// `worker.shutdown_grace_secs`.
///
/// # Errors
/// When the database cannot be prepared or a setting cannot be used.
pub async fn work(settings: Settings) -> anyhow::Result<()> {
    log_start(&settings);
    let db = connect(&settings).await?;
    let mut services = Services::new(db, &settings.service_config())?;
    let payments = crate::routes::payments::Payments::from_config(&settings.stripe).context("stripe settings")?;
    // The worker's reconciliation of payments calls Stripe through the gateway.
    payments.attach(&mut services);
    let grace = Duration::from_secs(settings.worker.shutdown_grace_secs);
    // A dedicated worker instance works whatever `worker.enabled` says (that switch is for `serve`).
    let mut settings = settings;
    settings.worker.enabled = true;
    let background = Background::start(&settings, &services, grace)?;
    tracing::info!(profile = %settings.env, "working");
    shutdown_signal().await;
    tracing::info!(deadline_secs = grace.as_secs(), "shutting down: finishing running jobs");
    background.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
