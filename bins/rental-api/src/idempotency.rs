//! The `Idempotency-Key` header of our own mutating endpoints: the same key and request within the key's
//! lifetime (`idempotency.ttl_secs`, 24 hours by default) answers the first response again (status and body,
//! with `Idempotent-Replayed: true`), a different request with the key is 422 `idempotency_mismatch`, and a
//! duplicate that arrives while the first is running waits for it (PostgreSQL: on the key's row; SQLite: on the
//! write lock) and then replays it, or gets 409 `idempotency_conflict`. The record is written by the service in
//! the unit of work of the effect (see `rental_service::idempotency`), never in a transaction of its own.
//!
//! Adopting it on an endpoint takes three steps:
//!
//! 1. read the body with [`Idempotent`] around the body extractor (`Idempotent<Json<T>>` or
//!    `Idempotent<OptionalJson<T>>`; `Idempotent<()>` when there is no body);
//! 2. answer through [`respond`] with the claim and a closure that calls the service made for the claim (its
//!    `idempotent(claim)` method; a service that does not have one yet begins its unit with
//!    `Idempotency::begin` and ends its work with `Idempotency::completed`);
//! 3. add `IdempotencyKeyHeader` to the operation's `params(..)`: [`document`] then adds the 409 and 422
//!    answers and the `Idempotent-Replayed` header to the OpenAPI document.

use std::future::Future;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use rental_service::{IdempotencyClaim, IdempotencyKey, Principal, ServiceError, ServiceResult, StoredResponse};
use serde::Serialize;
use utoipa::IntoParams;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";

/// The header of a replayed answer.
pub const REPLAYED: &str = "Idempotent-Replayed";

/// The optional `Idempotency-Key` header, for `params(..)` of an operation that accepts it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes the request safe to retry: the same key and request within 24 hours answers the first response
    /// again (with `Idempotent-Replayed: true`) and has its effect once. 1 to 255 printable ASCII characters,
    /// not all spaces (HTTP drops spaces around a header's value); a key is private to its caller and
    /// operation.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = r"^[ -~]*[!-~][ -~]*$")]
    pub idempotency_key: Option<String>,
}

/// What a request with an `Idempotency-Key` needs to claim it, taken by [`Idempotent`].
#[derive(Debug)]
struct Keyed {
    key: IdempotencyKey,
    method: String,
    route: String,
    path: String,
    body: web::Bytes,
}

/// A request body read by `E` (a body extractor), and the request's `Idempotency-Key` when it has one. With a
/// key the body's bytes are read first, to fingerprint the request, and then given to `E`; without one `E`
/// reads the request as it would alone.
#[derive(Debug)]
pub struct Idempotent<E> {
    /// The body, as `E` read it.
    pub body: E,
    keyed: Option<Keyed>,
}

impl<E> Idempotent<E> {
    /// The claim of this request's key by `caller`, answering `status` on success; `None` without a key.
    pub fn claim(&self, caller: &Principal, status: StatusCode) -> Option<IdempotencyClaim> {
        self.keyed.as_ref().map(|k| {
            IdempotencyClaim::new(Some(caller), k.key.clone(), &k.method, &k.route, &k.path, &k.body, status.as_u16())
        })
    }
}

/// The key of the `Idempotency-Key` header, `None` without one.
///
/// # Errors
/// 400 `invalid_idempotency_key` when the header is sent but is not 1 to 255 printable ASCII characters.
fn key_of(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else { return Ok(None) };
    let invalid = |why: &str| ApiError::bad_request("invalid_idempotency_key", format!("the {HEADER} header {why}"));
    let text = value.to_str().map_err(|_| invalid("must be printable ASCII"))?;
    IdempotencyKey::parse(text).map(Some).map_err(invalid)
}

impl<E> FromRequest for Idempotent<E>
where
    E: FromRequest + 'static,
    E::Error: Into<actix_web::Error>,
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let key = match key_of(req) {
            Ok(Some(key)) => key,
            Ok(None) => {
                let body = E::from_request(req, payload);
                return Box::pin(async move { Ok(Self { body: body.await.map_err(Into::into)?, keyed: None }) });
            }
            Err(err) => return Box::pin(std::future::ready(Err(err.into()))),
        };
        // The body is limited by the application's `PayloadConfig` (the JSON limit).
        let bytes = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let bytes = bytes.await.map_err(|err| match err.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body too large")
                }
                _ => ApiError::bad_request("malformed_body", format!("cannot read the body: {err}")),
            })?;
            let mut replayed = Payload::from(bytes.clone());
            let body = E::from_request(&req, &mut replayed).await.map_err(Into::into)?;
            let keyed = Keyed {
                key,
                method: req.method().as_str().to_owned(),
                route: req.match_pattern().unwrap_or_else(|| req.path().to_owned()),
                path: req.uri().path_and_query().map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned()),
                body: bytes,
            };
            Ok(Self { body, keyed: Some(keyed) })
        })
    }
}

/// A stored answer, sent again.
fn replay(stored: StoredResponse) -> ApiResult<HttpResponse> {
    let status = StatusCode::from_u16(stored.status)
        .map_err(|err| ApiError::from(ServiceError::Internal(format!("stored status {}: {err}", stored.status))))?;
    Ok(HttpResponse::build(status)
        .content_type(ContentType::json())
        .insert_header((REPLAYED, "true"))
        .body(stored.body))
}

/// Answers an idempotent operation: without `claim`, runs it and answers `status` with its result; with one,
/// runs the operation for the claim, which claims the key first thing in its unit of work, and looks the key
/// up only when the operation fails: a key already used (its claim found the key taken, or a check that ran
/// before the claim refused what the first request did) replays the stored answer. A new key's request so pays
/// no look-up: its cost is the claim's INSERT and the answer's UPDATE in the effect's unit of work.
///
/// # Errors
/// The operation's error; 422 `idempotency_mismatch` when the key was used with another request; 409
/// `idempotency_conflict` when the key is held and no answer can be replayed.
pub async fn respond<T: Serialize>(
    state: &AppState,
    claim: Option<IdempotencyClaim>,
    status: StatusCode,
    run: impl AsyncFnOnce(Option<IdempotencyClaim>) -> ServiceResult<T>,
) -> ApiResult<HttpResponse> {
    let Some(claim) = claim else {
        return Ok(HttpResponse::build(status).json(run(None).await?));
    };
    let idempotency = &state.services.idempotency;
    match run(Some(claim.clone())).await {
        Ok(answer) => Ok(HttpResponse::build(status).json(answer)),
        Err(err) => match idempotency.lookup(&claim).await {
            Ok(Some(stored)) => replay(stored),
            // The key is another request's (422), or held by one still running (409).
            Err(found @ (ServiceError::IdempotencyMismatch | ServiceError::IdempotencyKeyInUse)) => Err(found.into()),
            // The key is free: the operation's own failure (a lost race ends here too, as 409).
            Ok(None) => Err(err.into()),
            Err(lookup) => {
                tracing::warn!(error = %lookup, "an idempotency key could not be looked up after a failure");
                Err(err.into())
            }
        },
    }
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build())
}

/// Adds to every operation that takes the `Idempotency-Key` header its answers: 409 (a duplicate in progress),
/// 422 (the key used with another request) and the `Idempotent-Replayed` header of its success answers.
pub fn document(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        let operations = [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            let takes_key =
                operation.parameters.as_deref().unwrap_or_default().iter().any(
                    |p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Header) && p.name == HEADER),
                );
            if !takes_key {
                continue;
            }
            let responses = &mut operation.responses.responses;
            responses.entry("409".to_owned()).or_insert_with(|| {
                RefOr::T(error("Conflict, or a request with the same Idempotency-Key is in progress").build())
            });
            responses.entry("422".to_owned()).or_insert_with(|| {
                RefOr::T(error("Invalid fields, or the Idempotency-Key was used with another request").build())
            });
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    let header = HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["true"]))))
                        .description(Some("`true` when this is the stored answer of an earlier request with the key"))
                        .build();
                    response.headers.insert(REPLAYED.to_owned(), RefOr::T(header));
                }
            }
        }
    }
}
