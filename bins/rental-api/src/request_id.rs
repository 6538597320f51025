//! Request ids and the one log line per request.
//!
//! An `X-Request-Id` from the client is kept when it is short and printable, otherwise a UUIDv7 is made. The
//! id is echoed in the response header, put into every error envelope (through a task-local, since actix
//! renders errors without the request at hand) and logged with method, route, status and duration.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use rental_monitor::RequestMetrics;

/// The header carrying the id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request id, also stored in the request's extensions for handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn accept(header: Option<&HeaderValue>) -> Option<String> {
    let value = header?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    ok.then(|| value.to_owned())
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
    let metrics = req.app_data::<actix_web::web::Data<RequestMetrics>>().cloned();
    let _in_flight = metrics.as_ref().map(|metrics| metrics.in_flight());
    let method = req.method().clone();
    let started = Instant::now();

    // Handlers and extractors turn their errors into responses inside this scope, so the envelope gets the
    // id. The request must not be cloned before routing (actix needs it unshared), so an error escaping the
    // inner services is passed on as it is; none of the inner middleware produces one.
    let mut response = REQUEST_ID.scope(id.clone(), next.call(req)).await?.map_into_boxed_body();

    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let route = response.request().match_pattern().unwrap_or_else(|| "<unmatched>".to_owned());
    if let Some(metrics) = metrics {
        metrics.record(&route, status, elapsed);
    }
    tracing::info!(
        target: "rental_api::access",
        method = %method,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %id,
        "request"
    );
    Ok(response)
}
