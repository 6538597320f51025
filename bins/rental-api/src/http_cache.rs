//! HTTP caching of JSON answers: a strong `ETag` (XXH3 of the body, the same on every instance), `304 Not
//! Modified` when `If-None-Match` names it, and a `Cache-Control` saying who may store the answer.
//!
//! Catalogue answers for anonymous callers are `public` (with `Vary: Authorization`, since staff see inactive
//! products); answers to signed-in callers are `private`. Both are `no-cache`: a cache may keep them but must
//! revalidate, which costs a 304 without a body when nothing changed.

use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

/// Who may store an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The same for every caller: shared caches may keep it.
    Public,
    /// Depends on the caller (their role or identity): only their own client may keep it.
    Private,
}

impl Visibility {
    /// `Public` for anonymous callers, `Private` for signed-in ones.
    pub fn for_caller(signed_in: bool) -> Self {
        if signed_in { Self::Private } else { Self::Public }
    }

    fn header(self) -> &'static str {
        match self {
            Self::Public => "public, no-cache",
            Self::Private => "private, no-cache",
        }
    }
}

/// The strong entity tag of `body`.
pub fn etag(body: &[u8]) -> String {
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body))
}

/// Whether `If-None-Match` of `req` names `tag` (or is `*`); weak tags compare by their opaque part.
fn not_modified(req: &HttpRequest, tag: &str) -> bool {
    let Some(value) = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

/// A JSON answer with its `ETag` and `Cache-Control`, or a `304` without a body when the client has it.
pub fn json(req: &HttpRequest, body: Bytes, visibility: Visibility) -> HttpResponse {
    let tag = etag(&body);
    let unchanged = not_modified(req, &tag);
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static(visibility.header())));
    if visibility == Visibility::Public {
        response.insert_header((header::VARY, HeaderValue::from_static("Authorization")));
    }
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.insert_header((header::ETAG, value));
    }
    if unchanged {
        return response.finish();
    }
    response.content_type(ContentType::json()).body(body)
}

/// [`json`] of a value serialised here.
///
/// # Errors
/// [`crate::error::ApiError`] when the value cannot be encoded (plain data always can).
pub fn json_of<T: serde::Serialize>(
    req: &HttpRequest,
    value: &T,
    visibility: Visibility,
) -> crate::error::ApiResult<HttpResponse> {
    let body = serde_json::to_vec(value).map_err(|err| {
        crate::error::ApiError::from(rental_service::ServiceError::Internal(format!("cannot encode an answer: {err}")))
    })?;
    Ok(json(req, Bytes::from(body), visibility))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn a_matching_if_none_match_gets_a_304_without_a_body() {
        let body = Bytes::from_static(br#"{"items":[]}"#);
        let tag = etag(&body);
        let fresh = json(&TestRequest::get().to_http_request(), body.clone(), Visibility::Public);
        assert_eq!(fresh.status(), 200);
        assert_eq!(fresh.headers().get(header::ETAG).unwrap(), tag.as_str());
        assert_eq!(fresh.headers().get(header::CACHE_CONTROL).unwrap(), "public, no-cache");
        for header_value in [tag.clone(), format!("W/{tag}"), format!("\"other\", {tag}"), "*".to_owned()] {
            let req = TestRequest::get().insert_header((header::IF_NONE_MATCH, header_value)).to_http_request();
            assert_eq!(json(&req, body.clone(), Visibility::Private).status(), 304);
        }
        let stale = TestRequest::get().insert_header((header::IF_NONE_MATCH, "\"other\"")).to_http_request();
        let changed = json(&stale, body, Visibility::Private);
        assert_eq!(changed.status(), 200);
        assert_eq!(changed.headers().get(header::CACHE_CONTROL).unwrap(), "private, no-cache");
        assert!(changed.headers().get(header::VARY).is_none());
    }
}
