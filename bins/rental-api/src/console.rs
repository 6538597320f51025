//! `/console`: the staff and operator page, served from files compiled into the binary.
//!
//! The page is public; every datum on it comes from the API with the logged-in user's token, so the API's
//! permissions decide what anyone sees. The routes are not API operations and stay out of the OpenAPI
//! document (like `/docs`). Each answer carries a content security policy of its own, stricter than the
//! default: scripts and styles only from the binary's own files (no inline script or style), calls only to
//! this origin, no framing. Files are revalidated with a weak ETag (weak because the compression layer may
//! re-encode the body).

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// The console's content security policy.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "", content_type: "text/html; charset=utf-8", body: include_bytes!("../console/index.html") },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/console.css"),
    },
    Asset {
        name: "vendor/uplot/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        name: "vendor/uplot/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        name: "vendor/uplot/LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../console/vendor/uplot/LICENSE"),
    },
];

/// FNV-1a, 64 bits: enough to tell two versions of a file apart, computed once per file.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            HeaderValue::from_str(&format!("W/\"{:016x}-{}\"", fnv1a(a.body), a.body.len()))
                .unwrap_or_else(|_| HeaderValue::from_static("W/\"0\""))
        })
        .collect()
});

/// Whether `If-None-Match` names `etag` (or `*`).
fn not_modified(req: &HttpRequest, etag: &HeaderValue) -> bool {
    let Some(value) = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let ours = etag.to_str().unwrap_or_default();
    let ours = ours.strip_prefix("W/").unwrap_or(ours);
    value.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse, ApiError> {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return Err(ApiError::route_not_found());
    };
    let asset = &ASSETS[index];
    let etag = ETAGS.get(index).cloned().unwrap_or_else(|| HeaderValue::from_static("W/\"0\""));
    let unchanged = not_modified(req, &etag);
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        // Revalidate every time: the files are small, a 304 is cheaper than a stale page after an upgrade.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONSOLE_CSP));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.content_type(asset.content_type).body(asset.body))
}

async fn page(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "")
}

async fn file(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&req, &path)
}

/// Registers `/console` (the page), `/console/` (a redirect to it) and `/console/{file}` (its files), each
/// for `GET` and `HEAD` (the same headers without the body: actix leaves the body out of a `HEAD` answer).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::redirect("/console/", "/console"))
        .route("/console", web::get().to(page))
        .route("/console", web::head().to(page))
        .route("/console/{file:.+}", web::get().to(file))
        .route("/console/{file:.+}", web::head().to(file));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_etag_and_a_type() {
        assert_eq!(ETAGS.len(), ASSETS.len());
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{}", a.name);
            for b in &ETAGS[i + 1..] {
                assert_ne!(&ETAGS[i], b);
            }
        }
    }

    #[test]
    fn the_page_weighs_less_than_150_kib_even_uncompressed() {
        // The target is 150 KB compressed (docs/PERFORMANCE.md has the measured figure); the files the page
        // loads stay under it before compression, so no encoding choice can break it.
        let loaded: usize = ASSETS.iter().filter(|a| !a.name.ends_with("LICENSE")).map(|a| a.body.len()).sum();
        assert!(loaded < 150 * 1024, "{loaded} bytes");
    }

    #[test]
    fn the_policy_allows_no_inline_script_or_style() {
        assert!(!CONSOLE_CSP.contains("unsafe"));
        assert!(CONSOLE_CSP.contains("script-src 'self'"));
        assert!(CONSOLE_CSP.contains("style-src 'self'"));
    }
}
