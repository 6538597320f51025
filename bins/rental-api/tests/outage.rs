//! The database lost while `rental-api serve` runs, on a PostgreSQL server of the test's own (the machine's
//! shared one is never stopped): requests that need the database are refused with 503 `database_unavailable`
//! while it is down (never a 500), the service comes back by itself when the database does, and every
//! registration that was answered 201 is stored exactly once. Also: a database that is down at start-up stops
//! the start with a clear message and a non-zero exit. Runs in the PostgreSQL pass (TEST_DATABASE_URL set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rental_testkit::{PgServer, TEST_DATABASE_URL};

fn postgres_pass() -> bool {
    std::env::var(TEST_DATABASE_URL).is_ok_and(|url| !url.trim().is_empty())
}

/// `rental-api serve` over `database_url` on `port`.
fn serve(database_url: &str, port: u16) -> Command {
    let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let outbox = std::env::temp_dir().join(format!("rental-outage-outbox-{port}"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_rental-api"));
    command
        .arg("serve")
        .env("RENTAL_CONFIG_DIR", config_dir)
        .env("RENTAL_ENV", "test")
        .env("RENTAL__DATABASE__URL", database_url)
        .env("RENTAL__DATABASE__MAX_CONNECTIONS", "8")
        .env("RENTAL__DATABASE__MIN_CONNECTIONS", "4")
        .env("RENTAL__DATABASE__ACQUIRE_TIMEOUT_SECS", "5")
        .env("RENTAL__DATABASE__PROBE_INTERVAL_MS", "200")
        .env("RENTAL__AUTH__JWT_SECRET", "outage-test-secret-outage-test-secret")
        .env("RENTAL__AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("RENTAL__AUTH__ARGON2_ITERATIONS", "1")
        .env("RENTAL__SERVER__PORT", port.to_string())
        .env("RENTAL__MAIL__OUTBOX_DIR", outbox)
        .env("RENTAL__SCHEDULER__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A request's answer: status, lower-cased headers, body.
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// One HTTP/1.1 request on a fresh connection; `None` when nothing answers.
fn request(port: u16, method: &str, path: &str, json: Option<&str>) -> Option<Answer> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = json.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(Answer { status, headers, body: body.to_owned() })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port()
}

/// Registers `email`; the status.
fn register(port: u16, email: &str) -> u16 {
    let json = format!(r#"{{"email":"{email}","password":"outage-password-1","full_name":"Outage Test"}}"#);
    request(port, "POST", "/api/v1/auth/register", Some(&json)).map_or(0, |answer| answer.status)
}

#[test]
fn a_lost_database_gives_fast_503s_and_the_service_resumes_by_itself() {
    if !postgres_pass() {
        return;
    }
    let db = PgServer::start();
    let port = free_port();
    let _server = Server(serve(&db.url(), port).stderr(Stdio::inherit()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while request(port, "GET", "/health/ready", None).map(|a| a.status) != Some(200) {
        assert!(Instant::now() < deadline, "the server did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut registered = Vec::new();
    let mut attempt = 0;
    let mut next_registration = |statuses: &mut BTreeMap<u16, usize>| {
        attempt += 1;
        let email = format!("outage-{attempt}@example.com");
        let status = register(port, &email);
        *statuses.entry(status).or_default() += 1;
        if status == 201 {
            registered.push(email);
        }
        status
    };
    for _ in 0..5 {
        assert_eq!(next_registration(&mut statuses), 201);
    }

    db.stop();
    // Requests keep coming during the outage; once the probe has noticed, they are refused at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let answer = request(port, "GET", "/api/v1/products", None).expect("the server answers");
        *statuses.entry(answer.status).or_default() += 1;
        if answer.status == 503 && answer.body.contains("\"database_unavailable\"") {
            break answer;
        }
        assert!(Instant::now() < deadline, "no database_unavailable answer: {} {}", answer.status, answer.body);
        next_registration(&mut statuses);
    };
    assert!(refused.headers.contains_key("retry-after"), "{:?}", refused.headers);
    assert!(refused.headers.contains_key("x-request-id"));
    for _ in 0..5 {
        assert_eq!(next_registration(&mut statuses), 503, "registrations are refused while the database is lost");
    }
    assert_eq!(request(port, "GET", "/health/ready", None).unwrap().status, 503);
    let health = request(port, "GET", "/monitoring/health", None).unwrap();
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("\"unhealthy\""), "{}", health.body);
    assert_eq!(request(port, "GET", "/health/live", None).unwrap().status, 200, "liveness does not need it");

    db.start_again();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(60);
    while next_registration(&mut statuses) != 201 {
        assert!(Instant::now() < deadline, "the service did not resume within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("service resumed {} ms after the database was back", back.elapsed().as_millis());
    for _ in 0..5 {
        assert_eq!(next_registration(&mut statuses), 201);
    }
    assert!(
        statuses.keys().all(|status| matches!(status, 200 | 201 | 503)),
        "only successes and 503 during the outage, never a 500 or a dropped connection: {statuses:?}"
    );

    // Every answered registration is stored exactly once, and nothing else is.
    let mut stored = Vec::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sea_orm::{ConnectionTrait, Statement};
        let conn = sea_orm::Database::connect(db.url()).await.unwrap();
        let rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT email FROM users WHERE email LIKE 'outage-%' ORDER BY email",
            ))
            .await
            .unwrap();
        for row in rows {
            stored.push(row.try_get::<String>("", "email").unwrap());
        }
        conn.close().await.unwrap();
    });
    registered.sort();
    assert_eq!(stored, registered, "statuses: {statuses:?}");
}

#[test]
fn a_database_down_at_start_up_stops_the_start_with_a_clear_message() {
    if !postgres_pass() {
        return;
    }
    let db = PgServer::start();
    let url = db.url();
    db.stop();
    let output = serve(&url, free_port()).stderr(Stdio::piped()).output().unwrap();
    assert!(!output.status.success(), "the start fails");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connecting to postgres://postgres@127.0.0.1"), "{stderr}");
    assert!(stderr.contains("unavailable") && stderr.contains("refused"), "{stderr}");
}

/// Requests already running when the database goes away, waiting for a connection the pool cannot make (it
/// retries a refused connection until its acquire timeout, here two minutes), are answered 503
/// `database_unavailable` as soon as the probe notices, not after the acquire or the request timeout (30 s,
/// past this client's read timeout): none is answered `busy` or 504, and none is stored.
#[test]
fn requests_in_flight_when_the_database_is_lost_are_answered_503_by_the_probe() {
    if !postgres_pass() {
        return;
    }
    let db = PgServer::start();
    let port = free_port();
    let mut command = serve(&db.url(), port);
    // A probe slow enough that the requests below are running, waiting for a connection, when it notices.
    command.env("RENTAL__DATABASE__PROBE_INTERVAL_MS", "2000").env("RENTAL__DATABASE__ACQUIRE_TIMEOUT_SECS", "120");
    let _server = Server(command.stderr(Stdio::inherit()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while request(port, "GET", "/health/ready", None).map(|a| a.status) != Some(200) {
        assert!(Instant::now() < deadline, "the server did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(register(port, "inflight-before@example.com"), 201);

    db.stop();
    let started = Instant::now();
    let running: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let json = format!(
                    r#"{{"email":"inflight-{i}@example.com","password":"outage-password-1","full_name":"In Flight"}}"#
                );
                request(port, "POST", "/api/v1/auth/register", Some(&json))
            })
        })
        .collect();
    for thread in running {
        let answer = thread.join().unwrap().expect("answered before the client's 30 s read timeout");
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(answer.body.contains("\"database_unavailable\""), "{}", answer.body);
        assert!(answer.headers.contains_key("x-request-id") && answer.headers.contains_key("retry-after"));
    }
    println!("the in-flight requests were answered within {} ms of the stop", started.elapsed().as_millis());

    db.start_again();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = rt.block_on(async {
        use sea_orm::{ConnectionTrait, Statement};
        let deadline = Instant::now() + Duration::from_secs(60);
        let conn = loop {
            match sea_orm::Database::connect(db.url()).await {
                Ok(conn) => break conn,
                Err(err) => assert!(Instant::now() < deadline, "the database did not come back: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT email FROM users WHERE email LIKE 'inflight-%' ORDER BY email",
            ))
            .await
            .unwrap();
        rows.iter().map(|row| row.try_get::<String>("", "email").unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(stored, ["inflight-before@example.com"], "nothing of the refused requests was stored");
}
