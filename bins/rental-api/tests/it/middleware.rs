//! The middleware stack: rate limits, client addresses behind proxies, CORS, compression, security headers,
//! timeouts, body limits per route and the start-up checks of the `[http]` and `[redis]` settings.

use std::io::Read;
use std::net::SocketAddr;

use actix_web::test::{self, TestRequest};
use rental_api::middleware::HttpLayers;
use rental_api::middleware::config::{HttpConfig, RateLimitConfig, RouteBodyLimit, RouteTimeout};
use rental_api::redis::{RedisConfig, SharedRedis};
use rental_api::settings::Settings;
use rental_service::Secret;
use serde_json::json;

use crate::support::{Reply, admin_token, app, app_with, bearer, context, customer_token, http_config, send};

fn from(ip: &str) -> TestRequest {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    TestRequest::default().peer_addr(addr)
}

fn limited(configure: impl FnOnce(&mut RateLimitConfig)) -> HttpConfig {
    let mut config = HttpConfig::default();
    configure(&mut config.rate_limit);
    config
}

fn layers(config: &HttpConfig) -> HttpLayers {
    HttpLayers::new(config, None).unwrap()
}

fn header(reply: &Reply, name: &str) -> Option<String> {
    reply.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn assert_limited(reply: &Reply) {
    reply.assert_error(429, "rate_limited");
    let retry_after: u64 = header(reply, "retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(header(reply, "ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(reply, "ratelimit-reset").is_some());
}

#[actix_web::test]
async fn a_flood_from_one_address_is_limited_without_affecting_another() {
    let ctx = context().await;
    let app = app_with(&ctx, layers(&limited(|l| l.anonymous_per_minute = 5))).await;
    for remaining in (0..5).rev() {
        let reply = send(&app, from("192.0.2.1").uri("/health/live")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(header(&reply, "ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(header(&reply, "ratelimit-remaining"), Some(remaining.to_string()));
    }
    for _ in 0..3 {
        assert_limited(&send(&app, from("192.0.2.1").uri("/health/live")).await);
    }
    let other = send(&app, from("192.0.2.2").uri("/health/live")).await;
    assert_eq!(other.status, 200, "another address keeps its own quota");
    assert_eq!(header(&other, "ratelimit-remaining").as_deref(), Some("4"));
}

#[actix_web::test]
async fn authenticated_requests_are_counted_per_user() {
    let ctx = context().await;
    let app = app_with(&ctx, layers(&limited(|l| l.user_per_minute = 3))).await;
    let alice = customer_token(&app, "alice@example.com").await;
    let bob = customer_token(&app, "bob@example.com").await;
    for _ in 0..3 {
        let reply = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &alice)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(header(&reply, "ratelimit-limit").as_deref(), Some("3"));
    }
    assert_limited(&send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &alice)).await);
    // Same address (the test requests have none), another user: not limited; nor are anonymous requests.
    let reply = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &bob)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["email"], "bob@example.com");
    let reply = send(&app, TestRequest::get().uri("/health/live")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(header(&reply, "ratelimit-limit").as_deref(), Some("100"), "anonymous: the per-address quota");
    // A forged token is no user: it is counted by address and refused by the route as before.
    let reply = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), "forged")).await;
    reply.assert_error(401, "unauthorized");
    assert_eq!(header(&reply, "ratelimit-limit").as_deref(), Some("100"));
}

#[actix_web::test]
async fn login_and_password_recovery_have_a_stricter_quota() {
    let ctx = context().await;
    let app = app_with(&ctx, layers(&limited(|l| l.auth_per_minute = 2))).await;
    let login = |ip: &str| {
        from(ip)
            .method(actix_web::http::Method::POST)
            .uri("/api/v1/auth/login")
            .set_json(json!({"email": "nobody@example.com", "password": "wrong-password"}))
    };
    for _ in 0..2 {
        let reply = send(&app, login("198.51.100.7")).await;
        reply.assert_error(401, "unauthorized");
        assert_eq!(header(&reply, "ratelimit-limit").as_deref(), Some("2"));
    }
    assert_limited(&send(&app, login("198.51.100.7")).await);
    // Recovery shares the quota: the same guesser cannot switch to flooding mailboxes.
    let recovery = from("198.51.100.7")
        .method(actix_web::http::Method::POST)
        .uri("/api/v1/auth/password-recovery")
        .set_json(json!({"email": "nobody@example.com"}));
    assert_limited(&send(&app, recovery).await);
    // Other routes from that address and logins from another address go on.
    assert_eq!(send(&app, from("198.51.100.7").uri("/health/live")).await.status, 200);
    send(&app, login("198.51.100.8")).await.assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let ctx = context().await;
    let mut config = limited(|l| l.anonymous_per_minute = 2);
    config.trusted_proxies = vec!["10.0.0.0/8".into()];
    let app = app_with(&ctx, layers(&config)).await;
    let via = |peer: &str, client: &str| from(peer).uri("/health/live").insert_header(("X-Forwarded-For", client));
    for _ in 0..2 {
        assert_eq!(send(&app, via("10.0.0.1", "203.0.113.1")).await.status, 200);
    }
    assert_limited(&send(&app, via("10.0.0.2", "203.0.113.1")).await);
    assert_eq!(send(&app, via("10.0.0.1", "203.0.113.2")).await.status, 200, "another client behind the proxy");
    // An untrusted peer cannot escape its quota by making up forwarded addresses.
    for n in 0..2 {
        assert_eq!(send(&app, via("198.51.100.20", &format!("203.0.113.{}", 100 + n))).await.status, 200);
    }
    assert_limited(&send(&app, via("198.51.100.20", "203.0.113.200")).await);
}

#[actix_web::test]
async fn cors_preflights_are_answered_for_listed_origins_only() {
    let ctx = context().await;
    let mut config = http_config();
    config.cors.allowed_origins = vec!["https://app.example.com".into()];
    config.cors.allow_credentials = true;
    let app = app_with(&ctx, layers(&config)).await;
    let preflight = |origin: &str, method: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/api/v1/users/me")
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", method))
            .insert_header(("Access-Control-Request-Headers", "authorization, content-type"))
    };
    let ok = send(&app, preflight("https://app.example.com", "PATCH")).await;
    assert_eq!(ok.status, 204, "{}", ok.body);
    assert_eq!(header(&ok, "access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    assert_eq!(header(&ok, "access-control-allow-credentials").as_deref(), Some("true"));
    assert_eq!(header(&ok, "access-control-max-age").as_deref(), Some("3600"));
    assert!(header(&ok, "access-control-allow-methods").unwrap().contains("PATCH"));
    assert!(header(&ok, "access-control-allow-headers").unwrap().contains("Authorization"));

    let denied = send(&app, preflight("https://evil.example.net", "GET")).await;
    denied.assert_error(403, "cors_denied");
    assert!(header(&denied, "access-control-allow-origin").is_none());
    send(&app, preflight("https://app.example.com", "TRACE")).await.assert_error(403, "cors_denied");

    let request = |origin: &str| TestRequest::get().uri("/health/live").insert_header(("Origin", origin));
    let allowed = send(&app, request("https://app.example.com")).await;
    assert_eq!(header(&allowed, "access-control-allow-origin").as_deref(), Some("https://app.example.com"));
    assert!(header(&allowed, "access-control-expose-headers").unwrap().contains("X-Request-Id"));
    assert!(header(&allowed, "vary").unwrap().contains("Origin"));
    let other = send(&app, request("https://evil.example.net")).await;
    assert_eq!(other.status, 200, "the browser, not the server, keeps the answer from the page");
    assert!(header(&other, "access-control-allow-origin").is_none());

    // Without configured origins there is no CORS at all: a preflight is an OPTIONS the API does not have.
    let plain = app_with(&ctx, layers(&http_config())).await;
    let reply = send(&plain, preflight("https://app.example.com", "GET")).await;
    reply.assert_error(405, "method_not_allowed");
    assert!(header(&reply, "access-control-allow-origin").is_none());
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap(),
        "br" => brotli::Decompressor::new(body, 4096).read_to_end(&mut out).unwrap(),
        other => panic!("unexpected encoding {other}"),
    };
    out
}

#[actix_web::test]
async fn bodies_above_a_kibibyte_are_compressed_as_the_client_prefers() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let plain = test::call_and_read_body(&app, TestRequest::get().uri("/api/v1/openapi.json").to_request()).await;
    assert!(plain.len() > 1024, "the document is big enough to compress");
    for (accept, expected) in [("gzip", "gzip"), ("br", "br"), ("gzip, deflate, br", "br"), ("br;q=0.1, gzip", "gzip")]
    {
        let res = test::call_service(
            &app,
            TestRequest::get().uri("/api/v1/openapi.json").insert_header(("Accept-Encoding", accept)).to_request(),
        )
        .await;
        assert_eq!(res.headers().get("content-encoding").unwrap(), expected, "{accept}");
        assert!(res.headers().get("vary").unwrap().to_str().unwrap().contains("accept-encoding"));
        let body = test::read_body(res).await;
        assert!(body.len() < plain.len() / 3, "{accept}: {} of {}", body.len(), plain.len());
        assert_eq!(decode(expected, &body), plain, "{accept}");
    }
    // Small answers go as they are, still marked as varying with the encoding.
    let res = test::call_service(
        &app,
        TestRequest::get().uri("/health/live").insert_header(("Accept-Encoding", "gzip, br")).to_request(),
    )
    .await;
    assert!(res.headers().get("content-encoding").is_none());
    assert!(res.headers().get("vary").unwrap().to_str().unwrap().contains("accept-encoding"));
    let body = test::read_body(res).await;
    assert!(body.len() < 1024);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["status"], "ok");
    // Nothing accepted, or compression off: plain.
    let res = test::call_service(&app, TestRequest::get().uri("/api/v1/openapi.json").to_request()).await;
    assert!(res.headers().get("content-encoding").is_none());
    let mut config = http_config();
    config.compression.enabled = false;
    let off = app_with(&ctx, layers(&config)).await;
    let res = test::call_service(
        &off,
        TestRequest::get().uri("/api/v1/openapi.json").insert_header(("Accept-Encoding", "gzip")).to_request(),
    )
    .await;
    assert!(res.headers().get("content-encoding").is_none());
}

#[actix_web::test]
async fn security_headers_are_on_every_answer_and_hsts_behind_tls() {
    let ctx = context().await;
    let app = app(&ctx).await;
    for uri in ["/health/live", "/nope", "/docs/"] {
        let reply = send(&app, TestRequest::get().uri(uri)).await;
        assert_eq!(header(&reply, "x-content-type-options").as_deref(), Some("nosniff"), "{uri}");
        assert_eq!(header(&reply, "x-frame-options").as_deref(), Some("DENY"), "{uri}");
        assert_eq!(header(&reply, "referrer-policy").as_deref(), Some("no-referrer"), "{uri}");
        let csp = header(&reply, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(header(&reply, "strict-transport-security").is_none(), "{uri}: no HSTS over plain HTTP");
    }
    // The docs page loads only same-origin scripts, which the policy allows.
    let page = test::call_and_read_body(&app, TestRequest::get().uri("/docs/").to_request()).await;
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(page.contains("<script src=\"./swagger-ui-bundle.js\""), "{page}");
    assert!(!page.contains("<script>"), "an inline script would need the policy to allow it: {page}");

    let mut config = http_config();
    config.headers.behind_tls = true;
    let tls = app_with(&ctx, layers(&config)).await;
    let reply = send(&tls, TestRequest::get().uri("/health/live")).await;
    assert_eq!(header(&reply, "strict-transport-security").as_deref(), Some("max-age=31536000; includeSubDomains"));
}

#[actix_web::test]
async fn a_request_over_its_time_answers_504_and_writes_nothing() {
    let ctx = context().await;
    let normal = app(&ctx).await;
    let admin = admin_token(&ctx, &normal).await;
    let mut config = http_config();
    // A route of its own with a limit no bulk import of 200 users (200 password hashes) can meet.
    config.timeout.routes = vec![RouteTimeout { route: "POST /api/v1/users/bulk".into(), ms: 1 }];
    config.cors.allowed_origins = vec!["https://app.example.com".into()];
    let hurried = app_with(&ctx, layers(&config)).await;
    let users: Vec<_> = (0..200)
        .map(|i| json!({"email": format!("bulk{i}@example.com"), "full_name": "Bulk", "password": "bulk-password"}))
        .collect();
    let bulk = || bearer(TestRequest::post().uri("/api/v1/users/bulk"), &admin).set_json(json!({"users": users}));
    // The 504 leaves the app as an error carrying its finished response, which the server sends as it is
    // (actix-http's dispatcher renders a service error with `error_response`); the test does the same.
    let request = bulk().insert_header(("X-Request-Id", "slow-1")).insert_header(("Origin", "https://app.example.com"));
    let err =
        test::try_call_service(&hurried, request.to_request()).await.err().expect("the import cannot finish in 1 ms");
    let res = err.error_response();
    let status = res.status();
    let headers = res.headers().clone();
    let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout");
    assert_eq!(body["request_id"], "slow-1");
    assert_eq!(headers.get("x-request-id").unwrap(), "slow-1");
    assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff");
    // A browser page of an allowed origin can read the answer.
    assert_eq!(headers.get("access-control-allow-origin").unwrap(), "https://app.example.com");
    // Other routes keep the default limit.
    assert_eq!(send(&hurried, TestRequest::get().uri("/health/live")).await.status, 200);
    // Nothing of the cancelled import was kept: the same 200 users can be created afterwards.
    let done = send(&normal, bulk()).await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(done.body["created"], 200);
}

#[actix_web::test]
async fn a_route_can_have_a_smaller_or_a_larger_body_limit_than_the_default() {
    let ctx = context().await;
    let mut config = http_config();
    config.body_limit.routes = vec![
        RouteBodyLimit { route: "POST /api/v1/auth/login".into(), bytes: 200 },
        RouteBodyLimit { route: "POST /api/v1/auth/register".into(), bytes: 400 * 1024 },
    ];
    let app = app_with(&ctx, layers(&config)).await;
    let padded = |len: usize| json!({"email": "pad@example.com", "password": "x".repeat(len)});

    // Smaller: refused from its declared length, with the route's limit in the message.
    let small = send(&app, TestRequest::post().uri("/api/v1/auth/login").set_json(padded(10))).await;
    assert_eq!(small.status, 401, "under the limit it is read: {}", small.body);
    let over = send(&app, TestRequest::post().uri("/api/v1/auth/login").set_json(padded(300))).await;
    over.assert_error(413, "payload_too_large");
    assert!(over.body["error"]["message"].as_str().unwrap().contains("200 bytes"), "{}", over.body);

    // Larger: a body above the default 256 KiB is read on the route that allows it (and refused for its
    // content, not its size), while another route keeps the default.
    let name = "x".repeat(300 * 1024);
    let body = json!({"email": "big@example.com", "full_name": name, "password": "password1"});
    let larger = send(&app, TestRequest::post().uri("/api/v1/auth/register").set_json(&body)).await;
    larger.assert_error(422, "validation_failed");
    let admin = admin_token(&ctx, &app).await;
    let default = send(&app, bearer(TestRequest::patch().uri("/api/v1/users/me"), &admin).set_json(&body)).await;
    default.assert_error(413, "payload_too_large");
    assert!(default.body["error"]["message"].as_str().unwrap().contains("262144 bytes"), "{}", default.body);
}

fn config_dir(toml: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rental-mw-config-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("default.toml"), toml).unwrap();
    dir
}

#[test]
fn bad_middleware_settings_fail_at_start_up_naming_the_key() {
    let cases = [
        ("[http.cors]\nallowed_origins = [\"*\"]\nallow_credentials = true\n", "http.cors.allow_credentials"),
        (
            "[http.cors]\nallowed_origins = [\"https://ok.example.com\", \"not an origin\"]\n",
            "http.cors.allowed_origins[1]",
        ),
        ("[http.rate_limit]\nanonymous_per_minute = 0\n", "http.rate_limit.anonymous_per_minute"),
        ("http = { trusted_proxies = [\"10.0.0.0/40\"] }\n", "http.trusted_proxies[0]"),
        ("[[http.timeout.routes]]\nroute = \"exports\"\nms = 1000\n", "http.timeout.routes[0].route"),
        ("[redis]\nurl = \"mysql://localhost\"\n", "redis.url"),
        ("[[http.body_limit.routes]]\nroute = \"POST users\"\nbytes = 10\n", "http.body_limit.routes[0].route"),
        ("[[http.body_limit.routes]]\nroute = \"/api/v1/auth/*\"\nbytes = 0\n", "http.body_limit.routes[0].bytes"),
    ];
    for (toml, key) in cases {
        let dir = config_dir(toml);
        let environment = config::Environment::with_prefix("RENTAL").source(Some(Default::default()));
        let err = Settings::load_from(&dir, "development", environment).unwrap_err().to_string();
        assert!(err.contains(key), "{toml}: {err}");
    }
    // Limits of zero are fine once the limits are off.
    let dir = config_dir("[http.rate_limit]\nenabled = false\nanonymous_per_minute = 0\n");
    let environment = config::Environment::with_prefix("RENTAL").source(Some(Default::default()));
    assert!(Settings::load_from(&dir, "development", environment).is_ok());
}

/// Two instances with one Redis share their counts (TEST_REDIS_URL; skipped without it, failing when it is set
/// but unreachable).
#[actix_web::test]
async fn instances_share_their_limits_through_redis() {
    let Ok(url) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("TEST_REDIS_URL is unset: the shared rate limit is not tested");
        return;
    };
    // A prefix of this run's own, so that concurrent runs and earlier windows do not interfere.
    let redis = RedisConfig {
        url: Secret::new(url.clone()),
        key_prefix: format!("rental-test-{}", uuid::Uuid::now_v7().simple()),
        ..RedisConfig::default()
    };
    let connect =
        || async { SharedRedis::connect(&redis).await.expect("TEST_REDIS_URL is set but unreachable").unwrap() };
    let config = limited(|l| l.anonymous_per_minute = 3);
    let first = HttpLayers::new(&config, Some(connect().await)).unwrap();
    let second = HttpLayers::new(&config, Some(connect().await)).unwrap();
    assert!(first.limiter().shared() && second.limiter().shared());
    let ctx = context().await;
    let one = app_with(&ctx, first).await;
    let two = app_with(&ctx, second).await;
    // The counters are per minute of the clock: start early in a minute so that all requests fall in one.
    let second_of_minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60;
    if second_of_minute >= 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second_of_minute)).await;
    }
    for (app, remaining) in [(&one, "2"), (&two, "1"), (&one, "0")] {
        let reply = send(app, from("192.0.2.50").uri("/health/live")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(header(&reply, "ratelimit-remaining").as_deref(), Some(remaining), "counted across instances");
    }
    assert_limited(&send(&two, from("192.0.2.50").uri("/health/live")).await);
    assert_limited(&send(&one, from("192.0.2.50").uri("/health/live")).await);
    let other = send(&two, from("192.0.2.51").uri("/health/live")).await;
    assert_eq!(other.status, 200);
    assert_eq!(header(&other, "ratelimit-remaining").as_deref(), Some("2"));
}
