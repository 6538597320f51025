//! The reservation scenarios: many successful reservations on distinct products, and heavy contention on a
//! few products followed by a database check that nothing is overbooked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use chrono::{Duration, DurationRound, Utc};
use rental_repo::{Database, DatabaseConfig, OrderRepo};
use serde::Deserialize;
use uuid::Uuid;

use super::get_json;
use super::http::{Specs, Target};

/// Most products the round robin of `reserve` cycles through.
const MAX_PRODUCTS: usize = 5_000;
/// Products the contended scenario fights over.
const CONTENDED_PRODUCTS: usize = 3;
const RENTALS_PATH: &str = "/api/v1/rentals";

#[derive(Debug, Deserialize)]
struct ProductPage {
    items: Vec<ProductItem>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProductItem {
    id: Uuid,
}

/// Ids of up to [`MAX_PRODUCTS`] active products, read with keyset pages.
pub(super) async fn product_ids(target: &Target) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    while ids.len() < MAX_PRODUCTS {
        let path = match &cursor {
            Some(c) => format!("/api/v1/products?limit=100&include_total=false&cursor={c}"),
            None => "/api/v1/products?limit=100&include_total=false".to_owned(),
        };
        let page: ProductPage = get_json(target, &target.get(&path)?).await.context("cannot list the products")?;
        ids.extend(page.items.into_iter().map(|p| p.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    anyhow::ensure!(!ids.is_empty(), "no product exists; seed products first (cargo xtask seed --products N)");
    Ok(ids)
}

/// A mixer for cheap, repeatable pseudo-random numbers (SplitMix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn request(
    target: &Target,
    token: &str,
    product: Uuid,
    start: chrono::DateTime<Utc>,
    hours: i64,
) -> anyhow::Result<super::http::RequestSpec> {
    let body = serde_json::json!({
        "lines": [{"product_id": product, "quantity": 1, "start": start, "end": start + Duration::hours(hours)}]
    });
    target.post_json(RENTALS_PATH, &body)?.with_bearer(token)
}

/// Midnight UTC `days` from now.
fn midnight_in(days: i64) -> anyhow::Result<chrono::DateTime<Utc>> {
    Ok(Utc::now().duration_trunc(Duration::days(1)).context("time out of range")? + Duration::days(days))
}

/// Each request books the next product round robin for one day; every lap moves two days later. The first
/// day is picked from the clock so that repeated load tests book different days.
pub(super) fn distinct(target: Arc<Target>, token: &str, products: Vec<Uuid>) -> Specs {
    let counter = Arc::new(AtomicU64::new(0));
    let token = token.to_owned();
    let first_day = 1 + (Utc::now().timestamp() / 60).rem_euclid(120);
    Specs::Each(Arc::new(move || {
        let i = counter.fetch_add(1, Ordering::Relaxed);
        let n = products.len() as u64;
        let product = products[usize::try_from(i % n).unwrap_or(0)];
        let lap = i64::try_from(i / n).unwrap_or(0);
        request(&target, &token, product, midnight_in(first_day + 2 * lap)?, 24)
    }))
}

/// Every request books one of the first [`CONTENDED_PRODUCTS`] products for 1–3 days starting at a random hour
/// of the next 30 days: the periods overlap heavily, so most requests must be refused.
pub(super) fn contended(target: Arc<Target>, token: &str, products: Vec<Uuid>) -> Specs {
    let counter = Arc::new(AtomicU64::new(u64::try_from(Utc::now().timestamp()).unwrap_or(0) << 20));
    let token = token.to_owned();
    let few: Vec<Uuid> = products.into_iter().take(CONTENDED_PRODUCTS).collect();
    Specs::Each(Arc::new(move || {
        let r = mix(counter.fetch_add(1, Ordering::Relaxed));
        let product = few[usize::try_from(r % few.len() as u64).unwrap_or(0)];
        let start = midnight_in(1)? + Duration::hours(i64::try_from((r >> 8) % 720).unwrap_or(0));
        let hours = 24 + i64::try_from((r >> 20) % 48).unwrap_or(0);
        request(&target, &token, product, start, hours)
    }))
}

/// Holds that exceed their product's stock, now or later, counted by the database.
pub(super) async fn overbooked(database_url: &str) -> anyhow::Result<u64> {
    let db = Database::connect(&DatabaseConfig::with_url(database_url)).await.context("cannot open the database")?;
    let count = OrderRepo::new(db.clone()).count_overbooked().await.context("the overbooking query failed")?;
    db.close().await.context("cannot close the database")?;
    Ok(count)
}
