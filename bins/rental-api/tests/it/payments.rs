//! Payments: without Stripe keys the payment endpoints answer 503 `payments_not_configured` and health says
//! Stripe is not configured; with keys (pointed at the Stripe stand-in) the configuration for Stripe.js is
//! served, health says configured, and `print-config` never shows the secrets.

use std::sync::Arc;

use actix_web::test::TestRequest;
use actix_web::web;
use rental_api::routes::payments::Payments;
use rental_api::settings::Settings;
use rental_api::state::AppState;
use rental_payments::{API_VERSION, StripeConfig};
use rental_service::Secret;
use rental_testkit::StripeStandIn;

use crate::support::{Ctx, app, context, send};

fn keys(stripe: &StripeStandIn) -> StripeConfig {
    StripeConfig {
        secret_key: Some(Secret::new("sk_test_api_secret")),
        publishable_key: Some("pk_test_api_public".into()),
        webhook_secret: Some(Secret::new("whsec_api_secret")),
        currency: "eur".into(),
        api_base: stripe.base_url(),
        ..StripeConfig::default()
    }
}

fn with_payments(mut ctx: Ctx, payments: Payments) -> Ctx {
    ctx.state.monitoring.monitor.components.register(Arc::new(payments.component()));
    ctx.state = web::Data::new(AppState { payments, ..AppState::clone(&ctx.state) });
    ctx
}

fn stripe_component(health: &serde_json::Value) -> serde_json::Value {
    health["components"].as_array().unwrap().iter().find(|c| c["name"] == "stripe").unwrap().clone()
}

#[actix_web::test]
async fn without_keys_the_payment_endpoints_answer_503_payments_not_configured() {
    let ctx = context().await;
    let app = app(&ctx).await;

    let reply = send(&app, TestRequest::get().uri("/api/v1/payments/config")).await;

    reply.assert_error(503, "payments_not_configured");
    let health = send(&app, TestRequest::get().uri("/monitoring/health")).await;
    assert_eq!(stripe_component(&health.body)["configured"], false, "{}", health.body);
}

#[actix_web::test]
async fn with_keys_the_browser_gets_the_publishable_key_and_currency_and_health_says_configured() {
    let stripe = StripeStandIn::start().await;
    let ctx = with_payments(context().await, Payments::from_config(&keys(&stripe)).unwrap());
    let app = app(&ctx).await;

    let reply = send(&app, TestRequest::get().uri("/api/v1/payments/config")).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["publishable_key"], "pk_test_api_public");
    assert_eq!(reply.body["currency"], "EUR");
    assert_eq!(reply.body["api_version"], API_VERSION);
    assert!(!reply.body.to_string().contains("sk_test"), "no secret in the answer: {}", reply.body);
    let health = send(&app, TestRequest::get().uri("/monitoring/health")).await;
    assert_eq!(stripe_component(&health.body)["configured"], true, "{}", health.body);
}

#[actix_web::test]
async fn the_document_lists_the_payment_config_with_its_503() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let document = send(&app, TestRequest::get().uri("/api/v1/openapi.json")).await.body;
    let responses = &document["paths"]["/api/v1/payments/config"]["get"]["responses"];
    assert!(responses["200"].is_object(), "{responses}");
    assert!(responses["503"]["description"].as_str().unwrap().contains("payments_not_configured"), "{responses}");
}

#[test]
fn print_config_redacts_the_stripe_secrets() {
    let settings = Settings {
        stripe: StripeConfig {
            secret_key: Some(Secret::new("sk_live_do_not_print")),
            publishable_key: Some("pk_live_shown".into()),
            webhook_secret: Some(Secret::new("whsec_do_not_print")),
            ..StripeConfig::default()
        },
        ..Settings::default()
    };
    let shown = settings.to_redacted_toml().unwrap();
    assert!(shown.contains("[stripe]") && shown.contains("pk_live_shown"), "{shown}");
    assert!(!shown.contains("sk_live_do_not_print") && !shown.contains("whsec_do_not_print"), "{shown}");
}
