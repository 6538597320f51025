//! The `Idempotency-Key` header on our own mutating endpoints: replays, mismatches, concurrent duplicates,
//! failed effects, expiry, invalid keys and keys private to their caller.

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use chrono::Duration;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::rentals::{product, rental, rentals_count};
use crate::support::{Ctx, app, bearer, context, context_with_pool, customer_token, login, send, staff_token};

/// Status, `Idempotent-Replayed` header and body bytes of an answer.
pub(crate) async fn raw<S, B>(app: &S, req: TestRequest) -> (StatusCode, Option<String>, Vec<u8>)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status();
    let replayed = res.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, test::read_body(res).await.to_vec())
}

pub(crate) fn keyed(req: TestRequest, token: &str, key: &str) -> TestRequest {
    bearer(req, token).insert_header(("Idempotency-Key", key))
}

async fn count(ctx: &Ctx, table: &str) -> i64 {
    let conn = ctx.state.db.connection();
    let sql = Statement::from_string(conn.get_database_backend(), format!("SELECT COUNT(*) FROM {table}"));
    conn.query_one_raw(sql).await.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
}

#[actix_web::test]
async fn the_same_key_and_body_answer_the_first_response_and_the_effect_happens_once() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-1", "EUR", 5).await;
    let body = rental(&tent, 1, 2, 4);
    let post = || TestRequest::post().uri("/api/v1/rentals").set_json(&body);

    let (status, replayed, first) = raw(&app, keyed(post(), &jane, "order-1")).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, None), "{}", String::from_utf8_lossy(&first));
    let (status, replayed, second) = raw(&app, keyed(post(), &jane, "order-1")).await;
    assert_eq!((status, replayed.as_deref()), (StatusCode::CREATED, Some("true")));
    assert_eq!(first, second, "the replay is the first answer, byte for byte");
    assert_eq!(rentals_count(&ctx).await, (1, 1));
    assert_eq!(count(&ctx, "idempotency_keys").await, 1);

    // The same body without a key, or with another key, is another order.
    assert_eq!(raw(&app, bearer(post(), &jane)).await.0, StatusCode::CREATED);
    assert_eq!(raw(&app, keyed(post(), &jane, "order-2")).await.0, StatusCode::CREATED);
    assert_eq!(rentals_count(&ctx).await, (3, 3));

    // Lifecycle steps replay too: a cancel sent twice answers the same order, cancelled once.
    let id: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let cancel = || TestRequest::post().uri(&format!("/api/v1/rentals/{}/cancel", id["id"].as_str().unwrap()));
    let (status, _, cancelled) = raw(&app, keyed(cancel(), &jane, "cancel-1")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&cancelled));
    let (status, replayed, again) = raw(&app, keyed(cancel(), &jane, "cancel-1")).await;
    assert_eq!((status, replayed.as_deref(), &again), (StatusCode::OK, Some("true"), &cancelled));
    // Without the key the second cancel is refused: the replay did not run the transition again.
    send(&app, bearer(cancel(), &jane)).await.assert_error(409, "illegal_transition");
}

#[actix_web::test]
async fn a_different_request_with_a_used_key_is_422_and_changes_nothing() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-2", "EUR", 5).await;
    let first =
        send(&app, keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "k").set_json(rental(&tent, 1, 2, 4)))
            .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let other =
        send(&app, keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "k").set_json(rental(&tent, 2, 2, 4)))
            .await;
    other.assert_error(422, "idempotency_mismatch");
    assert_eq!(rentals_count(&ctx).await, (1, 1));
}

#[actix_web::test]
async fn ten_concurrent_requests_with_one_key_have_one_effect() {
    let ctx = context_with_pool(rental_testkit::TestDb::new().await, 20).await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-3", "EUR", 20).await;
    let body = rental(&tent, 1, 2, 4);
    let requests = (0..10)
        .map(|_| raw(&app, keyed(TestRequest::post().uri("/api/v1/rentals").set_json(&body), &jane, "concurrent")));
    let replies = futures_util::future::join_all(requests).await;
    let created: Vec<&Vec<u8>> = replies.iter().filter(|r| r.0 == StatusCode::CREATED).map(|r| &r.2).collect();
    let conflicts = replies.iter().filter(|r| r.0 == StatusCode::CONFLICT).count();
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.0).collect();
    assert_eq!(created.len() + conflicts, 10, "{statuses:?}");
    assert!(!created.is_empty(), "{statuses:?}");
    assert!(created.iter().all(|body| *body == created[0]), "every success is the one order");
    assert_eq!(replies.iter().filter(|r| r.0 == StatusCode::CREATED && r.1.is_none()).count(), 1, "{statuses:?}");
    for (status, _, body) in replies.iter().filter(|r| r.0 == StatusCode::CONFLICT) {
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (409, Some("idempotency_conflict")));
    }
    assert_eq!(rentals_count(&ctx).await, (1, 1));
    assert_eq!(count(&ctx, "idempotency_keys").await, 1);
}

#[actix_web::test]
async fn a_failed_effect_leaves_no_key_and_a_retry_with_the_key_can_succeed() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let bob = customer_token(&app, "bob@example.com").await;
    let (camera, _) = product(&app, &staff, "CAM-4", "EUR", 1).await;
    let taken =
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &bob).set_json(rental(&camera, 1, 2, 4))).await;
    assert_eq!(taken.status, 201, "{}", taken.body);
    let attempt =
        || keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "retry-me").set_json(rental(&camera, 1, 2, 4));
    send(&app, attempt()).await.assert_error(409, "unavailable");
    assert_eq!(count(&ctx, "idempotency_keys").await, 0, "a failed effect leaves no key");
    // Validation failures store nothing either.
    let bad = keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "retry-me").set_json(rental(&camera, 0, 2, 4));
    send(&app, bad).await.assert_error(422, "validation_failed");
    assert_eq!(count(&ctx, "idempotency_keys").await, 0);

    let cancel = format!("/api/v1/rentals/{}/cancel", taken.body["id"].as_str().unwrap());
    assert_eq!(send(&app, bearer(TestRequest::post().uri(&cancel), &bob)).await.status, 200);
    let retried = send(&app, attempt()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert!(retried.headers.get("idempotent-replayed").is_none());
    assert_eq!(rentals_count(&ctx).await, (2, 2));
}

#[actix_web::test]
async fn an_expired_key_counts_as_new_and_is_purged() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-5", "EUR", 5).await;
    let body = rental(&tent, 1, 3, 5);
    let first = send(&app, keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "old").set_json(&body)).await;
    assert_eq!(first.status, 201, "{}", first.body);
    // Within the lifetime nothing is purged.
    assert_eq!(ctx.state.services.idempotency.purge_expired().await.unwrap(), 0);

    ctx.clock.advance(Duration::hours(24) + Duration::seconds(1));
    let jane = login(&app, "jane@example.com", "customer-pw").await;
    let again = send(&app, keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "old").set_json(&body)).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert!(again.headers.get("idempotent-replayed").is_none());
    assert_ne!(again.body["id"], first.body["id"]);
    assert_eq!(rentals_count(&ctx).await, (2, 2));
    // The second use took the expired row over; once it expires too, the purge deletes it.
    assert_eq!(count(&ctx, "idempotency_keys").await, 1);
    let other = send(&app, keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "young").set_json(&body)).await;
    assert_eq!(other.status, 201, "{}", other.body);
    ctx.clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert_eq!(ctx.state.services.idempotency.purge_expired().await.unwrap(), 2);
    assert_eq!(count(&ctx, "idempotency_keys").await, 0);
}

#[actix_web::test]
async fn invalid_keys_are_400_and_write_nothing() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-6", "EUR", 5).await;
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "tab\there"] {
        let req = keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, key).set_json(rental(&tent, 1, 2, 4));
        send(&app, req).await.assert_error(400, "invalid_idempotency_key");
    }
    let non_ascii = bearer(TestRequest::post().uri("/api/v1/rentals"), &jane)
        .insert_header(("Idempotency-Key", actix_web::http::header::HeaderValue::from_bytes(b"caf\xe9").unwrap()))
        .set_json(rental(&tent, 1, 2, 4));
    send(&app, non_ascii).await.assert_error(400, "invalid_idempotency_key");
    assert_eq!(rentals_count(&ctx).await, (0, 0));
    // 255 printable characters are a good key.
    let ok =
        keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, &"k".repeat(255)).set_json(rental(&tent, 1, 2, 4));
    assert_eq!(send(&app, ok).await.status, 201);
}

#[actix_web::test]
async fn a_key_belongs_to_its_caller() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let bob = customer_token(&app, "bob@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-7", "EUR", 5).await;
    let body = rental(&tent, 1, 2, 4);
    let janes = send(&app, keyed(TestRequest::post().uri("/api/v1/rentals"), &jane, "shared").set_json(&body)).await;
    let bobs = send(&app, keyed(TestRequest::post().uri("/api/v1/rentals"), &bob, "shared").set_json(&body)).await;
    assert_eq!((janes.status.as_u16(), bobs.status.as_u16()), (201, 201), "{}", bobs.body);
    assert!(bobs.headers.get("idempotent-replayed").is_none(), "Bob never sees Jane's answer");
    assert_ne!(janes.body["id"], bobs.body["id"]);
    assert_ne!(janes.body["customer_id"], bobs.body["customer_id"]);
    assert_eq!(rentals_count(&ctx).await, (2, 2));
}

#[actix_web::test]
async fn a_desk_payment_with_a_key_is_recorded_once() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let jane = customer_token(&app, "jane@example.com").await;
    let (tent, _) = product(&app, &staff, "TNT-8", "EUR", 5).await;
    let order =
        send(&app, bearer(TestRequest::post().uri("/api/v1/rentals"), &jane).set_json(rental(&tent, 1, 2, 4))).await;
    let detail = send(
        &app,
        bearer(TestRequest::get().uri(&format!("/api/v1/rentals/{}", order.body["id"].as_str().unwrap())), &jane),
    )
    .await;
    let invoice = detail.body["invoice"]["id"].as_str().unwrap().to_owned();
    let pay = |amount: i64| {
        keyed(TestRequest::post().uri(&format!("/api/v1/invoices/{invoice}/payments")), &staff, "pay-1")
            .set_json(json!({"amount_minor": amount, "currency": "EUR", "method": "cash"}))
    };
    let (status, _, first) = raw(&app, pay(500)).await;
    assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&first));
    let (status, replayed, second) = raw(&app, pay(500)).await;
    assert_eq!((status, replayed.as_deref(), &second), (StatusCode::CREATED, Some("true"), &first));
    send(&app, pay(600)).await.assert_error(422, "idempotency_mismatch");
    assert_eq!(count(&ctx, "payments").await, 1);
}

#[actix_web::test]
async fn the_header_and_its_answers_are_in_the_openapi_document() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await;
    for (path, success) in [
        ("/api/v1/rentals", "201"),
        ("/api/v1/rentals/{id}/confirm", "200"),
        ("/api/v1/rentals/{id}/cancel", "200"),
        ("/api/v1/rentals/{id}/pickup", "200"),
        ("/api/v1/rentals/{id}/return", "200"),
        ("/api/v1/rentals/{id}/close", "200"),
        ("/api/v1/invoices/{id}/payments", "201"),
    ] {
        let operation = &doc.body["paths"][path]["post"];
        let header = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("{path} takes Idempotency-Key"));
        assert_eq!((header["in"].as_str(), header["required"].as_bool()), (Some("header"), Some(false)), "{path}");
        for status in ["409", "422"] {
            assert!(operation["responses"][status].is_object(), "{path} documents {status}");
        }
        assert!(operation["responses"][success]["headers"]["Idempotent-Replayed"].is_object(), "{path}");
    }
    // Reads do not take it.
    assert!(
        doc.body["paths"]["/api/v1/rentals"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "Idempotency-Key")
    );
}
