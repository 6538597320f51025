//! User administration over HTTP.

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::support::{admin_token, app, bearer, context, customer_token, send};

#[actix_web::test]
async fn customers_get_403_on_admin_routes() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let token = customer_token(&app, "jane@example.com").await;
    let id = uuid::Uuid::now_v7();
    for req in [
        TestRequest::get().uri("/api/v1/users"),
        TestRequest::post().uri("/api/v1/users").set_json(json!({"email": "x@example.com", "full_name": "X"})),
        TestRequest::post()
            .uri("/api/v1/users/bulk")
            .set_json(json!({"users": [{"email": "x@example.com", "full_name": "X"}]})),
        TestRequest::get().uri(&format!("/api/v1/users/{id}")),
        TestRequest::patch().uri(&format!("/api/v1/users/{id}")).set_json(json!({"full_name": "X"})),
        TestRequest::delete().uri(&format!("/api/v1/users/{id}")),
        TestRequest::put().uri(&format!("/api/v1/users/{id}/roles")).set_json(json!({"roles": ["admin"]})),
    ] {
        send(&app, bearer(req, &token)).await.assert_error(403, "forbidden");
    }
}

#[actix_web::test]
async fn admins_manage_users() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;

    let created = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/users"), &admin).set_json(
            json!({"email": "Staff@Example.com", "full_name": "Sam", "password": "staff-password", "roles": ["staff"]}),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["roles"], json!(["staff"]));

    let got = send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/users/{id}")), &admin)).await;
    assert_eq!(got.body["email"], "staff@example.com");

    let roles = send(
        &app,
        bearer(TestRequest::put().uri(&format!("/api/v1/users/{id}/roles")), &admin)
            .set_json(json!({"roles": ["customer", "staff"]})),
    )
    .await;
    assert_eq!(roles.body["roles"], json!(["staff", "customer"]));

    let staff = send(&app, bearer(TestRequest::get().uri("/api/v1/users?role=staff"), &admin)).await;
    assert_eq!(staff.body["total"], 1);

    let gone = send(&app, bearer(TestRequest::delete().uri(&format!("/api/v1/users/{id}")), &admin)).await;
    assert_eq!(gone.status, 204);
    send(&app, bearer(TestRequest::get().uri(&format!("/api/v1/users/{id}")), &admin))
        .await
        .assert_error(404, "not_found");
}

#[actix_web::test]
async fn bulk_create_is_all_or_nothing() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let rows = |n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({"email": format!("bulk{i}@example.com"), "full_name": format!("Bulk {i}")})).collect()
    };

    let mut bad = rows(200);
    bad[150] = json!({"email": "ROOT@example.com", "full_name": "Clash"});
    let clash =
        send(&app, bearer(TestRequest::post().uri("/api/v1/users/bulk"), &admin).set_json(json!({"users": bad}))).await;
    clash.assert_error(409, "conflict");
    assert_eq!(clash.body["error"]["details"][0]["index"], 150, "{}", clash.body);

    let mut invalid = rows(20);
    invalid[4] = json!({"email": "broken", "full_name": "X"});
    let reply =
        send(&app, bearer(TestRequest::post().uri("/api/v1/users/bulk"), &admin).set_json(json!({"users": invalid})))
            .await;
    reply.assert_error(422, "validation_failed");
    assert_eq!(reply.body["error"]["details"][0]["field"], "users[4].email");

    let too_many = rows(10_001);
    let reply =
        send(&app, bearer(TestRequest::post().uri("/api/v1/users/bulk"), &admin).set_json(json!({"users": too_many})))
            .await;
    reply.assert_error(422, "validation_failed");

    let all = send(&app, bearer(TestRequest::get().uri("/api/v1/users"), &admin)).await;
    assert_eq!(all.body["total"], 1, "nothing written by the failed batches");

    let ok = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/users/bulk"), &admin).set_json(json!({"users": rows(1500)})),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ok.body["created"], 1500);
}

#[actix_web::test]
async fn both_pagination_styles_over_http() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let admin = admin_token(&ctx, &app).await;
    let rows: Vec<Value> =
        (0..45).map(|i| json!({"email": format!("p{i:02}@example.com"), "full_name": format!("P {i}")})).collect();
    let ok = send(&app, bearer(TestRequest::post().uri("/api/v1/users/bulk"), &admin).set_json(json!({"users": rows})))
        .await;
    assert_eq!(ok.status, 201);

    let offset =
        send(&app, bearer(TestRequest::get().uri("/api/v1/users?page=2&per_page=20&sort=email"), &admin)).await;
    assert_eq!(offset.status, 200, "{}", offset.body);
    assert_eq!((offset.body["total"].as_u64(), offset.body["pages"].as_u64()), (Some(46), Some(3)));
    assert_eq!((offset.body["page"].as_u64(), offset.body["per_page"].as_u64()), (Some(2), Some(20)));
    assert_eq!(offset.body["items"].as_array().unwrap().len(), 20);
    assert_eq!(offset.body["items"][0]["email"], "p20@example.com");

    let mut seen = 0;
    let mut uri = "/api/v1/users?limit=10&include_total=false&q=example".to_owned();
    loop {
        let page = send(&app, bearer(TestRequest::get().uri(&uri), &admin)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.get("total").is_none());
        seen += page.body["items"].as_array().unwrap().len();
        match page.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/users?limit=10&include_total=false&q=example&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, 46);
}
