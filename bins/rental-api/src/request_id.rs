//! Request ids, the one log line per request, and the fast refusal of requests while the database is lost.
//!
//! An `X-Request-Id` from the client is kept when it is short and printable, otherwise a UUIDv7 is made. The
//! id is echoed in the response header, put into every error envelope (through the services' task-local
//! [`rental_service::context`], since actix renders errors without the request at hand; the jobs the request
//! enqueues record it from there too) and logged with method, route, status and duration.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};

use crate::error::ApiError;
use crate::middleware::rate_limit::Authenticated;
use crate::state::AppState;

/// The header carrying the id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being handled, if any. The scope is the services' ([`rental_service::context`]), so
/// the jobs a request enqueues record the same id.
pub fn current() -> Option<String> {
    rental_service::context::current()
}

/// The request id, also stored in the request's extensions for handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn accept(header: Option<&HeaderValue>) -> Option<String> {
    let value = header?.to_str().ok()?;
    rental_service::context::is_sane(value).then(|| value.to_owned())
}

/// Whether `req` needs the database while its probe says it does not answer: such a request is refused at once
/// with 503 `database_unavailable` instead of waiting for the pool's acquire timeout. Health, metrics and the
/// documentation do not need the database and are always served.
fn database_lost(req: &ServiceRequest, state: Option<&actix_web::web::Data<AppState>>) -> bool {
    state.is_some_and(|state| !state.db.availability().is_up()) && needs_database(req)
}

fn needs_database(req: &ServiceRequest) -> bool {
    req.path().starts_with("/api/") && req.path() != "/api/v1/openapi.json"
}

/// For a request that needs a probed database: completes when the probe finds the database lost while the
/// request runs. A request then waiting for a connection would otherwise wait for the pool's acquire timeout
/// (30 s); it is answered 503 `database_unavailable` within a probe interval instead. Its work is dropped: a
/// transaction not committed rolls back, and one whose commit was under way has an unknown outcome, as when
/// its connection breaks (a client retries a write safely with an `Idempotency-Key`).
fn loss_while_running(
    req: &ServiceRequest,
    state: Option<&actix_web::web::Data<AppState>>,
) -> Option<impl std::future::Future<Output = ()> + use<>> {
    let availability = state?.db.availability();
    (availability.is_probed() && needs_database(req)).then(|| availability.lost())
}

/// The 503 of a request whose database was lost while it ran, as an error carrying its answer (the request
/// itself went to the routes).
fn lost_while_running(id: &str) -> Error {
    let error = ApiError::database_unavailable(rental_service::UNAVAILABLE_RETRY_AFTER);
    let mut response = error.error_response();
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    InternalError::from_response("the database was lost while the request ran", response).into()
}

/// The access log's line for one request: at info level, or as a warning when it took longer than
/// `slow_after` (`log.slow_request_ms`).
fn log_request(
    method: &actix_web::http::Method,
    route: &str,
    status: u16,
    elapsed: std::time::Duration,
    id: &str,
    user: Option<String>,
    slow_after: Option<std::time::Duration>,
) {
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let user_id = user.unwrap_or_default();
    if slow_after.is_some_and(|slow| elapsed >= slow) {
        tracing::warn!(
            target: "rental_api::access",
            method = %method, route, status, duration_ms, request_id = id, user_id, "slow request"
        );
    } else {
        tracing::info!(
            target: "rental_api::access",
            method = %method, route, status, duration_ms, request_id = id, user_id, "request"
        );
    }
}

/// Middleware: assigns the request id, runs the request inside its scope, records metrics and logs one line.
///
/// # Errors
/// Passes on an error of the inner services.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = accept(req.headers().get(X_REQUEST_ID)).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // One app-data lookup: the metrics, the slow-request threshold and the database probe are all in the state.
    let state = req.app_data::<actix_web::web::Data<AppState>>().cloned();
    let metrics = state.as_ref().map(|state| state.metrics.clone());
    let slow_after = state.as_ref().map(|state| state.slow_request);
    let _in_flight = metrics.as_ref().map(|metrics| metrics.in_flight());
    let method = req.method().clone();
    let started = Instant::now();

    // Handlers and extractors turn their errors into responses inside this scope, so the envelope gets the
    // id. The request must not be cloned before routing (actix needs it unshared), so an error escaping the
    // inner services is passed on as it is (only the timeout produces one).
    let result = if database_lost(&req, state.as_ref()) {
        let error = ApiError::database_unavailable(rental_service::UNAVAILABLE_RETRY_AFTER);
        Ok(rental_service::context::scope(Some(id.clone()), async { req.error_response(error) }).await)
    } else if let Some(lost) = loss_while_running(&req, state.as_ref()) {
        let run = rental_service::context::scope(Some(id.clone()), next.call(req));
        tokio::select! {
            biased;
            result = run => result.map(ServiceResponse::map_into_boxed_body),
            () = lost => Err(rental_service::context::scope(Some(id.clone()), async { lost_while_running(&id) }).await),
        }
    } else {
        rental_service::context::scope(Some(id.clone()), next.call(req)).await.map(ServiceResponse::map_into_boxed_body)
    };
    let elapsed = started.elapsed();
    // The timeout middleware answers 504 as an error carrying its response (it no longer has the request):
    // it is counted and logged here all the same, under no route since routing never finished.
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            let status = err.as_response_error().status_code().as_u16();
            if let Some(metrics) = metrics {
                metrics.record("<unfinished>", status, elapsed);
            }
            log_request(&method, "<unfinished>", status, elapsed, &id, None, slow_after);
            return Err(err);
        }
    };

    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let route = response.request().match_pattern().unwrap_or_else(|| "<unmatched>".to_owned());
    if let Some(metrics) = metrics {
        metrics.record(&route, status, elapsed);
    }
    let user = response.request().extensions().get::<Authenticated>().map(|auth| auth.0.user_id.to_string());
    log_request(&method, &route, status, elapsed, &id, user, slow_after);
    Ok(response)
}
