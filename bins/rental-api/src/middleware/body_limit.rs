//! Body limits per route: 413 `payload_too_large` for a body larger than its route allows.
//!
//! The limit of a request is the first `http.body_limit.routes` entry that matches it, else the built-in one
//! of `POST /api/v1/users/bulk` (`server.bulk_json_limit_bytes`), else `server.json_limit_bytes`. A declared
//! `Content-Length` above it is refused before a byte is read; a body of unknown length (chunked) is counted
//! as it arrives and cut off at the limit, which the body extractors answer with the same 413. The extractors'
//! own limits are set to the largest limit of all, so that they never refuse a body its route allows.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use futures_util::Stream;

use super::routes::RoutePattern;
use crate::error::ApiError;

/// The route of `POST /api/v1/users/bulk`, whose limit is `server.bulk_json_limit_bytes`.
const BULK_ROUTE: &str = "POST /api/v1/users/bulk";

/// The body limit of every route.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    default: usize,
    /// Overrides, the first matching wins; the built-in bulk route last.
    routes: Vec<(RoutePattern, usize)>,
}

impl BodyLimits {
    /// `default` for every route but those of `routes` (the configured overrides) and the bulk import, which
    /// gets `bulk` unless an override names it first.
    pub fn new(routes: &[(RoutePattern, usize)], default: usize, bulk: usize) -> Self {
        let mut all = routes.to_vec();
        if let Ok(pattern) = RoutePattern::parse(BULK_ROUTE) {
            all.push((pattern, bulk));
        }
        Self { default, routes: all }
    }

    /// The largest limit of any route: what the body extractors are configured with.
    pub fn largest(&self) -> usize {
        self.routes.iter().map(|(_, limit)| *limit).fold(self.default, usize::max)
    }

    /// The limit of a request.
    pub fn of(&self, method: &Method, path: &str) -> usize {
        self.routes.iter().find(|(pattern, _)| pattern.matches(method, path)).map_or(self.default, |(_, limit)| *limit)
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("body exceeds {limit} bytes"))
}

/// The 413 answer for a body whose declared length is above its route's limit. A body of unknown length
/// (chunked) is let through, counted as it arrives and cut off at the limit.
pub fn check(limits: &BodyLimits, req: &mut ServiceRequest) -> Option<HttpResponse> {
    let headers = req.headers();
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    if declared.is_none_or(|length| length == 0) && !chunked {
        return None;
    }
    let limit = limits.of(req.method(), req.path());
    if declared.is_some_and(|length| length > limit as u64) {
        return Some(too_large(limit).error_response());
    }
    if chunked {
        let inner = req.take_payload();
        req.set_payload(Payload::Stream { payload: Box::pin(Bounded { inner, left: limit }) });
    }
    None
}

/// A body stream that fails with [`PayloadError::Overflow`] once more than `left` bytes have come.
struct Bounded<S> {
    inner: S,
    left: usize,
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for Bounded<S> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if chunk.len() > this.left {
                    this.left = 0;
                    return Poll::Ready(Some(Err(PayloadError::Overflow)));
                }
                this.left -= chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_override_wins_then_the_bulk_route_then_the_default() {
        let overrides = [
            (RoutePattern::parse("POST /api/v1/products").unwrap(), 1_000_000),
            (RoutePattern::parse("/api/v1/auth/*").unwrap(), 4_096),
        ];
        let limits = BodyLimits::new(&overrides, 262_144, 8_388_608);
        assert_eq!(limits.of(&Method::POST, "/api/v1/products"), 1_000_000);
        assert_eq!(limits.of(&Method::PATCH, "/api/v1/products/1"), 262_144);
        assert_eq!(limits.of(&Method::POST, "/api/v1/auth/login"), 4_096);
        assert_eq!(limits.of(&Method::POST, "/api/v1/users/bulk"), 8_388_608);
        assert_eq!(limits.largest(), 8_388_608);
        assert_eq!(BodyLimits::new(&[], 100, 50).largest(), 100);
    }

    #[actix_web::test]
    async fn a_body_of_unknown_length_is_cut_off_past_the_limit() {
        use futures_util::StreamExt;

        let chunks = |sizes: &[usize]| {
            let chunks: Vec<Result<Bytes, PayloadError>> =
                sizes.iter().map(|n| Ok(Bytes::from(vec![b'x'; *n]))).collect();
            futures_util::stream::iter(chunks)
        };
        let read = |stream: Bounded<_>| stream.map(|item| item.map(|bytes| bytes.len())).collect::<Vec<_>>();
        let exact = read(Bounded { inner: chunks(&[4, 4, 2]), left: 10 }).await;
        assert!(exact.iter().all(Result::is_ok), "{exact:?}");
        let over = read(Bounded { inner: chunks(&[4, 4, 4, 4]), left: 10 }).await;
        assert!(matches!(over[..], [Ok(4), Ok(4), Err(PayloadError::Overflow), ..]), "{over:?}");
    }
}
