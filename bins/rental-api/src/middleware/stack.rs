//! The middleware stack as one layer: timeout, security headers, CORS, compression, rate limit, body limit and
//! 405, in that order from the outside in.
//!
//! Each of these was its own `from_fn` layer. Every such layer boxes the future of the layers within it and
//! calls through a boxed service, so the request's state was moved into a new box seven times and every
//! answer came back through seven `await`s: the profile of `/health/live` put the chain at 29 % of the
//! server's CPU against the handler's 3 %, 6 % of it `memmove`. Here the request makes one call to the routes,
//! the refusals that end it early (preflight, 429, 413, 405) are plain functions, and the answer is finished
//! in one place, in the order the layers had:
//! - the timeout bounds everything inside, the token check of the rate limiter included;
//! - a preflight is answered before the rate limiter counts it;
//! - the rate-limit headers go on every answer the limiter saw (a 413 or 405 after it included);
//! - compression, then the CORS marks, then the security headers apply to every answer, refusals included.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{ACCEPT_ENCODING, ContentEncoding, HeaderValue, ORIGIN};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};

use super::body_limit::{self, BodyLimits};
use super::rate_limit::{self, Decision};
use super::{HttpLayers, compress, timeout};
use crate::methods;

/// Middleware: the whole stack. Register it with `from_fn` inside the request context.
///
/// # Errors
/// The 504 of a request out of time (as an error carrying its answer), or whatever the routes fail with.
pub async fn handle<B: MessageBody + 'static>(
    layers: HttpLayers,
    limits: BodyLimits,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // The origin matters only when some origin may call; it is read once, for the CORS marks and the 504.
    let origin = layers.cors().and_then(|_| req.headers().get(ORIGIN).cloned());
    let Some(limit) = layers.timeouts().of(req.method(), req.path()) else {
        return run(&layers, &limits, req, next, origin).await;
    };
    // Cheap: the method is a small value and the URI shares its bytes; only the expiry formats them.
    let method = req.method().clone();
    let uri = req.uri().clone();
    match tokio::time::timeout(limit, run(&layers, &limits, req, next, origin.clone())).await {
        Ok(result) => result,
        Err(_elapsed) => Err(timeout::expired(&layers, &method, &uri, limit, origin)),
    }
}

/// Everything inside the timeout.
async fn run<B: MessageBody + 'static>(
    layers: &HttpLayers,
    limits: &BodyLimits,
    mut req: ServiceRequest,
    next: Next<B>,
    origin: Option<HeaderValue>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let (Some(policy), Some(origin)) = (layers.cors(), &origin)
        && let Some(answer) = policy.preflight(&req, origin)
    {
        let mut response = req.into_response(answer);
        layers.headers().apply(response.headers_mut());
        return Ok(response);
    }
    let compression = &layers.config().compression;
    let wanted = if compression.enabled { compress::negotiate(req.headers().get(ACCEPT_ENCODING)) } else { None };
    let decision = rate_limit::decide(layers, &req).await;
    let refusal = refuse(decision.as_ref(), limits, &mut req);
    let response = match refusal {
        Some(answer) => req.into_response(answer),
        None => next.call(req).await?.map_into_boxed_body(),
    };
    Ok(finish(layers, response, decision, wanted, origin))
}

/// The answer that ends the request before the routes, if any: 429, 413 or 405, in that order.
fn refuse(decision: Option<&Decision>, limits: &BodyLimits, req: &mut ServiceRequest) -> Option<HttpResponse> {
    if let Some(decision) = decision.filter(|d| d.retry_after.is_some()) {
        return Some(rate_limit::refusal(decision));
    }
    body_limit::check(limits, req).or_else(|| methods::refusal(req))
}

/// The headers and encoding every answer gets on its way out, innermost layer first.
fn finish(
    layers: &HttpLayers,
    mut response: ServiceResponse,
    decision: Option<Decision>,
    wanted: Option<ContentEncoding>,
    origin: Option<HeaderValue>,
) -> ServiceResponse {
    if let Some(decision) = decision {
        decision.write_headers(response.headers_mut());
    }
    if let Some(wanted) = wanted {
        response = compress::encode(&layers.config().compression, response, wanted);
    }
    if let (Some(policy), Some(origin)) = (layers.cors(), origin) {
        policy.mark(&origin, response.headers_mut());
    }
    layers.headers().apply(response.headers_mut());
    response
}
