//! Response compression: brotli or gzip as the client prefers (brotli on a tie), for bodies of at least
//! `min_bytes` and for streamed bodies, never for types that are compressed already.
//!
//! actix's own `Compress` compresses every body however small (a 60-byte error envelope gains nothing and
//! costs a compressor per answer) and answers 406 when the client accepts none of its encodings; this layer
//! decides per answer and falls back to the plain body. The encoding itself is actix-http's `Encoder`
//! (gzip at level 1, brotli at quality 3: fast settings, chosen by actix for dynamic content).

use actix_http::encoding::Encoder;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{CONTENT_TYPE, ContentEncoding, HeaderValue, VARY};

use super::config::CompressionConfig;

/// The q-value of `coding` in an `Accept-Encoding` value (`*` standing for any coding not named), 0 if not
/// accepted. Allocation-free: this runs on every request.
fn quality(accept: &str, coding: &str) -> f32 {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0.0)
}

/// The encoding to use for a client sending `accept`, if any.
pub fn negotiate(accept: Option<&HeaderValue>) -> Option<ContentEncoding> {
    let accept = accept?.to_str().ok()?;
    let (br, gzip) = (quality(accept, "br"), quality(accept, "gzip"));
    if br > 0.0 && br >= gzip {
        Some(ContentEncoding::Brotli)
    } else if gzip > 0.0 {
        Some(ContentEncoding::Gzip)
    } else {
        None
    }
}

/// Whether a body of `content_type` and `size` is worth compressing.
fn worth(config: &CompressionConfig, content_type: Option<&HeaderValue>, size: BodySize) -> bool {
    let big_enough = match size {
        BodySize::None => false,
        BodySize::Sized(n) => n >= config.min_bytes as u64,
        BodySize::Stream => config.streams,
    };
    big_enough && !content_type.and_then(|t| t.to_str().ok()).is_some_and(compressed_already)
}

/// Types whose bodies are compressed by their format.
fn compressed_already(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    match kind {
        "image" => sub != "svg+xml",
        "video" | "audio" => true,
        "font" => matches!(sub, "woff" | "woff2"),
        "application" => matches!(
            sub,
            "zip" | "gzip" | "x-gzip" | "zstd" | "x-bzip2" | "x-xz" | "x-7z-compressed" | "pdf" | "octet-stream"
        ),
        _ => false,
    }
}

/// Compresses `response` with `wanted` (the client's choice, from [`negotiate`]) when it is worth it; otherwise
/// sends it as it is, with `Vary: accept-encoding` (a bigger answer of the same resource may be compressed, so
/// caches must keep the variants apart).
pub fn encode(config: &CompressionConfig, response: ServiceResponse, wanted: ContentEncoding) -> ServiceResponse {
    let mut response = response;
    if !worth(config, response.headers().get(CONTENT_TYPE), response.response().body().size()) {
        response.headers_mut().append(VARY, HeaderValue::from_static("accept-encoding"));
        return response;
    }
    response.map_body(|head, body| Encoder::response(wanted, head, body)).map_into_boxed_body()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> Option<ContentEncoding> {
        negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn the_client_preference_decides() {
        assert_eq!(pick("gzip, deflate, br"), Some(ContentEncoding::Brotli), "brotli on a tie");
        assert_eq!(pick("gzip;q=1.0, br;q=0.5"), Some(ContentEncoding::Gzip));
        assert_eq!(pick("br;q=0, gzip"), Some(ContentEncoding::Gzip));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("*"), Some(ContentEncoding::Brotli));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(negotiate(None), None);
    }

    #[test]
    fn small_and_compressed_bodies_are_sent_as_they_are() {
        let config = CompressionConfig::default();
        let json = HeaderValue::from_static("application/json");
        assert!(worth(&config, Some(&json), BodySize::Sized(1024)));
        assert!(!worth(&config, Some(&json), BodySize::Sized(1023)));
        assert!(worth(&config, Some(&HeaderValue::from_static("text/csv; charset=utf-8")), BodySize::Stream));
        assert!(!worth(&config, Some(&HeaderValue::from_static("image/png")), BodySize::Sized(1 << 20)));
        assert!(worth(&config, Some(&HeaderValue::from_static("image/svg+xml")), BodySize::Sized(1 << 20)));
        let no_streams = CompressionConfig { streams: false, ..config };
        assert!(!worth(&no_streams, Some(&json), BodySize::Stream));
    }
}
