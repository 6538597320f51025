//! API tests: the real actix application over a real database (SQLite, or PostgreSQL from TEST_DATABASE_URL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod analytics;
mod auth;
mod cache;
mod cache_freshness;
mod catalogue;
mod cli;
mod console;
mod deposits;
mod errors;
mod idempotency;
mod jobs;
mod middleware;
mod monitoring;
mod payment_flows;
mod payment_keys;
mod payments;
mod rentals;
mod support;
mod system;
