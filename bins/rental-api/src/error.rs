//! The one error type of the HTTP layer and the envelope every error answer uses:
//! `{"error":{"code","message","details"},"request_id"}`.

use std::fmt;
use std::num::NonZeroU32;

use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError, UrlencodedError};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use rental_service::ServiceError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

/// One bad field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The field, e.g. `email` or `users[3].email`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// For batches, the index of the offending row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// The `error` member of the envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Every bad field, for validation errors.
    pub details: Vec<ErrorDetail>,
    /// For `unavailable`: each line that could not be reserved, with what is free and the nearest free
    /// periods of the same length.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<rental_service::ShortageView>,
}

/// The error envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
    /// The request's id, as in the `X-Request-Id` header.
    pub request_id: Option<String>,
}

/// An error answer. Built from service errors and from actix's extractor errors.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<ErrorDetail>,
    lines: Vec<rental_service::ShortageView>,
    /// Seconds for the `Retry-After` header (429 and 503); small, so that `Result<_, ApiError>` stays small.
    retry_after: Option<NonZeroU32>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Debug for ApiError {
    /// The whole cause chain, for the log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)?;
        let mut cause = self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(err) = cause {
            write!(f, "\n  caused by: {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            lines: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 for routes that do not exist.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// 503 `payments_not_configured`: this server has no Stripe keys.
    pub fn payments_not_configured() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "payments_not_configured",
            "payments are not configured on this server",
        )
    }

    /// 503 `database_unavailable`: the database cannot be reached now; try again after `retry_after`.
    pub fn database_unavailable(retry_after: std::time::Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unavailable; try again shortly",
        )
        .with_retry_after(retry_after)
    }

    fn internal(source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server failed to handle the request")
            .with_source(source)
    }

    /// Keeps `source` for the log.
    fn with_source(mut self, source: Box<dyn std::error::Error + Send + Sync>) -> Self {
        self.source = Some(source);
        self
    }

    /// Asks the client to wait `retry_after` (rounded up to whole seconds, at least one) before trying again.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        self.retry_after = Some(NonZeroU32::new(u32::try_from(secs).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN));
        self
    }

    /// Adds field details.
    #[must_use]
    pub fn with_details(mut self, details: Vec<ErrorDetail>) -> Self {
        self.details = details;
        self
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Maps a JSON body error: malformed JSON is 400, a well-formed body of the wrong shape 422, too big 413.
    pub fn from_json(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("body exceeds {limit} bytes"))
            }
            JsonPayloadError::ContentType => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ),
            JsonPayloadError::Deserialize(err) => Self::from_serde_json(&err),
            JsonPayloadError::Payload(PayloadError::Overflow) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body too large")
            }
            other => Self::bad_request("malformed_body", format!("cannot read the body: {other}")),
        }
    }

    /// Maps a serde_json error of a request body.
    pub fn from_serde_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", err.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                Self::bad_request("malformed_json", format!("the body is not valid JSON: {err}"))
            }
        }
    }

    /// Maps a query-string error.
    pub fn from_query(err: QueryPayloadError) -> Self {
        Self::bad_request("invalid_query", format!("invalid query string: {err}"))
    }

    /// Maps a form body error.
    pub fn from_form(err: UrlencodedError) -> Self {
        match err {
            UrlencodedError::Overflow { size, limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("body of {size} bytes exceeds {limit} bytes"),
            ),
            other => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", format!("invalid form body: {other}")),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(transition @ rental_domain::DomainError::IllegalTransition { .. }) => {
                Self::new(StatusCode::CONFLICT, "illegal_transition", transition.to_string())
            }
            ServiceError::Invalid(invalid) => {
                let details: Vec<ErrorDetail> = invalid
                    .fields()
                    .iter()
                    .map(|f| ErrorDetail { field: f.field.clone(), message: f.message.clone(), index: None })
                    .collect();
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "some fields are invalid")
                    .with_details(details)
            }
            ServiceError::InvalidQuery { field, message } => {
                Self::bad_request("invalid_query", format!("query parameter `{field}` {message}"))
                    .with_details(vec![ErrorDetail { field, message, index: None }])
            }
            ServiceError::InsufficientStock(lines) => {
                let details = lines
                    .iter()
                    .map(|l| ErrorDetail {
                        field: format!("lines[{}]", l.line),
                        message: format!("{} requested, {} available", l.requested, l.available),
                        index: Some(l.line),
                    })
                    .collect();
                let mut err = Self::new(StatusCode::CONFLICT, "unavailable", "not enough stock is free for the period")
                    .with_details(details);
                err.lines = lines;
                err
            }
            ServiceError::IdempotencyMismatch => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                "the Idempotency-Key was used with another request (method, path or body); use a new key",
            ),
            ServiceError::IdempotencyKeyInUse => Self::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "a request with this Idempotency-Key is in progress; try again",
            ),
            ServiceError::Unauthorized(message) => Self::unauthorized(message),
            ServiceError::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            ServiceError::NotFound(what) => Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found")),
            ServiceError::Conflict { message, index } => {
                let details = index
                    .map(|i| {
                        vec![ErrorDetail { field: format!("users[{i}]"), message: message.clone(), index: Some(i) }]
                    })
                    .unwrap_or_default();
                let message = match index {
                    Some(i) => format!("row {i}: {message}"),
                    None => message,
                };
                Self::new(StatusCode::CONFLICT, "conflict", message).with_details(details)
            }
            ServiceError::RateLimited { retry_after } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; try again later")
                    .with_retry_after(retry_after)
            }
            ServiceError::Busy { retry_after, source } => {
                let err = Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is busy; try again later")
                    .with_retry_after(retry_after);
                match source {
                    Some(source) => err.with_source(source),
                    None => err,
                }
            }
            ServiceError::DatabaseUnavailable { retry_after, source } => {
                let err = Self::database_unavailable(retry_after);
                match source {
                    Some(source) => err.with_source(source),
                    None => err,
                }
            }
            ServiceError::Timeout(what) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "request_timeout", format!("{what} took too long"))
            }
            ServiceError::Upstream { service, source } => {
                let err =
                    Self::new(StatusCode::BAD_GATEWAY, "upstream_failed", format!("the {service} service failed"));
                match source {
                    Some(source) => err.with_source(source),
                    None => err,
                }
            }
            // Config, Repo, SharedRepo, Internal, and any variant added later until it is mapped here.
            other => Self::internal(Box::new(other)),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        // The one place the full chain is logged; the client sees only the message. Busy and timed-out
        // requests are the load's fault, not a defect: a warning.
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                tracing::warn!(error = ?self, "request refused");
            }
            status if status.is_server_error() => tracing::error!(error = ?self, "request failed"),
            _ => {}
        }
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
                lines: self.lines.clone(),
            },
            request_id: request_id::current(),
        };
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.get()));
        }
        response.json(envelope)
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use rental_domain::{DomainError, OrderStatus};

    use super::*;

    #[test]
    fn service_errors_map_to_stable_codes() {
        let transition = OrderStatus::Closed.transition(OrderStatus::Quote).unwrap_err();
        let err = ApiError::from(ServiceError::Invalid(transition));
        assert_eq!((err.status_code(), err.code()), (StatusCode::CONFLICT, "illegal_transition"));
        let err = ApiError::from(ServiceError::Invalid(DomainError::field("email", "bad")));
        assert_eq!((err.status_code(), err.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
        let err = ApiError::from(ServiceError::Conflict { message: "taken".into(), index: Some(3) });
        assert_eq!(err.details[0].index, Some(3));
        let err = ApiError::from(ServiceError::Internal("secret detail".into()));
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.to_string().contains("secret detail"), "5xx messages hide internals");
        assert!(format!("{err:?}").contains("secret detail"), "the log sees the chain");
    }

    #[test]
    fn load_errors_map_to_their_status_and_retry_after() {
        let second = std::time::Duration::from_millis(1500);
        let cases = [
            (
                ServiceError::Busy { retry_after: second, source: None },
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                Some(2),
            ),
            (ServiceError::RateLimited { retry_after: second }, StatusCode::TOO_MANY_REQUESTS, "rate_limited", Some(2)),
            (
                ServiceError::DatabaseUnavailable { retry_after: second, source: None },
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                Some(2),
            ),
            (ServiceError::Timeout("the report"), StatusCode::GATEWAY_TIMEOUT, "request_timeout", None),
            (
                ServiceError::Upstream { service: "payments", source: None },
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                None,
            ),
        ];
        for (err, status, code, retry_after) in cases {
            let response = ApiError::from(err).error_response();
            assert_eq!(response.status(), status);
            let header = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            assert_eq!(header, retry_after, "{code}");
        }
        let lock = rental_repo::RepoError::LockTimeout { name: "stock".into(), tries: 20 };
        let err = ApiError::from(ServiceError::from(lock));
        assert_eq!((err.status_code(), err.code()), (StatusCode::SERVICE_UNAVAILABLE, "busy"));
        assert!(format!("{err:?}").contains("could not acquire the database lock"), "the log sees the cause");
    }
}
