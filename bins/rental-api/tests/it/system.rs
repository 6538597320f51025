//! Health, request ids, the OpenAPI document and the docs UI.

use actix_web::test::TestRequest;
use serde_json::Value;

use crate::support::{app, context, send};

#[actix_web::test]
async fn health_endpoints_answer() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let live = send(&app, TestRequest::get().uri("/health/live")).await;
    assert_eq!(live.status, 200);
    assert_eq!(live.body["status"], "ok");
    let ready = send(&app, TestRequest::get().uri("/health/ready")).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["components"][0]["name"], "database");
    assert_eq!(ready.body["components"][0]["status"], "up");
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let given = send(&app, TestRequest::get().uri("/health/live").insert_header(("X-Request-Id", "trace-42"))).await;
    assert_eq!(given.headers.get("x-request-id").unwrap(), "trace-42");
    let made = send(&app, TestRequest::get().uri("/health/live")).await;
    let id = made.headers.get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    // Ids that could forge log lines are replaced.
    let bad = send(&app, TestRequest::get().uri("/health/live").insert_header(("X-Request-Id", "a b\"c"))).await;
    assert_ne!(bad.headers.get("x-request-id").unwrap(), "a b\"c");
    let missing = send(&app, TestRequest::get().uri("/nope").insert_header(("X-Request-Id", "trace-43"))).await;
    missing.assert_error(404, "not_found");
    assert_eq!(missing.body["request_id"], "trace-43");
}

#[actix_web::test]
async fn openapi_lists_every_route_and_docs_are_served() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: Vec<&str> = doc.body["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/register",
        "/api/v1/users",
        "/api/v1/users/bulk",
        "/api/v1/users/me",
        "/api/v1/users/me/password",
        "/api/v1/users/{id}",
        "/api/v1/users/{id}/roles",
        "/health/live",
        "/health/ready",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    let schemes = &doc.body["components"]["securitySchemes"];
    assert_eq!(schemes["oauth2"]["flows"]["password"]["tokenUrl"], Value::from("/api/v1/auth/login"));

    let docs = actix_web::test::call_service(&app, TestRequest::get().uri("/docs").to_request()).await;
    assert_eq!(docs.status(), 200);
    let html = actix_web::test::read_body(docs).await;
    assert!(String::from_utf8_lossy(&html).contains("openapi"), "the page embeds the document");
}
