//! The error answers every route can give, added to each operation of the OpenAPI document.
//!
//! Handlers document the answers of their own logic (403 for a role, 404 for an id, 409 for a conflict). The
//! answers of the shared machinery are added here, so that the document lists every status a route really
//! answers and schemathesis' `status_code_conformance` holds:
//! - 400 when the operation takes parameters or a body (malformed JSON, a bad query string, a bad id);
//! - 401 when the operation has a security requirement (a missing, invalid or expired token);
//! - 404 when its path has a parameter (no such record);
//! - 413, 415 and 422 when it takes a body (too big, not JSON, the wrong shape);
//! - 503 `busy` with `Retry-After` on every route that touches the database;
//! - 429 `rate_limited` with `Retry-After` and `RateLimit-*`, and 504 `request_timeout`, on every route (the
//!   rate limiter and the timeout run before routing).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Routes that never reach the database, so never answer 503 `busy`.
const NO_DATABASE: &[&str] = &["/health/live"];

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build())
}

fn retry_after() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
        .description(Some("Seconds to wait before trying again"))
        .build()
}

fn count(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))))
        .description(Some(description))
        .build()
}

fn add(operation: &mut Operation, status: &str, response: ResponseBuilder) {
    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(response.build()));
}

/// Adds the shared error answers to every operation of `document`.
pub fn add_shared_errors(document: &mut OpenApi) {
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let parameters = operation.parameters.as_deref().unwrap_or_default();
            let path_parameter =
                parameters.iter().any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Path)))
                    || path.contains('{');
            let has_body = operation.request_body.is_some();
            if !parameters.is_empty() || has_body || path_parameter {
                add(operation, "400", error("Malformed request: bad JSON, query string or id"));
            }
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add(operation, "401", error("Missing, invalid or expired token"));
            }
            if path_parameter {
                add(operation, "404", error("No such record"));
            }
            if has_body {
                add(operation, "413", error("Body too large"));
                add(operation, "415", error("The body is not JSON"));
                add(operation, "422", error("The body has the wrong shape or invalid fields"));
            }
            add(
                operation,
                "429",
                error("Too many requests: try again after Retry-After seconds")
                    .header("Retry-After", retry_after())
                    .header("RateLimit-Limit", count("Requests allowed per minute"))
                    .header("RateLimit-Remaining", count("Requests left (0 when refused)"))
                    .header("RateLimit-Reset", count("Seconds until the quota is whole again")),
            );
            add(operation, "504", error("The request took longer than its timeout; its work was cancelled"));
            if !NO_DATABASE.contains(&path.as_str()) {
                add(
                    operation,
                    "503",
                    error("Busy: try again after Retry-After seconds").header("Retry-After", retry_after()),
                );
            }
        }
    }
}
