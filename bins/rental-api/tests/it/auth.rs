//! Login, tokens, registration, profile and password over HTTP.

use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::{SECRET, admin_token, app, bearer, context, customer_token, send};

#[actix_web::test]
async fn register_login_refresh_logout() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let reg = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/register")
            .set_json(json!({"email": "Jane@Example.com", "full_name": "Jane", "password": "jane-password"})),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    assert_eq!(reg.body["email"], "jane@example.com");
    assert_eq!(reg.body["roles"], json!(["customer"]));
    assert!(reg.body.get("password_hash").is_none());

    // OAuth2 password form, as the docs UI sends it.
    let form = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload("grant_type=password&username=jane%40example.com&password=jane-password"),
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(form.body["token_type"], "bearer");
    // The document describes that form, not the JSON body (`username`, not `email`).
    let doc = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await.body;
    let form_schema = &doc["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
        ["schema"]["$ref"];
    let name = form_schema.as_str().and_then(|r| r.rsplit('/').next()).unwrap();
    assert_eq!(doc["components"]["schemas"][name]["required"], json!(["username", "password"]));
    let access = form.body["access_token"].as_str().unwrap().to_owned();
    let refresh = form.body["refresh_token"].as_str().unwrap().to_owned();

    let me = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &access)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "jane@example.com");

    let rotated =
        send(&app, TestRequest::post().uri("/api/v1/auth/refresh").set_json(json!({"refresh_token": refresh}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let reused =
        send(&app, TestRequest::post().uri("/api/v1/auth/refresh").set_json(json!({"refresh_token": refresh}))).await;
    reused.assert_error(401, "unauthorized");
    let next = rotated.body["refresh_token"].as_str().unwrap();
    let revoked =
        send(&app, TestRequest::post().uri("/api/v1/auth/refresh").set_json(json!({"refresh_token": next}))).await;
    revoked.assert_error(401, "unauthorized");

    let fresh = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"email": "jane@example.com", "password": "jane-password"})),
    )
    .await;
    let fresh_refresh = fresh.body["refresh_token"].as_str().unwrap();
    let out =
        send(&app, TestRequest::post().uri("/api/v1/auth/logout").set_json(json!({"refresh_token": fresh_refresh})))
            .await;
    assert_eq!(out.status, 204);
    let after =
        send(&app, TestRequest::post().uri("/api/v1/auth/refresh").set_json(json!({"refresh_token": fresh_refresh})))
            .await;
    after.assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn bad_credentials_are_indistinguishable() {
    let ctx = context().await;
    let app = app(&ctx).await;
    customer_token(&app, "jane@example.com").await;
    let login = |email: &'static str, password: &'static str| {
        TestRequest::post().uri("/api/v1/auth/login").set_json(json!({"email": email, "password": password}))
    };
    let unknown = send(&app, login("ghost@example.com", "customer-pw")).await;
    let wrong = send(&app, login("jane@example.com", "wrong-password")).await;
    unknown.assert_error(401, "unauthorized");
    wrong.assert_error(401, "unauthorized");
    assert_eq!(unknown.body["error"]["message"], wrong.body["error"]["message"]);
}

#[actix_web::test]
async fn expired_forged_and_missing_tokens_are_refused() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let token = customer_token(&app, "jane@example.com").await;
    let me = |t: &str| bearer(TestRequest::get().uri("/api/v1/users/me"), t);

    let claims: serde_json::Value = {
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let expired = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &expired, &key).unwrap();
    let reply = send(&app, me(&expired)).await;
    reply.assert_error(401, "unauthorized");
    assert!(reply.body["error"]["message"].as_str().unwrap().contains("expired"));

    let other_key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-0000");
    let forged = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &other_key).unwrap();
    send(&app, me(&forged)).await.assert_error(401, "unauthorized");
    send(&app, me("garbage")).await.assert_error(401, "unauthorized");
    send(&app, TestRequest::get().uri("/api/v1/users/me")).await.assert_error(401, "unauthorized");
    send(&app, TestRequest::get().uri("/api/v1/users/me").insert_header(("Authorization", "Basic abc")))
        .await
        .assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn profile_and_password_changes() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let token = customer_token(&app, "jane@example.com").await;
    let patched = send(
        &app,
        bearer(TestRequest::patch().uri("/api/v1/users/me"), &token).set_json(json!({"full_name": "Jane Q"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["full_name"], "Jane Q");

    let bad = send(
        &app,
        bearer(TestRequest::patch().uri("/api/v1/users/me"), &token)
            .set_json(json!({"full_name": "", "email": "nope"})),
    )
    .await;
    bad.assert_error(422, "validation_failed");
    let fields: Vec<&str> =
        bad.body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["email", "full_name"], "every bad field is listed");

    let wrong = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/users/me/password"), &token)
            .set_json(json!({"current_password": "nope", "new_password": "new-password-1"})),
    )
    .await;
    // A valid request from a caller who cannot prove they know the password: refused, not "invalid data".
    wrong.assert_error(403, "forbidden");
    assert!(wrong.body["error"]["message"].as_str().unwrap().contains("current_password"), "{}", wrong.body);
    let changed = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/users/me/password"), &token)
            .set_json(json!({"current_password": "customer-pw", "new_password": "new-password-1"})),
    )
    .await;
    assert_eq!(changed.status, 204);
    crate::support::login(&app, "jane@example.com", "new-password-1").await;
}

#[actix_web::test]
async fn deactivated_users_lose_access_at_once() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let token = customer_token(&app, "jane@example.com").await;
    let me = send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &token)).await;
    let id = me.body["id"].as_str().unwrap().to_owned();
    let off = send(
        &app,
        bearer(TestRequest::patch().uri(&format!("/api/v1/users/{id}")), &admin).set_json(json!({"is_active": false})),
    )
    .await;
    assert_eq!(off.status, 200, "{}", off.body);
    send(&app, bearer(TestRequest::get().uri("/api/v1/users/me"), &token)).await.assert_error(401, "unauthorized");
    let login = send(
        &app,
        TestRequest::post()
            .uri("/api/v1/auth/login")
            .set_json(json!({"email": "jane@example.com", "password": "customer-pw"})),
    )
    .await;
    login.assert_error(403, "forbidden");
}
