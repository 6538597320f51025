//! 405 Method Not Allowed, from the OpenAPI document.
//!
//! actix matches a route by path and method together, so a method a path does not have falls through to
//! another route whose template also matches (`DELETE /users/me` reached `DELETE /users/{id}` and answered 400
//! for the id `me`) or to the 404 fallback. The document already lists every path with its methods, so this
//! middleware looks the request's path up there first: the most specific documented template that matches
//! (a literal segment beats a parameter) decides, and a method it does not declare is answered 405 with an
//! `Allow` header and the JSON error envelope. Paths the document does not know are left to the router.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError, web};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;

/// Segments of the longest path looked up; the documented paths have at most six.
const MAX_SEGMENTS: usize = 16;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

/// A documented path with its methods.
#[derive(Debug, Clone)]
struct Route {
    segments: Vec<Segment>,
    /// How specific the template is: a bit per literal segment, the leftmost the highest, so that a literal
    /// beats a parameter leftmost first (templates longer than 64 segments compare by their first 64).
    specificity: u64,
    methods: Vec<Method>,
    /// The `Allow` header value, e.g. `GET, PATCH`.
    allow: HeaderValue,
}

/// The methods of every documented path.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods {
    /// The routes by their number of segments: a path is compared only with templates of its length.
    by_length: Vec<Vec<Route>>,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl AllowedMethods {
    /// The table of `document`'s paths.
    pub fn from_openapi(document: &OpenApi) -> Self {
        let routes: Vec<Route> = document
            .paths
            .paths
            .iter()
            .filter_map(|(path, item)| {
                let methods: Vec<Method> = [
                    (Method::GET, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::HEAD, item.head.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                    (Method::TRACE, item.trace.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, documented)| documented.then_some(method))
                .collect();
                let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                let allow = HeaderValue::from_str(&allow).ok()?;
                let segments: Vec<Segment> = segments(path)
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect();
                let specificity = segments
                    .iter()
                    .take(64)
                    .enumerate()
                    .filter(|(_, segment)| matches!(segment, Segment::Literal(_)))
                    .fold(0_u64, |bits, (i, _)| bits | (1 << (63 - i)));
                Some(Route { segments, specificity, methods, allow })
            })
            .collect();
        let mut by_length: Vec<Vec<Route>> = Vec::new();
        for route in routes {
            let length = route.segments.len();
            if by_length.len() <= length {
                by_length.resize_with(length + 1, Vec::new);
            }
            by_length[length].push(route);
        }
        Self { by_length }
    }

    /// The most specific documented route matching `path`: among the templates of the same length whose
    /// literals match, the one with a literal where the others have a parameter, leftmost first.
    /// Runs on every request, so it allocates nothing: the path's segments go into an array on the stack (a
    /// path longer than [`MAX_SEGMENTS`] matches no documented template), then templates of that length are
    /// compared segment by segment.
    fn route(&self, path: &str) -> Option<&Route> {
        let mut parts = [""; MAX_SEGMENTS];
        let mut len = 0;
        for part in segments(path) {
            *parts.get_mut(len)? = part;
            len += 1;
        }
        let parts = &parts[..len];
        self.by_length
            .get(len)?
            .iter()
            .filter(|route| {
                route.segments.iter().zip(parts).all(|(segment, part)| match segment {
                    Segment::Literal(literal) => literal == part,
                    Segment::Param => true,
                })
            })
            .max_by_key(|route| route.specificity)
    }

    /// The `Allow` value when `method` is not documented for `path`; `None` when it is, or when the path is
    /// not documented at all.
    pub fn refuse(&self, method: &Method, path: &str) -> Option<HeaderValue> {
        let route = self.route(path)?;
        (!route.methods.contains(method)).then(|| route.allow.clone())
    }
}

/// The 405 answer, with `Allow`, when the [`AllowedMethods`] of the app data do not declare the request's
/// method for its path; `None` otherwise (the router decides).
pub fn refusal(req: &ServiceRequest) -> Option<HttpResponse> {
    let allow = req.app_data::<web::Data<AllowedMethods>>()?.refuse(req.method(), req.path())?;
    let message = format!("{} is not allowed here; allowed: {}", req.method(), allow.to_str().unwrap_or_default());
    let mut response = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message).error_response();
    response.headers_mut().insert(ALLOW, allow);
    Some(response)
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::{InfoBuilder, OpenApiBuilder};

    use super::*;

    fn table() -> AllowedMethods {
        let paths = PathsBuilder::new()
            .path("/api/v1/users/me", PathItem::new(HttpMethod::Get, OperationBuilder::new()))
            .path("/api/v1/users/{id}", PathItem::new(HttpMethod::Delete, OperationBuilder::new()))
            .path("/api/v1/{x}/me", PathItem::new(HttpMethod::Put, OperationBuilder::new()));
        AllowedMethods::from_openapi(&OpenApiBuilder::new().info(InfoBuilder::new().build()).paths(paths).build())
    }

    #[test]
    fn the_most_specific_template_decides() {
        let table = table();
        assert_eq!(table.refuse(&Method::DELETE, "/api/v1/users/me").unwrap(), "GET");
        assert_eq!(table.refuse(&Method::GET, "/api/v1/users/me"), None);
        assert_eq!(table.refuse(&Method::DELETE, "/api/v1/users/0190"), None);
        assert_eq!(table.refuse(&Method::GET, "/api/v1/users/0190").unwrap(), "DELETE");
        assert_eq!(table.refuse(&Method::GET, "/api/v1/nothing/here/at/all"), None, "unknown paths go on");
    }
}
