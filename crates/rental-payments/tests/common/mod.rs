//! What the payment tests share: services over a fresh database with a staff member and two customers, the
//! Stripe gateway pointed at a stand-in, and Stripe events signed as Stripe signs them.

#![allow(dead_code, reason = "each test file uses its own part")]

use std::sync::Arc;

use chrono::Utc;
use rental_domain::Role;
use rental_payments::{API_VERSION, StripeConfig, StripeGateway, WebhookVerifier};
use rental_repo::{Database, DatabaseConfig};
use rental_service::{
    AuthConfig, CategoryView, LocationView, ManualClock, NewCategory, NewLocation, NewUser, PaymentService, Principal,
    Registration, Secret, ServiceConfig, Services,
};
use rental_testkit::{StripeStandIn, TestDb};
use serde_json::{Value, json};
use stripe_webhook::Webhook;

/// Services on a manual clock, the payment service over the stand-in, and the people and places of a shop.
pub struct Base {
    pub services: Services,
    pub payments: PaymentService,
    pub stand_in: StripeStandIn,
    pub clock: ManualClock,
    pub staff: Principal,
    /// `cus@example.com`, who places the orders.
    pub customer: Principal,
    /// `other@example.com`, another customer.
    pub other: Principal,
    pub category: CategoryView,
    pub depot: LocationView,
    pub db: TestDb,
}

/// A fresh database with `rentals` and a cheap argon2, the admin, a staff member, two customers, a category
/// "Cameras" and a location "Depot"; the gateway calls the stand-in with `secret_key`.
pub async fn base(secret_key: &str, tweak: impl FnOnce(&mut ServiceConfig)) -> Base {
    let db = TestDb::new().await;
    let config =
        DatabaseConfig { max_connections: Some(12), min_connections: Some(0), ..DatabaseConfig::with_url(db.url()) };
    let database = Database::connect(&config).await.unwrap();
    let mut service_config = ServiceConfig {
        auth: AuthConfig {
            jwt_secret: Secret::new("test-secret-test-secret-test-secret!"),
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..AuthConfig::default()
        },
        ..ServiceConfig::default()
    };
    tweak(&mut service_config);
    let clock = ManualClock::new(Utc::now());
    let services = Services::with_clock(database, &service_config, Arc::new(clock.clone())).unwrap();
    let stand_in = StripeStandIn::start().await;
    let gateway = StripeGateway::new(gateway_config(secret_key, stand_in.base_url())).unwrap();
    let payments = services.payments.clone().with_gateway(Arc::new(gateway));

    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    let admin = principal(&services, "root@example.com", "root-password").await;
    let staff = NewUser {
        email: "staff@example.com".into(),
        full_name: "Sam Staff".into(),
        password: Some("staff-password".into()),
        roles: Some(vec![Role::Staff]),
        ..NewUser::default()
    };
    services.users.create(&admin, staff).await.unwrap();
    let staff = principal(&services, "staff@example.com", "staff-password").await;
    for email in ["cus@example.com", "other@example.com"] {
        let registration =
            Registration { email: email.into(), full_name: "Cus Tomer".into(), password: "customer-pw".into() };
        services.auth.register(registration).await.unwrap();
    }
    let customer = principal(&services, "cus@example.com", "customer-pw").await;
    let other = principal(&services, "other@example.com", "customer-pw").await;
    let c = &services.catalogue;
    let category = c.create_category(&staff, NewCategory { name: "Cameras".into(), description: None }).await.unwrap();
    let depot = c.create_location(&staff, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    Base { services, payments, stand_in, clock, staff, customer, other, category, depot, db }
}

/// The principal of a login.
pub async fn principal(services: &Services, email: &str, password: &str) -> Principal {
    let tokens = services.auth.login(email, password).await.unwrap();
    services.auth.authenticate(&tokens.access_token).await.unwrap()
}

/// The gateway's settings against the stand-in at `api_base`: short timeouts, two attempts.
pub fn gateway_config(secret_key: &str, api_base: String) -> StripeConfig {
    StripeConfig {
        secret_key: Some(Secret::new(secret_key)),
        api_base,
        attempt_timeout_ms: 2_000,
        call_timeout_ms: 5_000,
        max_attempts: 2,
        retry_backoff_ms: 10,
        ..StripeConfig::default()
    }
}

/// A Stripe event of `kind` about `object`, in the crate's API version.
pub fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id, "object": "event", "api_version": API_VERSION, "created": Utc::now().timestamp(),
        "livemode": false, "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null }, "type": kind,
        "data": { "object": object },
    })
    .to_string()
}

/// Signs `payload` with `secret` as Stripe does (`t=…,v1=` HMAC-SHA256 of `t.payload`) and reads it with the
/// verifier.
pub fn verified(secret: &str, payload: &str) -> rental_service::WebhookEvent {
    let header = Webhook::generate_test_header(payload, secret, Some(Utc::now().timestamp()));
    WebhookVerifier::new(Secret::new(secret)).verify(payload, Some(&header)).unwrap().into_service_event()
}
