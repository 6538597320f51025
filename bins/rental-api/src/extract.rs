//! Extractors: the authenticated (or optional) caller, and raw query pairs for list endpoints.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use rental_service::Principal;

use crate::error::ApiError;
use crate::middleware::rate_limit::Authenticated;
use crate::state::AppState;

/// The caller, authenticated by the bearer access token. Deactivated or deleted accounts are refused.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The rate limiter checked the token already: its principal is taken instead of checking twice.
        if let Some(Authenticated(principal)) = req.extensions().get::<Authenticated>() {
            return Box::pin(std::future::ready(Ok(Auth(principal.clone()))));
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::unauthorized("authentication is not configured"))?;
            let token = token?;
            let principal = state.services.auth.authenticate(&token).await?;
            // Kept for the access log's user id (and any later extractor of this request).
            req.extensions_mut().insert(Authenticated(principal.clone()));
            Ok(Auth(principal))
        })
    }
}

/// The caller when a bearer token is sent, `None` when no `Authorization` header is: for public endpoints that
/// show more to staff. A header that is sent must hold a valid token (401 otherwise), so a client with an
/// expired token learns it instead of silently seeing the public view.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Principal>);

impl MaybeAuth {
    /// The caller, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.0.as_ref()
    }
}

impl FromRequest for MaybeAuth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if req.headers().get(AUTHORIZATION).is_none() {
            return Box::pin(std::future::ready(Ok(MaybeAuth(None))));
        }
        let auth = Auth::from_request(req, payload);
        Box::pin(async move { Ok(MaybeAuth(Some(auth.await?.0))) })
    }
}

/// The bearer token of `req`.
///
/// # Errors
/// 401 when the header is missing or not `Bearer <token>`.
pub(crate) fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <access token> header"))?;
    let value = header.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::unauthorized("the Authorization header must be `Bearer <access token>`")),
    }
}

/// Every query-string pair, in order, for the list endpoints' whitelist check.
#[derive(Debug, Clone)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl FromRequest for QueryPairs {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
                .map(QueryPairs)
                .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query string: {e}"))),
        )
    }
}
