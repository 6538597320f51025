//! A bare actix-web server answering `GET /health/live` with the same JSON as `rental-api`'s, with none of its
//! middleware: the floor the load tests compare `rental-api` against (issue 10's target: `/health/live` at
//! 60 % or more of this). `cargo run --release -p rental-api --example hello -- 127.0.0.1:8090 [workers]`.

use actix_web::{App, HttpResponse, HttpServer, get};

#[get("/health/live")]
async fn live() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let workers = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get));
    HttpServer::new(|| App::new().service(live)).workers(workers).bind(address)?.run().await
}
