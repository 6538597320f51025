//! The monitoring endpoints: public health (200, 503), admin views, the Prometheus exposition and its token.

use actix_web::test::TestRequest;
use rental_monitor::{AlertThresholds, MonitorConfig};
use serde_json::Value;

use crate::support::{admin_token, app, bearer, context, context_with_monitor, customer_token, send};

const ADMIN_VIEWS: [&str; 3] = ["/monitoring/metrics", "/monitoring/alerts", "/monitoring/system"];

fn names(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect()
}

#[actix_web::test]
async fn health_is_public_and_names_the_database_and_every_component() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let reply = send(&app, TestRequest::get().uri("/monitoring/health")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_secs"].as_f64().unwrap() >= 0.0);
    let database = &body["database"];
    assert_eq!(database["status"], "up");
    let backend = if ctx._db.is_postgres() { "postgres" } else { "sqlite" };
    assert_eq!(database["backend"], backend);
    assert!(database["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(database["pool"]["max_connections"], 5);
    assert_eq!(database["pool"]["waiting"], 0);
    assert_eq!(names(&body["components"]), ["cache", "smtp", "redis", "stripe"]);
    let components = body["components"].as_array().unwrap();
    assert_eq!(components[0]["status"], "up");
    assert_eq!(components[0]["configured"], true);
    for later in &components[1..] {
        assert_eq!(later["status"], "not_configured", "{later}");
        assert_eq!(later["configured"], false, "{later}");
    }
    assert!(components.iter().all(|c| c.get("last_error").is_none()), "no error text in public: {body}");
}

#[actix_web::test]
async fn health_is_503_unhealthy_when_the_database_is_gone() {
    let ctx = context_with_monitor(&MonitorConfig { health_cache_ms: 0, ..MonitorConfig::default() }).await;
    let app = app(&ctx).await;
    assert_eq!(send(&app, TestRequest::get().uri("/monitoring/health")).await.status, 200);

    ctx.state.db.clone().close().await.unwrap();
    let reply = send(&app, TestRequest::get().uri("/monitoring/health")).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["status"], "unhealthy");
    assert_eq!(reply.body["database"]["status"], "down");
    assert_eq!(reply.body["database"]["latency_ms"], Value::Null);
    // Liveness does not depend on the database.
    assert_eq!(send(&app, TestRequest::get().uri("/health/live")).await.status, 200);
}

#[actix_web::test]
async fn a_young_health_result_is_reused_instead_of_asking_the_database_again() {
    let ctx = context_with_monitor(&MonitorConfig { health_cache_ms: 60_000, ..MonitorConfig::default() }).await;
    let app = app(&ctx).await;
    let first = send(&app, TestRequest::get().uri("/monitoring/health")).await;
    let executed = ctx.state.db.statement_stats().executed();
    let second = send(&app, TestRequest::get().uri("/monitoring/health")).await;
    assert_eq!(ctx.state.db.statement_stats().executed(), executed, "no statement for the second probe");
    assert_eq!(first.body["database"]["checked_at"], second.body["database"]["checked_at"]);
}

#[actix_web::test]
async fn admin_views_answer_admins_only() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let customer = customer_token(&app, "watcher@example.com").await;
    for uri in ADMIN_VIEWS {
        send(&app, TestRequest::get().uri(uri)).await.assert_error(401, "unauthorized");
        send(&app, bearer(TestRequest::get().uri(uri), &customer)).await.assert_error(403, "forbidden");
        let reply = send(&app, bearer(TestRequest::get().uri(uri), &admin)).await;
        assert_eq!(reply.status, 200, "{uri}: {}", reply.body);
    }
}

#[actix_web::test]
async fn the_metrics_view_counts_route_patterns_not_raw_paths() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let ids = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    for id in ids {
        let reply = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/users/{id}")), &admin)).await;
        assert_eq!(reply.status, 404);
    }
    send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &admin)).await;

    let reply = send(&app, bearer(TestRequest::get().uri("/monitoring/metrics"), &admin)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let requests = &reply.body["requests"];
    let routes = requests["routes"].as_array().unwrap();
    let by_id = routes.iter().find(|r| r["route"] == "/api/v1/users/{id}").expect("the pattern is a route");
    assert_eq!(by_id["requests"], 2);
    assert_eq!(by_id["client_errors"], 2);
    assert_eq!(by_id["error_rate"], 0.0, "4xx are not server errors");
    assert_eq!(by_id["latency"]["count"], 2);
    let text = reply.body.to_string();
    for id in ids {
        assert!(!text.contains(&id.to_string()), "a raw path leaked into the routes: {text}");
    }
    assert!(requests["total"].as_u64().unwrap() >= 4);
    assert_eq!(requests["in_flight"], 1, "the metrics request itself");

    let database = &reply.body["database"];
    assert!(database["statements"]["executed"].as_u64().unwrap() > 0);
    assert!(database["pool"]["acquires"].as_u64().unwrap() > 0, "creating the admin began a transaction");
    let caches = reply.body["caches"].as_array().unwrap();
    let users = caches.iter().find(|c| c["name"] == "users").unwrap();
    assert!(users["hits"].as_u64().unwrap() + users["misses"].as_u64().unwrap() > 0, "{users}");
    assert_eq!(reply.body["jobs"]["worker"], Value::Null);
    assert!(reply.body["jobs"]["queue"]["dead"].is_u64(), "{}", reply.body["jobs"]);
    assert_eq!(names(&reply.body["components"]), ["cache", "smtp", "redis", "stripe"]);
}

#[actix_web::test]
async fn alerts_report_since_when_they_fire() {
    // Any memory use is above 0 %, so this alert fires from the first evaluation on.
    let thresholds = AlertThresholds { memory_warn_percent: 0.0, ..AlertThresholds::default() };
    let ctx = context_with_monitor(&MonitorConfig { thresholds, ..MonitorConfig::default() }).await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let first = send(&app, bearer(TestRequest::get().uri("/monitoring/alerts"), &admin)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let memory = first.body["alerts"].as_array().unwrap().iter().find(|a| a["name"] == "high_memory").cloned();
    let memory = memory.unwrap_or_else(|| panic!("no high_memory alert: {}", first.body));
    assert_eq!(memory["severity"], "warning");
    assert_eq!(memory["threshold"], 0.0);
    let since = memory["since"].as_str().unwrap().to_owned();
    assert!(chrono::DateTime::parse_from_rfc3339(&since).is_ok(), "{since}");

    let second = send(&app, bearer(TestRequest::get().uri("/monitoring/alerts"), &admin)).await;
    let again = second.body["alerts"].as_array().unwrap().iter().find(|a| a["name"] == "high_memory").unwrap();
    assert_eq!(again["since"], Value::from(since), "still the same period");
    assert!(second.body["alerts"].as_array().unwrap().iter().all(|a| a["name"] != "dead_jobs"));
}

#[actix_web::test]
async fn the_system_view_shows_resources_and_the_effective_settings() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let reply = send(&app, bearer(TestRequest::get().uri("/monitoring/system"), &admin)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body["memory_total_bytes"].as_u64().unwrap() > 0);
    assert!(reply.body["cpu_count"].as_u64().unwrap() >= 1);
    assert_eq!(reply.body["effective"]["profile"], "test");
    assert_eq!(reply.body["version"], env!("CARGO_PKG_VERSION"));
}

async fn scrape<S, B>(app: &S, token: Option<&str>) -> (u16, String, Option<String>)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let mut req = TestRequest::get().uri("/metrics");
    if let Some(token) = token {
        req = bearer(req, token);
    }
    let res = actix_web::test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body = actix_web::test::read_body(res).await;
    (status, String::from_utf8(body.to_vec()).unwrap(), content_type)
}

#[actix_web::test]
async fn the_prometheus_exposition_has_route_patterns_units_and_gauges() {
    let ctx = context().await;
    let app = app(&ctx).await;
    send(&app, TestRequest::get().uri("/health/live")).await;
    let id = uuid::Uuid::new_v4();
    send(&app, TestRequest::get().uri(&format!("/api/v1/products/{id}"))).await;

    let (status, text, content_type) = scrape(&app, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        r#"rental_http_requests_total{route="/health/live",status="2xx"} 1"#,
        r#"rental_http_requests_total{route="/api/v1/products/{id}",status="4xx"} 1"#,
        r#"rental_http_request_duration_seconds_count{route="/health/live"} 1"#,
        "# TYPE rental_http_request_duration_seconds histogram",
        "# TYPE rental_http_requests_in_flight gauge",
        "rental_db_pool_max_connections 5",
        "# TYPE rental_system_memory_total_bytes gauge",
        r#"rental_component_configured{component="stripe"} 0"#,
        r#"rental_cache_hits_total{cache="users",tier="local"} 0"#,
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
    }
    assert!(text.contains("rental_jobs{state=\"dead\"} 0"), "{text}");
    assert!(!text.contains(&id.to_string()), "a raw path leaked: {text}");
}

#[actix_web::test]
async fn the_exposition_needs_the_token_when_one_is_set() {
    let token = "scrape-token-0123456789";
    let ctx =
        context_with_monitor(&MonitorConfig { metrics_token: Some(token.into()), ..MonitorConfig::default() }).await;
    let app = app(&ctx).await;
    let missing = send(&app, TestRequest::get().uri("/metrics")).await;
    missing.assert_error(401, "unauthorized");
    let wrong = send(&app, bearer(TestRequest::get().uri("/metrics"), "scrape-token-0123456780")).await;
    wrong.assert_error(401, "unauthorized");
    let (status, text, _) = scrape(&app, Some(token)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE rental_http_requests_total counter"), "{text}");
}

#[actix_web::test]
async fn the_contract_documents_the_monitoring_routes_and_their_statuses() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await;
    let paths = &doc.body["paths"];
    let statuses = |path: &str| -> Vec<String> {
        paths[path]["get"]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{path} missing"))
            .keys()
            .cloned()
            .collect()
    };
    // 429 and 504 are documented on every operation: the rate limits and the timeout apply to all.
    assert_eq!(statuses("/monitoring/health"), ["200", "429", "503", "504"]);
    for path in ADMIN_VIEWS {
        let found = statuses(path);
        for status in ["200", "401", "403"] {
            assert!(found.iter().any(|s| s == status), "{path} lacks {status}: {found:?}");
        }
    }
    let metrics = statuses("/metrics");
    assert!(metrics.iter().any(|s| s == "401"), "{metrics:?}");
    let metrics_200 = &paths["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(metrics_200["text/plain; version=0.0.4; charset=utf-8"].is_object(), "{metrics_200}");
}
