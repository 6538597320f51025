//! The access log of a real `rental-api serve` process, read from its JSON output: one line per request with the
//! request id, method, route pattern (never the raw path), status, duration and user id; requests slower than
//! `log.slow_request_ms` are warnings. Also `/monitoring/system` showing the performance profile in effect, and
//! the one warning of a mail server that cannot be reached at start-up.
//! (A process, not a thread-local subscriber in the API tests: tracing's per-callsite interest is shared by all
//! threads of a test binary, so a capture there is at the mercy of the tests running beside it.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rental_testkit::TestDb;
use serde_json::Value;

const PASSWORD: &str = "access-log-password-1";

/// `(status, body)` of one request on a fresh connection.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(stream, "{head}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, reply.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

/// Runs a server over a fresh database with `slow_request_ms`, makes the requests of `script` and returns the
/// access lines it logged.
fn access_lines(slow_request_ms: &str, script: impl FnOnce(u16)) -> Vec<Value> {
    let settings = [("RENTAL__LOG__SLOW_REQUEST_MS", slow_request_ms), ("RENTAL__WORKER__ENABLED", "false")];
    log_lines(&settings, script).into_iter().filter(|line| line["target"] == "rental_api::access").collect()
}

/// Runs a server over a fresh database with the settings `env` (beside the test's own), makes the requests of
/// `script` and returns every JSON line it logged at `warn` and above, and its access lines.
fn log_lines(env: &[(&str, &str)], script: impl FnOnce(u16)) -> Vec<Value> {
    let test_db = tokio::runtime::Runtime::new().unwrap().block_on(TestDb::new());
    let port = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
    let config_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let command = |subcommand: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rental-api"));
        command
            .arg(subcommand)
            .env("RENTAL_CONFIG_DIR", &config_dir)
            .env("RENTAL_ENV", "test")
            .env("RENTAL__DATABASE__URL", test_db.url())
            .env("RENTAL__AUTH__JWT_SECRET", "access-log-secret-access-log-secret")
            .env("RENTAL__AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("RENTAL__AUTH__ARGON2_ITERATIONS", "1")
            .env("RENTAL__SERVER__PORT", port.to_string())
            .env("RENTAL__SCHEDULER__ENABLED", "false")
            .env("RENTAL__HTTP__RATE_LIMIT__ENABLED", "false")
            .env("RENTAL__LOG__FORMAT", "json")
            .env("RUST_LOG", "warn,rental_api::access=info")
            .envs(env.iter().copied());
        command
    };
    let mut admin = command("create-admin")
        .args(["--email", "log@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    admin.stdin.take().unwrap().write_all(PASSWORD.as_bytes()).unwrap();
    assert!(admin.wait().unwrap().success());

    let mut server = command("serve").stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    script(port);
    Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    let stdout = server.stdout.take().unwrap();
    let lines = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .collect();
    server.wait().unwrap();
    lines
}

#[test]
fn each_request_logs_one_line_with_route_pattern_status_and_user() {
    let mut user_id = String::new();
    let lines = access_lines("60000", |port| {
        let login = format!(r#"{{"email":"log@example.com","password":"{PASSWORD}"}}"#);
        let (status, body) = request(port, "POST", "/api/v1/auth/login", &[], &login);
        assert_eq!(status, 200, "{body}");
        let token: Value = serde_json::from_str(&body).unwrap();
        let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
        let (_, me) = request(port, "GET", "/api/v1/users/me", &[("Authorization", &bearer)], "");
        user_id = serde_json::from_str::<Value>(&me).unwrap()["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/users/{user_id}");
        let headers = [("Authorization", bearer.as_str()), ("X-Request-Id", "log-7")];
        assert_eq!(request(port, "GET", &path, &headers, "").0, 200);
        assert_eq!(request(port, "GET", "/api/v1/users/me", &[("X-Request-Id", "log-8")], "").0, 401);
        // The performance profile in effect is shown to operators.
        let (status, system) = request(port, "GET", "/monitoring/system", &[("Authorization", &bearer)], "");
        assert_eq!(status, 200, "{system}");
        let system: Value = serde_json::from_str(&system).unwrap();
        assert_eq!(system["effective"]["performance"]["profile"], "balanced", "{system}");
        assert!(system["effective"]["performance"]["values"]["http_workers"].as_u64().unwrap() >= 1, "{system}");
    });
    let with_id = |id: &str| lines.iter().filter(|line| line["request_id"] == id).collect::<Vec<_>>();
    let line = with_id("log-7");
    assert_eq!(line.len(), 1, "one line per request: {lines:?}");
    let line = line[0];
    assert_eq!(line["route"], "/api/v1/users/{id}", "the pattern, not the raw path: {line}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["user_id"], user_id.as_str());
    assert_eq!(line["level"], "INFO");
    assert!(line["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    let refused = with_id("log-8");
    assert_eq!(refused[0]["status"], 401);
    assert_eq!(refused[0]["user_id"], "", "no user for a refused request");
}

#[test]
fn requests_slower_than_the_threshold_are_warnings() {
    // Every request is slower than 0 ms.
    let lines = access_lines("0", |port| {
        assert_eq!(request(port, "GET", "/health/live", &[("X-Request-Id", "slow-1")], "").0, 200);
    });
    let line = lines.iter().find(|line| line["request_id"] == "slow-1").expect("the request's line");
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["message"], "slow request");
    assert_eq!(line["route"], "/health/live");
}

#[test]
fn a_mail_server_that_cannot_be_reached_at_start_up_is_one_warning_and_smtp_degraded() {
    let closed = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port().to_string();
    let settings = [
        ("RENTAL__WORKER__ENABLED", "true"),
        ("RENTAL__MAIL__SMTP__HOST", "127.0.0.1"),
        ("RENTAL__MAIL__SMTP__PORT", closed.as_str()),
        ("RENTAL__MAIL__SMTP__TLS", "none"),
    ];
    let lines = log_lines(&settings, |port| {
        // The check runs in the background: health reports it as soon as it has failed.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = request(port, "GET", "/monitoring/health", &[], "");
            let health: Value = serde_json::from_str(&body).unwrap();
            let smtp = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "smtp").cloned();
            let smtp = smtp.unwrap_or_else(|| panic!("no smtp component: {health}"));
            if smtp["status"] == "degraded" {
                assert_eq!(status, 200, "a degraded optional part leaves the server serving: {health}");
                assert_eq!(health["status"], "degraded", "{health}");
                assert!(smtp["last_failure"].is_string() && smtp["last_success"].is_null(), "{smtp}");
                break;
            }
            assert_eq!(smtp["status"], "up", "{smtp}");
            assert!(Instant::now() < deadline, "smtp never reported degraded: {health}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Serving goes on.
        assert_eq!(request(port, "GET", "/health/live", &[], "").0, 200);
    });
    let warnings: Vec<_> = lines
        .iter()
        .filter(|line| line["message"].as_str().is_some_and(|m| m.starts_with("the mail server cannot be reached")))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {lines:?}");
    assert_eq!(warnings[0]["level"], "WARN");
}
