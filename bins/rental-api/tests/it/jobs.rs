//! The job queue over HTTP: admins list, inspect, retry and cancel jobs and read the queue's figures; others
//! get 403; unknown ids 404, malformed ids 400. Password recovery answers 202 whatever the address and enqueues
//! one job either way; a bad reset token is refused.

use actix_web::test::TestRequest;
use rental_repo::JobStore;
use serde_json::json;

use crate::support::{admin_token, app, bearer, context, customer_token, send};

#[actix_web::test]
async fn only_admins_see_the_queue() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let token = customer_token(&app, "jane@example.com").await;
    let id = uuid::Uuid::now_v7();
    for req in [
        TestRequest::get().uri("/api/v1/admin/jobs"),
        TestRequest::get().uri("/api/v1/admin/jobs/stats"),
        TestRequest::get().uri(&format!("/api/v1/admin/jobs/{id}")),
        TestRequest::post().uri(&format!("/api/v1/admin/jobs/{id}/retry")),
        TestRequest::post().uri(&format!("/api/v1/admin/jobs/{id}/cancel")),
    ] {
        send(&app, bearer(req, &token)).await.assert_error(403, "forbidden");
    }
}

#[actix_web::test]
async fn admins_list_inspect_cancel_and_retry_jobs() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    // Registering enqueues the welcome e-mail in the same unit as the account.
    customer_token(&app, "jane@example.com").await;

    let list =
        send(&app, bearer(TestRequest::get().uri("/api/v1/admin/jobs?kind=mail.send&state=queued"), &admin)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["total"], 1, "{}", list.body);
    let job = &list.body["items"][0];
    assert_eq!(job["payload"]["template"], "welcome");
    assert_eq!(job["payload"]["to"], "jane@example.com");
    let id = job["id"].as_str().unwrap().to_owned();

    let got = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/admin/jobs/{id}")), &admin)).await;
    assert_eq!((got.status.as_u16(), got.body["state"].as_str()), (200, Some("queued")));

    let stats = send(&app, bearer(TestRequest::get().uri("/api/v1/admin/jobs/stats"), &admin)).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.body["queue"]["queued"], 1);
    assert_eq!(stats.body["queue"]["depth"], 1);
    assert!(stats.body["worker"].is_null(), "this test instance runs no worker");

    let cancelled =
        send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/admin/jobs/{id}/cancel")), &admin)).await;
    assert_eq!((cancelled.status.as_u16(), cancelled.body["state"].as_str()), (200, Some("cancelled")));
    send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/admin/jobs/{id}/cancel")), &admin))
        .await
        .assert_error(409, "conflict");
    let retried = send(&app, bearer(TestRequest::post().uri(&format!("/api/v1/admin/jobs/{id}/retry")), &admin)).await;
    assert_eq!((retried.status.as_u16(), retried.body["state"].as_str()), (200, Some("queued")));
    assert_eq!(retried.body["attempts"], 0);

    let unknown = uuid::Uuid::now_v7();
    for req in [
        TestRequest::get().uri(&format!("/api/v1/admin/jobs/{unknown}")),
        TestRequest::post().uri(&format!("/api/v1/admin/jobs/{unknown}/retry")),
        TestRequest::post().uri(&format!("/api/v1/admin/jobs/{unknown}/cancel")),
    ] {
        send(&app, bearer(req, &admin)).await.assert_error(404, "not_found");
    }
    send(&app, bearer(TestRequest::get().uri("/api/v1/admin/jobs/not-a-uuid"), &admin))
        .await
        .assert_error(400, "invalid_id");
    send(&app, bearer(TestRequest::get().uri("/api/v1/admin/jobs?state=sleeping"), &admin))
        .await
        .assert_error(400, "invalid_query");
    send(&app, bearer(TestRequest::get().uri("/api/v1/admin/jobs?kind=no%20spaces"), &admin))
        .await
        .assert_error(400, "invalid_query");
}

#[actix_web::test]
async fn password_recovery_answers_alike_for_every_address_and_bad_tokens_are_refused() {
    let ctx = context().await;
    let app = app(&ctx).await;
    customer_token(&app, "jane@example.com").await;
    let store = ctx.state.services.jobs.store();
    let recovery_jobs = async || {
        let query = rental_repo::job_list_spec().parse(&[("kind".into(), "auth.password_recovery".into())]).unwrap();
        store.list(&query).await.unwrap().items().len()
    };
    let mut answers = Vec::new();
    for email in ["jane@example.com", "nobody@example.com"] {
        let reply =
            send(&app, TestRequest::post().uri("/api/v1/auth/password-recovery").set_json(json!({ "email": email })))
                .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        answers.push(reply.body);
    }
    assert_eq!(answers[0], answers[1], "the same answer whether or not the address exists");
    assert_eq!(recovery_jobs().await, 2, "and the same work: one job each");
    send(
        &app,
        TestRequest::post().uri("/api/v1/auth/password-recovery").set_json(json!({ "email": "not an address" })),
    )
    .await
    .assert_error(422, "validation_failed");

    send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/reset-password")
            .set_json(json!({ "token": "made-up-token", "new_password": "a-new-password" })),
    )
    .await
    .assert_error(401, "unauthorized");
    send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/reset-password")
            .set_json(json!({ "token": "made-up-token", "new_password": "a-new-password", "extra": 1 })),
    )
    .await
    .assert_error(422, "invalid_body");
}

#[actix_web::test]
async fn a_job_records_the_request_that_enqueued_it() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    // Registering enqueues the welcome e-mail; the client names its request.
    let registered = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/register")
            .insert_header(("X-Request-Id", "abc-123"))
            .set_json(json!({ "email": "jane@example.com", "full_name": "Jane Doe", "password": "customer-pw" })),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    // Without a header the request gets an id of the server's, and its job records that one.
    let unnamed = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/register")
            .set_json(json!({ "email": "jim@example.com", "full_name": "Jim Doe", "password": "customer-pw" })),
    )
    .await;
    assert_eq!(unnamed.status, 201, "{}", unnamed.body);
    let server_id = unnamed.headers.get("x-request-id").unwrap().to_str().unwrap().to_owned();

    let list = send(&app, bearer(TestRequest::get().uri("/api/v1/admin/jobs?kind=mail.send"), &admin)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let id_of = |to: &str| {
        let items = list.body["items"].as_array().unwrap();
        let job = items.iter().find(|j| j["payload"]["to"] == to).unwrap_or_else(|| panic!("{}", list.body));
        job["id"].as_str().unwrap().to_owned()
    };
    let jane = send(
        &app,
        bearer(TestRequest::get().uri(&format!("/api/v1/admin/jobs/{}", id_of("jane@example.com"))), &admin),
    )
    .await;
    assert_eq!(jane.status, 200, "{}", jane.body);
    assert_eq!(jane.body["request_id"], "abc-123", "{}", jane.body);
    let jim =
        send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/admin/jobs/{}", id_of("jim@example.com"))), &admin))
            .await;
    assert_eq!(jim.body["request_id"], json!(server_id), "{}", jim.body);

    // The document describes the view as it is returned, request id included.
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await;
    let schema = &doc.body["components"]["schemas"]["JobView"];
    let mut documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let mut returned: Vec<&String> = jane.body.as_object().unwrap().keys().collect();
    documented.sort();
    returned.sort();
    assert_eq!(documented, returned);
    assert_eq!(schema["properties"]["request_id"]["type"], json!(["string", "null"]), "{schema}");
}
