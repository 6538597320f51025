//! Test support for the rental backend: a real, freshly migrated database for every test, and
//! [`SmtpSink`], an SMTP server in-process for mail tests, and [`Aiosmtpd`], a real one in its own process, and
//! [`PgServer`], a PostgreSQL server of a test's own that it may stop and start (outage tests), and
//! [`StripeStandIn`], an HTTP server on loopback speaking Stripe's protocol for the payment tests.
//!
//! `TEST_DATABASE_URL` unset: a new SQLite file in the temporary directory. Set: a new schema in that
//! PostgreSQL database, reached through `search_path`, so tests run in parallel without seeing each other.
//! A URL that is set but unreachable fails the test: a skipped database test would prove nothing.
//! Dev-dependency only; it depends on the migrations and sea-orm, never on the crates it helps test.

mod aiosmtpd;
mod pg_server;
mod smtp;
mod stripe;

use std::path::PathBuf;

use rental_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

pub use aiosmtpd::{Aiosmtpd, TEST_AIOSMTPD_PYTHON};
pub use pg_server::PgServer;
pub use smtp::{ReceivedMail, SmtpSink};
pub use stripe::{StripeFault, StripeRequestRecord, StripeStandIn};

/// The environment variable naming the PostgreSQL database of the test run.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

#[derive(Debug)]
enum Kind {
    Sqlite { path: PathBuf },
    Postgres { admin_url: String, schema: String },
}

/// A migrated database of its own for one test; removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    kind: Kind,
}

impl TestDb {
    /// Creates and migrates a fresh database.
    ///
    /// # Panics
    /// When `TEST_DATABASE_URL` is set but cannot be reached, or migrations fail: the test must fail then.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        db.migrate().await;
        db
    }

    /// Creates a fresh database without running the migrations, for tests of migrating itself.
    ///
    /// # Panics
    /// When `TEST_DATABASE_URL` is set but cannot be reached.
    pub async fn empty() -> Self {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(url) if !url.trim().is_empty() => Self::postgres(url).await,
            _ => Self::sqlite(),
        }
    }

    fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("rental-test-{}.db", Uuid::now_v7().simple()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        TestDb { url, kind: Kind::Sqlite { path } }
    }

    async fn postgres(admin_url: String) -> Self {
        let schema = format!("test_{}", Uuid::now_v7().simple());
        let admin = match Database::connect(admin_url.as_str()).await {
            Ok(conn) => conn,
            Err(err) => panic!("{TEST_DATABASE_URL} is set to {admin_url} but cannot be reached: {err}"),
        };
        if let Err(err) = admin.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\"")).await {
            panic!("cannot create test schema {schema} in {admin_url}: {err}");
        }
        let _ = admin.close().await;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        // The application name marks this test's connections, so that teardown can end any a test left open.
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}&application_name={schema}");
        TestDb { url, kind: Kind::Postgres { admin_url, schema } }
    }

    async fn migrate(&self) {
        let conn = match Database::connect(self.url.as_str()).await {
            Ok(conn) => conn,
            Err(err) => panic!("cannot connect to test database {}: {err}", self.url),
        };
        if let Err(err) = Migrator::up(&conn, None).await {
            panic!("migrations failed on {}: {err}", self.url);
        }
        let _ = conn.close().await;
    }

    /// The URL of this test's database, ready for a pool.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is PostgreSQL (some tests, such as concurrency ones, only mean something there).
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.kind {
            Kind::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Kind::Postgres { admin_url, schema } => {
                // Drop runs inside the test's runtime, where blocking on a future is not allowed; a short-lived
                // thread with its own runtime drops the schema and is waited for.
                let admin_url = admin_url.clone();
                let terminate = format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
                );
                let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                let handle = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    runtime.block_on(async move {
                        if let Ok(conn) = Database::connect(admin_url.as_str()).await {
                            let _ = conn.execute_unprepared(&terminate).await;
                            let _ = conn.execute_unprepared(&sql).await;
                            let _ = conn.close().await;
                        }
                    });
                });
                let _ = handle.join();
            }
        }
    }
}
