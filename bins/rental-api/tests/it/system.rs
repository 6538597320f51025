//! Health, request ids, the OpenAPI document and the docs UI.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::Value;

use crate::support::{admin_token, app, bearer, context, send};

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
    assert!(docs.status().is_redirection(), "{}", docs.status());
    assert_eq!(docs.headers().get("location").unwrap(), "/docs/");
}

/// Every `src`/`href`/`url` reference of a page or script, for the offline check.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["src=\"", "href=\"", "url\": \"", "\"url\":\""] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            found.push(rest[..rest.find('"').unwrap_or(rest.len())].to_owned());
        }
    }
    found
}

#[actix_web::test]
async fn the_docs_ui_is_served_from_the_binary_and_loads_nothing_from_another_host() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let get = |uri: &str| TestRequest::get().uri(uri).to_request();
    let page = actix_web::test::call_service(&app, get("/docs/")).await;
    assert_eq!(page.status(), 200);
    let html = String::from_utf8(actix_web::test::read_body(page).await.to_vec()).unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let assets = references(&html);
    assert!(assets.iter().any(|a| a.ends_with(".js")), "the page loads its scripts: {assets:?}");
    let initializer = actix_web::test::call_service(&app, get("/docs/swagger-initializer.js")).await;
    assert_eq!(initializer.status(), 200);
    let initializer = String::from_utf8(actix_web::test::read_body(initializer).await.to_vec()).unwrap();
    assert!(initializer.contains("/api/v1/openapi.json"), "the UI reads our document: {initializer}");
    assert!(initializer.contains("\"validatorUrl\": \"none\""), "no badge from validator.swagger.io: {initializer}");
    for asset in assets.iter().chain(&references(&initializer)) {
        assert!(!asset.contains("//"), "{asset} is loaded from another host");
        let path =
            if asset.starts_with('/') { asset.clone() } else { format!("/docs/{}", asset.trim_start_matches("./")) };
        let served = actix_web::test::call_service(&app, get(&path)).await;
        assert_eq!(served.status(), 200, "{path} is not served");
        assert!(!actix_web::test::read_body(served).await.is_empty(), "{path} is empty");
    }
}

#[actix_web::test]
async fn undeclared_methods_answer_405_with_allow() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let token = admin_token(&ctx, &app).await;
    for (method, uri, allow) in [
        (Method::DELETE, "/api/v1/users/me", "GET, PATCH"),
        (Method::PUT, "/api/v1/auth/login", "POST"),
        (Method::POST, "/api/v1/analytics/revenue", "GET"),
        (Method::PATCH, "/health/live", "GET"),
    ] {
        let reply = send(&app, bearer(TestRequest::default().method(method.clone()).uri(uri), &token)).await;
        reply.assert_error(405, "method_not_allowed");
        assert_eq!(reply.headers.get("allow").unwrap(), allow, "{method} {uri}");
    }
    // The declared method of a parameterised path that a literal path does not shadow still works.
    let reply = send(&app, bearer(TestRequest::delete().uri("/api/v1/users/not-a-uuid"), &token)).await;
    reply.assert_error(400, "invalid_id");
}

#[actix_web::test]
async fn every_response_of_every_route_has_a_typed_schema() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await;
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    let mut untyped = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                // 204 and 304 answers have no body by definition.
                if status == "204" || status == "304" {
                    continue;
                }
                let Some(content) = response["content"].as_object() else {
                    untyped.push(format!("{method} {path} {status}: no content"));
                    continue;
                };
                for (media, body) in content {
                    let schema = &body["schema"];
                    let reference = schema["$ref"].as_str().or(schema["items"]["$ref"].as_str());
                    let typed = match reference {
                        Some(r) => schemas.get(r.trim_start_matches("#/components/schemas/")).is_some_and(|s| {
                            s.get("properties").is_some()
                                || s.get("enum").is_some()
                                || s.get("allOf").is_some()
                                || s.get("oneOf").is_some()
                        }),
                        None => media.starts_with("text/") || schema.get("properties").is_some(),
                    };
                    if !typed {
                        untyped.push(format!("{method} {path} {status} {media}: {schema}"));
                    }
                }
            }
        }
    }
    assert!(untyped.is_empty(), "responses without a typed schema:\n{}", untyped.join("\n"));
}
