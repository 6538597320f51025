//! Bad input: each answers 4xx with the envelope, never 500, and writes nothing.

use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::{admin_token, app, bearer, context, customer_token, send};

#[actix_web::test]
async fn malformed_bodies_get_clear_4xx() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let register = || TestRequest::post().uri("/api/v1/auth/register");

    let malformed = send(
        &app,
        register().insert_header(("Content-Type", "application/json")).set_payload("{\"email\": \"a@b.com\","),
    )
    .await;
    malformed.assert_error(400, "malformed_json");

    let wrong_type =
        send(&app, register().set_json(json!({"email": 5, "full_name": "A", "password": "password1"}))).await;
    wrong_type.assert_error(422, "invalid_body");

    let missing = send(&app, register().set_json(json!({"email": "a@b.com"}))).await;
    missing.assert_error(422, "invalid_body");
    assert!(missing.body["error"]["message"].as_str().unwrap().contains("full_name"), "{}", missing.body);

    let unknown = send(
        &app,
        register()
            .set_json(json!({"email": "a@b.com", "full_name": "A", "password": "password1", "is_superuser": true})),
    )
    .await;
    unknown.assert_error(422, "invalid_body");
    assert!(unknown.body["error"]["message"].as_str().unwrap().contains("is_superuser"));

    let huge = "x".repeat(300 * 1024);
    let oversized =
        send(&app, register().set_json(json!({"email": "a@b.com", "full_name": huge, "password": "password1"}))).await;
    oversized.assert_error(413, "payload_too_large");

    let text = send(&app, register().insert_header(("Content-Type", "text/plain")).set_payload("hello")).await;
    text.assert_error(415, "unsupported_media_type");
    let login_text = send(
        &app,
        TestRequest::post().uri("/api/v1/auth/login").insert_header(("Content-Type", "text/plain")).set_payload("x"),
    )
    .await;
    login_text.assert_error(415, "unsupported_media_type");

    let invalid =
        send(&app, register().set_json(json!({"email": "nope", "full_name": " ", "password": "short"}))).await;
    invalid.assert_error(422, "validation_failed");
    assert_eq!(invalid.body["error"]["details"].as_array().unwrap().len(), 3);

    // Nothing of the above was written.
    let admin = admin_token(&ctx, &app).await;
    let all = send(&app, bearer(TestRequest::get().uri("/api/v1/users"), &admin)).await;
    assert_eq!(all.body["total"], 1, "{}", all.body);
}

#[actix_web::test]
async fn duplicate_emails_conflict_in_any_case() {
    let ctx = context().await;
    let app = app(&ctx).await;
    customer_token(&app, "jane@example.com").await;
    let again = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/register")
            .set_json(json!({"email": "JANE@example.COM", "full_name": "J", "password": "password1"})),
    )
    .await;
    again.assert_error(409, "conflict");
    assert_eq!(again.body["error"]["message"], "a user with this e-mail address already exists", "{}", again.body);
}

#[actix_web::test]
async fn a_locked_database_answers_503_busy_with_retry_after() {
    use rental_repo::{Database, DatabaseConfig};
    use sea_orm::{ConnectionTrait as _, TransactionTrait as _};

    let test_db = rental_testkit::TestDb::new().await;
    let holder = Database::connect(&DatabaseConfig::with_url(test_db.url())).await.unwrap();
    // The application's sessions give up on a lock after 100 ms: PostgreSQL's lock_timeout (55P03), SQLite's
    // busy timeout (SQLITE_BUSY).
    let url = test_db.url().replace("options=-c%20", "options=-c%20lock_timeout%3D100%20-c%20");
    let config = DatabaseConfig {
        sqlite_busy_timeout_ms: 100,
        max_connections: Some(2),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(url)
    };
    let is_postgres = test_db.is_postgres();
    let ctx = crate::support::context_with_config(test_db, &config).await;
    let app = app(&ctx).await;
    let register = || {
        TestRequest::post()
            .uri("/api/v1/auth/register")
            .set_json(json!({"email": "late@example.com", "full_name": "Late", "password": "password1"}))
    };

    let tx = holder.connection().begin().await.unwrap();
    let lock = if is_postgres { "LOCK TABLE users IN ACCESS EXCLUSIVE MODE" } else { "UPDATE users SET email = email" };
    tx.execute_unprepared(lock).await.unwrap();
    let busy = send(&app, register()).await;
    busy.assert_error(503, "busy");
    assert_eq!(busy.headers.get("retry-after").unwrap(), "1");
    assert!(!busy.body.to_string().contains("lock"), "no database detail reaches the client: {}", busy.body);

    tx.rollback().await.unwrap();
    let after = send(&app, register()).await;
    assert_eq!(after.status, 201, "{}", after.body);
}

#[actix_web::test]
async fn bad_list_queries_and_ids_are_400() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    for (query, field) in [
        ("page=0", "page"),
        ("per_page=1000000000", "per_page"),
        ("limit=0", "limit"),
        ("password_hash=x", "password_hash"),
        ("sort=password_hash", "sort"),
        ("role=root", "role"),
        ("is_active=maybe", "is_active"),
        ("created_after=yesterday", "created_after"),
        ("cursor=Zm9yZ2Vk", "cursor"),
        ("cursor=%%%", "cursor"),
        ("page=2&cursor=abc", "cursor"),
    ] {
        let reply = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/users?{query}")), &admin)).await;
        if query == "cursor=%%%" {
            assert_eq!(reply.status, 400, "{query}: {}", reply.body);
            continue;
        }
        reply.assert_error(400, "invalid_query");
        assert_eq!(reply.body["error"]["details"][0]["field"], field, "{query}: {}", reply.body);
    }

    // OpenAPI cannot declare parameters exclusive, so every combination means something: keyset parameters
    // win over page/per_page, a cursor continues its listing in that listing's order whatever `sort` says, and
    // an empty cursor starts at the first page.
    customer_token(&app, "a@example.com").await;
    let page = send(&app, bearer(TestRequest::get().uri("/api/v1/users?limit=1&sort=email"), &admin)).await;
    assert_eq!(page.body["items"][0]["email"], "a@example.com", "{}", page.body);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    for query in [format!("sort=-email&cursor={cursor}"), format!("page=3&per_page=1&cursor={cursor}")] {
        let next = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/users?{query}")), &admin)).await;
        assert_eq!(next.status, 200, "{query}: {}", next.body);
        assert_eq!(next.body["items"][0]["email"], "root@example.com", "{query}: {}", next.body);
        assert!(next.body.get("page").is_none(), "{query}: a keyset page");
    }
    let restart = send(&app, bearer(TestRequest::get().uri("/api/v1/users?cursor=&limit=1&sort=email"), &admin)).await;
    assert_eq!(restart.body["items"], page.body["items"]);

    for path in ["/api/v1/users/not-a-uuid", "/api/v1/users/123"] {
        send(&app, bearer(TestRequest::get().uri(path), &admin)).await.assert_error(400, "invalid_id");
    }
    let ghost = uuid::Uuid::now_v7();
    send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/users/{ghost}")), &admin))
        .await
        .assert_error(404, "not_found");
    send(&app, bearer(TestRequest::delete().uri(&format!("/api/v1/users/{ghost}")), &admin))
        .await
        .assert_error(404, "not_found");
    let roles = send(
        &app,
        bearer(TestRequest::put().uri(&format!("/api/v1/users/{ghost}/roles")), &admin)
            .set_json(json!({"roles": ["overlord"]})),
    )
    .await;
    roles.assert_error(422, "invalid_body");
}

#[actix_web::test]
async fn bodies_are_json_objects_at_every_depth() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let me = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &admin)).await;

    // serde fills a struct from an array by position; the document says `type: object`.
    let array =
        send(&app, bearer(TestRequest::patch().uri("/api/v1/users/me"), &admin).set_json(json!([null, null]))).await;
    array.assert_error(422, "invalid_body");
    let category =
        send(&app, bearer(TestRequest::post().uri("/api/v1/categories"), &admin).set_json(json!({"name": "Tools"})))
            .await;
    let category_id = category.body["id"].as_str().unwrap();
    send(
        &app,
        bearer(TestRequest::patch().uri(&format!("/api/v1/categories/{category_id}")), &admin)
            .set_json(json!(["Renamed", null])),
    )
    .await
    .assert_error(422, "invalid_body");
    let nested = json!({"users": [["x@example.com", "X", null, null, null, null]]});
    send(&app, bearer(TestRequest::post().uri("/api/v1/users/bulk"), &admin).set_json(nested))
        .await
        .assert_error(422, "invalid_body");

    // An optional body may be left out, but one that is sent must be valid (it used to be dropped silently).
    let order = uuid::Uuid::now_v7();
    let confirm = || TestRequest::post().uri(&format!("/api/v1/rentals/{order}/confirm"));
    send(&app, bearer(confirm(), &admin)).await.assert_error(404, "not_found");
    send(&app, bearer(confirm(), &admin).set_json(json!(null))).await.assert_error(404, "not_found");
    send(&app, bearer(confirm(), &admin).set_json(json!({"note": 5}))).await.assert_error(422, "invalid_body");
    send(&app, bearer(confirm(), &admin).set_json(json!(["note"]))).await.assert_error(422, "invalid_body");
    send(&app, bearer(confirm(), &admin).insert_header(("Content-Type", "application/json")).set_payload("{"))
        .await
        .assert_error(400, "malformed_json");
    send(&app, bearer(confirm(), &admin).insert_header(("Content-Type", "text/plain")).set_payload("note"))
        .await
        .assert_error(415, "unsupported_media_type");

    // Nothing changed.
    let after = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &admin)).await;
    assert_eq!(after.body, me.body);
    let category = send(&app, TestRequest::get().uri(&format!("/api/v1/categories/{category_id}"))).await;
    assert_eq!(category.body["name"], "Tools");
    let users = send(&app, bearer(TestRequest::get().uri("/api/v1/users"), &admin)).await;
    assert_eq!(users.body["total"], 1, "{}", users.body);
}
