//! `/console`: the page and its files come from the binary, with a policy that allows no inline script or
//! style, revalidation by ETag, and compression; the routes stay out of the API's document.

use std::io::Read;

use actix_web::test::{self, TestRequest};

use crate::support::{app, context, send};

fn header(res: &actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, name: &str) -> String {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The `src`/`href` values of `page` that point into the console.
fn references(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in page.match_indices(attr) {
            let rest = &page[i + attr.len()..];
            let value = &rest[..rest.find('"').unwrap()];
            if value.starts_with("/console/") {
                out.push(value.to_owned());
            }
        }
    }
    out
}

#[actix_web::test]
async fn the_page_and_its_files_are_served_with_the_console_policy() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let res = test::call_service(&app, TestRequest::get().uri("/console").to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    let csp = header(&res, "content-security-policy");
    assert_eq!(csp, rental_api::console::CONSOLE_CSP);
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "cache-control"), "no-cache");
    let etag = header(&res, "etag");
    let page = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    // HEAD has the page's headers (the server leaves the body out on the wire: the browser tests check that).
    let head = test::call_service(
        &app,
        TestRequest::default().method(actix_web::http::Method::HEAD).uri("/console").to_request(),
    )
    .await;
    assert_eq!(head.status(), 200);
    assert_eq!((header(&head, "etag"), header(&head, "content-security-policy")), (etag, csp.clone()));
    // Nothing inline: the policy would refuse it.
    assert!(!page.contains("<script>") && !page.contains("<style") && !page.contains(" style="), "inline code");
    assert!(!page.contains("http://") && !page.contains("https://"), "nothing from another host");

    let files = references(&page);
    assert_eq!(files.len(), 4, "{files:?}");
    for file in files {
        let res = test::call_service(&app, TestRequest::get().uri(&file).to_request()).await;
        assert_eq!(res.status(), 200, "{file}");
        let expected = if file.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(header(&res, "content-type"), expected, "{file}");
        assert_eq!(header(&res, "content-security-policy"), rental_api::console::CONSOLE_CSP, "{file}");
    }
    // The chart library's licence is served beside it.
    let licence =
        test::call_and_read_body(&app, TestRequest::get().uri("/console/vendor/uplot/LICENSE").to_request()).await;
    assert!(String::from_utf8_lossy(&licence).contains("MIT License"));
}

#[actix_web::test]
async fn files_are_revalidated_by_etag_and_compressed() {
    let ctx = context().await;
    let app = app(&ctx).await;
    let uri = "/console/console.js";
    let res = test::call_service(&app, TestRequest::get().uri(uri).to_request()).await;
    let etag = header(&res, "etag");
    assert!(etag.starts_with("W/\""), "{etag}");
    let plain = test::read_body(res).await;
    let res = test::call_service(
        &app,
        TestRequest::get().uri(uri).insert_header(("If-None-Match", etag.as_str())).to_request(),
    )
    .await;
    assert_eq!(res.status(), 304);
    assert!(test::read_body(res).await.is_empty());
    let res = test::call_service(
        &app,
        TestRequest::get().uri(uri).insert_header(("If-None-Match", "W/\"other\"")).to_request(),
    )
    .await;
    assert_eq!(res.status(), 200);

    let res =
        test::call_service(&app, TestRequest::get().uri(uri).insert_header(("Accept-Encoding", "gzip")).to_request())
            .await;
    assert_eq!(header(&res, "content-encoding"), "gzip");
    let body = test::read_body(res).await;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, plain);
}

#[actix_web::test]
async fn unknown_files_are_404_envelopes_and_the_routes_are_not_api_operations() {
    let ctx = context().await;
    let app = app(&ctx).await;
    for uri in ["/console/nothing.js", "/console/../Cargo.toml", "/console/vendor/uplot/"] {
        send(&app, TestRequest::get().uri(uri)).await.assert_error(404, "not_found");
    }
    let res = test::call_service(&app, TestRequest::get().uri("/console/").to_request()).await;
    assert!(res.status().is_redirection());
    assert_eq!(header(&res, "location"), "/console");
    let document = rental_api::app::openapi_document();
    assert!(document.paths.paths.keys().all(|p| !p.starts_with("/console")));
}
