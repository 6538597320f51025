//! Route patterns of the per-route settings: `[METHOD ]/path/{param}/literal[/*]`.
//!
//! The app-level middleware runs before actix routes the request (the matched pattern is not known yet), so
//! the settings name routes by a pattern of their own, matched against the path without allocating: a `{..}`
//! segment matches any one segment, a final `*` any rest (also none), and the method, when given, must be the
//! request's.

use actix_web::http::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    method: Option<Method>,
    segments: Vec<Segment>,
    /// Whether the pattern ends in `/*`.
    rest: bool,
}

impl RoutePattern {
    /// Parses `GET /api/v1/exports/*`, `POST /api/v1/users/bulk` or `/api/v1/users/{id}`.
    ///
    /// # Errors
    /// Why the pattern cannot be used.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (method, path) = match text.split_once(' ') {
            Some((method, path)) => {
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("`{method}` is not an HTTP method"))?;
                (Some(method), path.trim())
            }
            None => (None, text),
        };
        if !path.starts_with('/') {
            return Err(format!("`{text}` must be a path starting with `/`, optionally after a method"));
        }
        let mut parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = parts.last() == Some(&"*");
        if rest {
            parts.pop();
        }
        let mut segments = Vec::with_capacity(parts.len());
        for part in parts {
            if part.contains('*') {
                return Err(format!("`{text}`: `*` may only be the last segment"));
            }
            segments.push(if part.starts_with('{') && part.ends_with('}') {
                Segment::Param
            } else {
                Segment::Literal(part.to_owned())
            });
        }
        Ok(Self { method, segments, rest })
    }

    /// Whether a request with `method` and `path` is one of this pattern's.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        for segment in &self.segments {
            match (segment, parts.next()) {
                (_, None) => return false,
                (Segment::Literal(literal), Some(part)) if literal != part => return false,
                _ => {}
            }
        }
        self.rest || parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_methods_params_and_rests() {
        let bulk = RoutePattern::parse("post /api/v1/users/bulk").unwrap();
        assert!(bulk.matches(&Method::POST, "/api/v1/users/bulk"));
        assert!(!bulk.matches(&Method::GET, "/api/v1/users/bulk"));
        assert!(!bulk.matches(&Method::POST, "/api/v1/users/bulk/more"));
        let exports = RoutePattern::parse("GET /api/v1/exports/*").unwrap();
        assert!(exports.matches(&Method::GET, "/api/v1/exports/orders.csv"));
        assert!(exports.matches(&Method::GET, "/api/v1/exports"));
        assert!(!exports.matches(&Method::GET, "/api/v1/export"));
        let user = RoutePattern::parse("/api/v1/users/{id}").unwrap();
        assert!(user.matches(&Method::DELETE, "/api/v1/users/42"));
        assert!(!user.matches(&Method::DELETE, "/api/v1/users"));
        for bad in ["api/v1", "G(T /x", "/a/*/b", ""] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
