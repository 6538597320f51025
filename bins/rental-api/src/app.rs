//! The actix application: routes, middleware, extractor configuration and the OpenAPI document.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, Error, HttpResponse, web};
use utoipa::openapi::security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{AppExt, scope};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::ApiError;
use crate::methods::AllowedMethods;
use crate::middleware::body_limit::BodyLimits;
use crate::middleware::{HttpLayers, stack};
use crate::request_id::request_context;
use crate::routes::{
    analytics, auth, cache, catalogue, deposits, health, jobs, monitoring, payments, payments_webhook, rentals, users,
};
use crate::settings::ServerConfig;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Rental API", description = "Rental-management backend: users, catalogue, rentals, billing."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Login, tokens, registration"),
        (name = "users", description = "Profiles and user administration"),
        (name = "catalogue", description = "Categories, locations, products, units and stock: public reads, staff writes"),
        (name = "rentals", description = "Rental orders and their lifecycle, availability, maintenance, invoices and payments"),
        (name = "analytics", description = "Revenue, rankings, status counts, utilization and CSV exports: staff only"),
        (name = "payments", description = "Stripe payments: checkout sessions, payment intents, refunds, customers, rental deposits held on cards, the signed webhook; 503 payments_not_configured without keys"),
        (name = "jobs", description = "The background job queue: inspect, retry and cancel jobs; admins only"),
        (name = "health", description = "Liveness and readiness"),
        (name = "monitoring", description = "Health with components, admin metrics, alerts and system views, Prometheus exposition")
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new("/api/v1/auth/login", Scopes::new()))])),
        );
    }
}

/// The OpenAPI document, rendered once.
struct OpenApiJson(String);

async fn openapi_json(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document.0.clone())
}

/// Builds the application over `state` (`None` only to render the OpenAPI document) with the default `[http]`
/// middleware settings and a rate limiter of its own, returning it with its OpenAPI document. `serve` uses
/// [`build_with`], so that all workers share one limiter.
pub fn build(
    state: Option<web::Data<AppState>>,
    server: ServerConfig,
) -> (
    App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = Error,
            InitError = (),
        >,
    >,
    utoipa::openapi::OpenApi,
) {
    build_with(state, server, HttpLayers::default())
}

/// Builds the application over `state` with the middleware `layers` (shared by every worker that gets a
/// clone), returning it with its OpenAPI document.
pub fn build_with(
    state: Option<web::Data<AppState>>,
    server: ServerConfig,
    layers: HttpLayers,
) -> (
    App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = Error,
            InitError = (),
        >,
    >,
    utoipa::openapi::OpenApi,
) {
    // Each route's body limit is enforced by the body-limit middleware; the extractors only bound the largest.
    let body_limits = BodyLimits::new(layers.body_routes(), server.json_limit_bytes, server.bulk_json_limit_bytes);
    let largest_body = body_limits.largest();
    let json =
        web::JsonConfig::default().limit(largest_body).error_handler(|err, _req| ApiError::from_json(err).into());
    let query = web::QueryConfig::default().error_handler(|err, _req| ApiError::from_query(err).into());
    let form =
        web::FormConfig::default().limit(largest_body).error_handler(|err, _req| ApiError::from_form(err).into());
    let payload = web::PayloadConfig::new(largest_body);
    let mut app = App::new().into_utoipa_app().openapi(ApiDoc::openapi());
    if let Some(state) = state {
        app = app.app_data(state);
    }
    let (app, mut openapi) = app
        .app_data(json)
        .app_data(query)
        .app_data(form)
        .app_data(payload)
        .service(health::live)
        .service(health::ready)
        .service(monitoring::health)
        .service(monitoring::metrics)
        .service(monitoring::alerts)
        .service(monitoring::system)
        .service(monitoring::prometheus)
        .service(
            scope::scope("/api/v1")
                .route("/openapi.json", web::get().to(openapi_json))
                .service(auth::login)
                .service(auth::refresh)
                .service(auth::logout)
                .service(auth::register)
                .service(auth::password_recovery)
                .service(auth::reset_password)
                .service(users::me)
                .service(users::update_me)
                .service(users::change_password)
                .service(scope::scope("/users/bulk").service(users::bulk_create))
                .service(users::list)
                .service(users::create)
                .service(users::get)
                .service(users::update)
                .service(users::remove)
                .service(users::set_roles)
                .service(catalogue::list_categories)
                .service(catalogue::create_category)
                .service(catalogue::get_category)
                .service(catalogue::update_category)
                .service(catalogue::delete_category)
                .service(catalogue::list_locations)
                .service(catalogue::create_location)
                .service(catalogue::list_products)
                .service(catalogue::create_product)
                .service(catalogue::get_product)
                .service(catalogue::update_product)
                .service(catalogue::delete_product)
                .service(catalogue::add_units)
                .service(catalogue::set_stock)
                .service(rentals::availability)
                .service(rentals::add_maintenance)
                .service(rentals::create)
                .service(rentals::list)
                .service(rentals::get)
                .service(rentals::events)
                .service(rentals::confirm)
                .service(rentals::cancel)
                .service(rentals::pickup)
                .service(rentals::return_items)
                .service(rentals::close)
                .service(rentals::list_invoices)
                .service(rentals::get_invoice)
                .service(rentals::record_payment)
                .service(analytics::revenue)
                .service(analytics::popular_products)
                .service(analytics::status_distribution)
                .service(analytics::utilization)
                .service(analytics::export_orders)
                .service(analytics::export_invoices)
                .service(analytics::dashboard)
                .service(cache::clear)
                .service(jobs::list)
                .service(jobs::stats)
                .service(jobs::get)
                .service(jobs::retry)
                .service(jobs::cancel)
                .service(payments::payments_config)
                .service(payments::checkout_session)
                .service(payments::payment_intent)
                .service(payments::customer)
                .service(payments_webhook::webhook)
                .service(payments::list)
                .service(payments::get_payment)
                .service(payments::refund)
                .service(deposits::get_deposit)
                .service(deposits::place_deposit)
                .service(deposits::capture_deposit)
                .service(deposits::release_deposit),
        )
        .split_for_parts();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    crate::documented_errors::add_shared_errors(&mut openapi);
    crate::idempotency::document(&mut openapi);

    let document = web::Data::new(OpenApiJson(serde_json::to_string(&openapi).unwrap_or_default()));
    let methods = web::Data::new(AllowedMethods::from_openapi(&openapi));
    let app = app
        .app_data(document)
        .app_data(methods)
        // Swagger UI is compiled into the binary (utoipa-swagger-ui's `vendored` feature): the page loads
        // nothing from another host, so it works offline. It reads the document from its route above.
        .service(web::redirect("/docs", "/docs/"))
        .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/api/v1/openapi.json"]).validator_url("none")))
        // The staff and operator page, also compiled in; not an API operation, so not in the document.
        .configure(crate::console::configure)
        .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::route_not_found()) }))
        .wrap(from_fn(move |req, next| stack::handle(layers.clone(), body_limits.clone(), req, next)))
        .wrap(from_fn(request_context));
    (app, openapi)
}

/// The OpenAPI document alone, for `rental-api openapi`: no database needed.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    build(None, ServerConfig::default()).1
}
