//! The rental backend's HTTP server: the only crate of the workspace that knows HTTP.
//!
//! Routes, extractors, middleware, the error envelope, the OpenAPI document, the settings and the command
//! line. Handlers are thin: they parse, call one service method and render. The binary in `main.rs` only
//! dispatches the command line to [`cli`].

pub mod app;
pub mod background;
pub mod cli;
pub mod console;
pub mod documented_errors;
pub mod error;
pub mod extract;
pub mod http_cache;
pub mod idempotency;
pub mod json;
pub mod methods;
pub mod middleware;
pub mod monitoring;
pub mod profile;
pub mod redis;
pub mod request_id;
pub mod routes;
pub mod settings;
pub mod state;
pub mod telemetry;
