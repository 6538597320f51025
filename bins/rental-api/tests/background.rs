//! Background work across real processes: `rental-api work` instances over one database (SQLite, or
//! PostgreSQL from TEST_DATABASE_URL), mailing a real SMTP server in its own process (aiosmtpd, when
//! TEST_AIOSMTPD_PYTHON names a Python that has it, as in CI; the test kit's sink otherwise).
//!
//! - Crash safety: 1,000 e-mails enqueued, the worker killed with SIGKILL midway and started again: all 1,000
//!   arrive; a message arrives twice only if it was in flight at the kill (at most the worker's concurrency),
//!   and then with the same `Message-ID`.
//! - Two worker processes never run one job at the same time: each of 1,000 messages arrives exactly once, and
//!   both processes did part of the work.
//! - The scheduler in two processes: every slot of a two-second schedule is enqueued exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use mail_parser::MessageParser;
use rental_repo::{Database, DatabaseConfig, JobRepo, JobState, JobStore, NewJob, job_list_spec};
use rental_testkit::{Aiosmtpd, SmtpSink, TestDb};
use serde_json::json;

/// Jobs a worker runs at once in these tests: the most messages a kill may duplicate.
const CONCURRENCY: usize = 8;

/// The SMTP server of a test.
enum Smtp {
    Real(Aiosmtpd),
    Sink(SmtpSink),
}

impl Smtp {
    async fn start() -> Self {
        match Aiosmtpd::from_env() {
            Some(server) => Self::Real(server),
            None => Self::Sink(SmtpSink::start().await.unwrap()),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Self::Real(server) => server.port(),
            Self::Sink(sink) => sink.port(),
        }
    }

    /// Every message received so far: (recipient, Message-ID).
    fn received(&self) -> Vec<(String, String)> {
        let raw: Vec<(Vec<u8>, Option<String>)> = match self {
            Self::Real(server) => server.messages().into_iter().map(|m| (m, None)).collect(),
            Self::Sink(sink) => sink.messages().into_iter().map(|m| (m.data, m.to.first().cloned())).collect(),
        };
        raw.into_iter()
            .map(|(data, envelope_to)| {
                let message = MessageParser::default().parse(data.as_slice()).unwrap();
                let to = envelope_to
                    .or_else(|| message.header_raw("X-RcptTo").map(|v| v.trim().to_owned()))
                    .unwrap_or_default();
                (to, message.message_id().unwrap_or_default().to_owned())
            })
            .collect()
    }
}

/// A `rental-api work` process, killed when dropped.
struct WorkProcess(Child);

impl Drop for WorkProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl WorkProcess {
    fn start(database_url: &str, smtp_port: u16, extra: &[(&str, &str)]) -> Self {
        Self(Self::command("work", database_url, smtp_port, extra).spawn().unwrap())
    }

    /// `rental-api <subcommand>` over `database_url` with the tests' settings and `extra` ones.
    fn command(subcommand: &str, database_url: &str, smtp_port: u16, extra: &[(&str, &str)]) -> Command {
        let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rental-api"));
        command
            .arg(subcommand)
            .env("RENTAL_CONFIG_DIR", config_dir)
            .env("RENTAL_ENV", "test")
            .env("RENTAL__DATABASE__URL", database_url)
            .env("RENTAL__DATABASE__MAX_CONNECTIONS", "6")
            .env("RENTAL__DATABASE__MIN_CONNECTIONS", "0")
            .env("RENTAL__AUTH__JWT_SECRET", "background-test-secret-background-test")
            .env("RENTAL__MAIL__FROM", "Rental <desk@rental.example>")
            .env("RENTAL__MAIL__SMTP__HOST", "127.0.0.1")
            .env("RENTAL__MAIL__SMTP__PORT", smtp_port.to_string())
            .env("RENTAL__MAIL__SMTP__TLS", "none")
            .env("RENTAL__WORKER__CONCURRENCY", CONCURRENCY.to_string())
            .env("RENTAL__WORKER__CLAIM_BATCH", "8")
            .env("RENTAL__WORKER__POLL_INTERVAL_MS", "100")
            .env("RENTAL__WORKER__LEASE_SECS", "2")
            .env("RENTAL__WORKER__RESCUE_INTERVAL_SECS", "1")
            .env("RENTAL__WORKER__SHUTDOWN_GRACE_SECS", "5")
            .env("RENTAL__SCHEDULER__ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in extra {
            command.env(key, value);
        }
        command
    }

    /// SIGTERM, then the exit status within `within`.
    fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker did not stop within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn connect(test_db: &TestDb) -> (Database, JobRepo) {
    let config = DatabaseConfig {
        max_connections: Some(4),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    let db = Database::connect(&config).await.unwrap();
    let queue = JobRepo::new(db.clone());
    (db, queue)
}

/// Enqueues `n` welcome e-mails to `user<i>@example.com`.
async fn enqueue_mails(db: &Database, queue: &JobRepo, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            let args = json!({
                "template": "welcome",
                "to": format!("user{i}@example.com"),
                "context": { "name": format!("User {i}") },
            });
            NewJob::new("mail.send", args, 20)
        })
        .collect();
    db.write(async |uow| queue.enqueue_many(uow, jobs, Utc::now()).await).await.unwrap();
}

/// Waits until `smtp` has messages for `n` distinct recipients, for at most `within`.
async fn wait_for_recipients(smtp: &Smtp, n: usize, within: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + within;
    loop {
        let received = smtp.received();
        let distinct: BTreeSet<&String> = received.iter().map(|(to, _)| to).collect();
        if distinct.len() >= n {
            return received;
        }
        assert!(Instant::now() < deadline, "{} of {n} recipients reached within {within:?}", distinct.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_midway_loses_nothing_and_repeats_only_what_was_in_flight() {
    let test_db = TestDb::new().await;
    let (db, queue) = connect(&test_db).await;
    let smtp = Smtp::start().await;
    enqueue_mails(&db, &queue, 1_000).await;

    let worker = WorkProcess::start(test_db.url(), smtp.port(), &[]);
    wait_for_recipients(&smtp, 300, Duration::from_secs(60)).await;
    drop(worker); // SIGKILL: no chance to finish or give anything back.
    let at_kill = smtp.received().len();
    assert!(at_kill < 1_000, "the kill came too late to test anything ({at_kill} sent)");

    let worker = WorkProcess::start(test_db.url(), smtp.port(), &[]);
    let received = wait_for_recipients(&smtp, 1_000, Duration::from_secs(120)).await;
    assert!(worker.terminate(Duration::from_secs(30)).success(), "a graceful stop exits 0");

    let mut ids_by_recipient: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (to, id) in &received {
        ids_by_recipient.entry(to.clone()).or_default().insert(id.clone());
    }
    assert_eq!(ids_by_recipient.len(), 1_000, "every message arrived");
    let repeats = received.len() - 1_000;
    assert!(repeats <= CONCURRENCY, "{repeats} repeats: only the messages in flight at the kill may repeat");
    assert!(
        ids_by_recipient.values().all(|ids| ids.len() == 1),
        "a repeated message carries the same Message-ID as the first"
    );
    let counts = queue.counts(Utc::now()).await.unwrap();
    assert!(counts.iter().all(|c| c.count == 0), "every job succeeded: {counts:?}");
    println!("crash test: {at_kill} sent before the kill, {repeats} repeated after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_never_run_one_job_twice() {
    let test_db = TestDb::new().await;
    let (db, queue) = connect(&test_db).await;
    let smtp = Smtp::start().await;
    enqueue_mails(&db, &queue, 1_000).await;
    let first = WorkProcess::start(test_db.url(), smtp.port(), &[]);
    let second = WorkProcess::start(test_db.url(), smtp.port(), &[]);
    let received = wait_for_recipients(&smtp, 1_000, Duration::from_secs(120)).await;
    // Let anything still in flight land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(first.terminate(Duration::from_secs(30)).success());
    assert!(second.terminate(Duration::from_secs(30)).success());
    let received = received.len().max(smtp.received().len());
    assert_eq!(received, 1_000, "each job ran once: no message arrived twice");

    let mut workers = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let params = [("limit".to_owned(), "100".to_owned()), ("cursor".to_owned(), cursor.clone())];
        let page = queue.list(&job_list_spec().parse(&params).unwrap()).await.unwrap();
        for job in page.items() {
            assert_eq!(job.state, JobState::Succeeded);
            workers.insert(job.locked_by.clone().unwrap());
        }
        match page {
            rental_repo::query::Listing::Keyset(page) if page.next_cursor.is_some() => {
                cursor = page.next_cursor.unwrap();
            }
            _ => break,
        }
    }
    assert_eq!(workers.len(), 2, "both processes took part: {workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_enqueue_every_slot_once() {
    let test_db = TestDb::new().await;
    let (_db, queue) = connect(&test_db).await;
    let smtp = Smtp::start().await;
    let schedule = [
        ("RENTAL__SCHEDULER__ENABLED", "true"),
        ("RENTAL__SCHEDULER__TICK_SECS", "1"),
        ("RENTAL__SCHEDULER__SCHEDULES__EVERY_TWO_SECONDS__CRON", "*/2 * * * * *"),
        ("RENTAL__SCHEDULER__SCHEDULES__EVERY_TWO_SECONDS__KIND", "jobs.purge_finished"),
    ];
    let first = WorkProcess::start(test_db.url(), smtp.port(), &schedule);
    let second = WorkProcess::start(test_db.url(), smtp.port(), &schedule);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(first.terminate(Duration::from_secs(30)).success());
    assert!(second.terminate(Duration::from_secs(30)).success());

    let params = [("kind".to_owned(), "jobs.purge_finished".to_owned()), ("per_page".to_owned(), "100".to_owned())];
    let jobs = queue.list(&job_list_spec().parse(&params).unwrap()).await.unwrap();
    let mut slots: Vec<i64> = jobs
        .items()
        .iter()
        .filter_map(|job| job.dedupe_key.as_deref()?.strip_prefix("schedule:every_two_seconds:")?.parse().ok())
        .collect();
    slots.sort_unstable();
    assert!(slots.len() >= 3, "the schedule ran: {slots:?}");
    let distinct: BTreeSet<i64> = slots.iter().copied().collect();
    assert_eq!(distinct.len(), slots.len(), "no slot twice: {slots:?}");
    assert!(slots.windows(2).all(|w| w[1] - w[0] == 2), "no slot skipped while both ran: {slots:?}");
}

#[test]
fn a_bad_schedule_stops_the_start_naming_its_key() {
    let test_db = tokio::runtime::Runtime::new().unwrap().block_on(TestDb::new());
    let bad = [("RENTAL__SCHEDULER__SCHEDULES__DAILY_REPORT__CRON", "61 * * * *")];
    let output = WorkProcess::command("work", test_db.url(), 2525, &bad).stderr(Stdio::piped()).output().unwrap();
    assert!(!output.status.success(), "the start fails");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scheduler.schedules.daily_report.cron"), "the key is named: {stderr}");
}

/// `GET path` on 127.0.0.1:`port`; the status code, or `None` when nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn serve_drains_requests_and_jobs_and_exits_cleanly_on_sigterm() {
    let test_db = tokio::runtime::Runtime::new().unwrap().block_on(TestDb::new());
    let port = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
    let outbox = std::env::temp_dir().join(format!("rental-outbox-{}", uuid::Uuid::new_v4().simple()));
    let mut command = WorkProcess::command("serve", test_db.url(), 2525, &[]);
    command
        .env("RENTAL__SERVER__PORT", port.to_string())
        .env("RENTAL__SERVER__SHUTDOWN_TIMEOUT_SECS", "5")
        .env_remove("RENTAL__MAIL__SMTP__HOST")
        .env_remove("RENTAL__MAIL__SMTP__PORT")
        .env_remove("RENTAL__MAIL__SMTP__TLS")
        .env("RENTAL__MAIL__OUTBOX_DIR", &outbox);
    let server = WorkProcess(command.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(port, "/health/live") != Some(200) {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "a graceful stop exits 0: {status}");
    assert_eq!(http_status(port, "/health/live"), None, "nothing listens any more");
    let _ = std::fs::remove_dir_all(outbox);
}
