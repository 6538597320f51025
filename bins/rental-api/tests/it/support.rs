//! A test application and request helpers.

use std::sync::Arc;
use std::time::Instant;

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use chrono::Utc;
use rental_api::app;
use rental_api::middleware::HttpLayers;
use rental_api::middleware::config::{HttpConfig, RateLimitConfig};
use rental_api::monitoring::Monitoring;
use rental_api::settings::ServerConfig;
use rental_api::state::AppState;
use rental_monitor::MonitorConfig;
use rental_repo::{Database, DatabaseConfig};
use rental_service::{AuthConfig, ManualClock, Secret, ServiceConfig, Services};
use rental_testkit::TestDb;
use serde_json::{Value, json};

pub const SECRET: &str = "api-test-secret-api-test-secret-0123";

pub struct Ctx {
    pub state: web::Data<AppState>,
    /// The services' clock: it shows the time the context was made until a test moves it.
    pub clock: ManualClock,
    pub _db: TestDb,
}

pub async fn context() -> Ctx {
    context_on(TestDb::new().await).await
}

/// A context over an existing test database.
pub async fn context_on(test_db: TestDb) -> Ctx {
    context_with_pool(test_db, 5).await
}

/// A context over an existing test database with a pool of at most `max_connections`.
pub async fn context_with_pool(test_db: TestDb, max_connections: u32) -> Ctx {
    let config = DatabaseConfig {
        max_connections: Some(max_connections),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    context_with_config(test_db, &config).await
}

/// A context over an existing test database, connected with `config` (whose URL may add session settings).
pub async fn context_with_config(test_db: TestDb, config: &DatabaseConfig) -> Ctx {
    context_monitored(test_db, config, &MonitorConfig::default()).await
}

/// A context over a fresh test database whose monitor has the settings `monitor`.
pub async fn context_with_monitor(monitor: &MonitorConfig) -> Ctx {
    let test_db = TestDb::new().await;
    let config = DatabaseConfig {
        max_connections: Some(5),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    context_monitored(test_db, &config, monitor).await
}

async fn context_monitored(test_db: TestDb, config: &DatabaseConfig, monitor: &MonitorConfig) -> Ctx {
    let db = Database::connect(config).await.unwrap();
    let service_config = ServiceConfig {
        auth: AuthConfig {
            jwt_secret: Secret::new(SECRET),
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..AuthConfig::default()
        },
        ..ServiceConfig::default()
    };
    let clock = ManualClock::new(Utc::now());
    let services = Services::with_clock(db.clone(), &service_config, Arc::new(clock.clone())).unwrap();
    // No mailer in this process (as on a server without a worker); the effective settings shown by
    // `/monitoring/system` are a marker the tests look for.
    let effective = json!({"profile": "test"});
    let monitoring = Arc::new(Monitoring::new(monitor, &services, None, effective).unwrap());
    let state = web::Data::new(AppState {
        services,
        db,
        metrics: monitoring.monitor.requests.clone(),
        monitoring,
        started: Instant::now(),
        slow_request: std::time::Duration::from_secs(1),
        worker: None,
        payments: rental_api::routes::payments::Payments::disabled(),
    });
    Ctx { state, clock, _db: test_db }
}

/// The middleware settings of the API tests: the defaults with the rate limits off, since every test request
/// comes from the same (absent) address; the middleware tests turn them on.
pub fn http_config() -> HttpConfig {
    HttpConfig { rate_limit: RateLimitConfig { enabled: false, ..RateLimitConfig::default() }, ..HttpConfig::default() }
}

/// Starts the application of `ctx`.
pub async fn app(
    ctx: &Ctx,
) -> impl Service<Request, Response = ServiceResponse<impl actix_web::body::MessageBody>, Error = actix_web::Error> {
    app_with(ctx, HttpLayers::new(&http_config(), None).unwrap()).await
}

/// Starts the application of `ctx` with the middleware `layers`.
pub async fn app_with(
    ctx: &Ctx,
    layers: HttpLayers,
) -> impl Service<Request, Response = ServiceResponse<impl actix_web::body::MessageBody>, Error = actix_web::Error> {
    test::init_service(app::build_with(Some(ctx.state.clone()), ServerConfig::default(), layers).0).await
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error code of an envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no envelope>")
    }

    /// Asserts the error envelope's shape and status.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert!(self.body["error"]["message"].is_string(), "{}", self.body);
        assert!(self.body["error"]["details"].is_array(), "{}", self.body);
        let id = self.headers.get("x-request-id").unwrap().to_str().unwrap();
        assert_eq!(self.body["request_id"], json!(id), "{}", self.body);
    }
}

pub async fn send<S, B>(app: &S, req: TestRequest) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Reply { status, headers, body }
}

pub fn bearer(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("Authorization", format!("Bearer {token}")))
}

/// Creates an administrator and returns its access token.
pub async fn admin_token<S, B>(ctx: &Ctx, app: &S) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    ctx.state.services.users.create_admin("root@example.com", "root-password").await.unwrap();
    login(app, "root@example.com", "root-password").await
}

pub async fn login<S, B>(app: &S, email: &str, password: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let reply = send(
        app,
        TestRequest::post().uri("/api/v1/auth/login").set_json(json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["access_token"].as_str().unwrap().to_owned()
}

/// Registers a customer and returns its access token.
pub async fn customer_token<S, B>(app: &S, email: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let reply = send(
        app,
        TestRequest::post()
            .uri("/api/v1/auth/register")
            .set_json(json!({"email": email, "full_name": "Customer", "password": "customer-pw"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    login(app, email, "customer-pw").await
}

/// Creates a staff member through the admin API and returns its access token.
pub async fn staff_token<S, B>(ctx: &Ctx, app: &S) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let admin = admin_token(ctx, app).await;
    let created = send(
        app,
        bearer(TestRequest::post().uri("/api/v1/users"), &admin).set_json(
            json!({"email": "staff@example.com", "full_name": "Sam", "password": "staff-password", "roles": ["staff"]}),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    login(app, "staff@example.com", "staff-password").await
}
