//! `cargo xtask seed --orders N`: historical and upcoming rental orders through [`OrderImporter`].
//!
//! Orders are spread from two years ago to four months ahead. Each has one to three lines on consecutive
//! products. No overbooking, by construction: line `g` goes to product `g % P` in that product's slot `g / P`,
//! every product's time is cut into equal slots, and a line (its period plus the product's buffer) stays inside
//! its slot, so two lines of one product never overlap, and a line's quantity never exceeds the product's
//! capacity. The status follows the period: long past orders are mostly closed (some cancelled or never
//! confirmed), recent ones returned or closed, current ones picked up, future ones reserved or still quotes.
//! Invoices follow the status (paid, open, draft, void), with the odd late fee and damage charge.
//!
//! Because the layout assumes each product's timeline is empty, the seeder refuses a database that already
//! has orders. Everything is derived from a hash of the order's index, so a run is reproducible but for `now`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration, DurationRound, Utc};
use indicatif::ProgressBar;
use rental_domain::{ChargeKind, Currency, InvoiceStatus, OrderStatus};
use rental_repo::{ImportProduct, ImportedCharge, ImportedInvoice, ImportedLine, ImportedOrder, OrderImporter};
use tokio::task::JoinSet;
use uuid::Uuid;

/// Days of history before now.
const PAST_DAYS: i64 = 730;
/// Days of bookings after now.
const FUTURE_DAYS: i64 = 120;
/// Tax rate of every seeded order (20%).
const TAX_RATE_BP: u32 = 2_000;

/// What the workers share.
struct Plan {
    products: Vec<ImportProduct>,
    customers: Vec<Uuid>,
    currency: Currency,
    /// `line_offsets[j]` = index of order `j`'s first line; one more entry than orders.
    line_offsets: Vec<u64>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    slot_secs: i64,
    orders: u64,
    batch: u64,
    next_batch: AtomicU64,
}

/// splitmix64: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A number in `0..n` drawn from order `j`'s hash stream `k`.
fn draw(j: u64, k: u64, n: u64) -> u64 {
    mix(j.wrapping_mul(16).wrapping_add(k)) % n.max(1)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Lines of order `j`: 1, 2 or 3, two on average.
fn lines_of(j: u64) -> u64 {
    1 + draw(j, 0, 3)
}

impl Plan {
    fn claim(&self) -> Option<std::ops::Range<u64>> {
        let batch = self.next_batch.fetch_add(1, Ordering::Relaxed);
        let start = batch.checked_mul(self.batch).filter(|start| *start < self.orders)?;
        Some(start..(start + self.batch).min(self.orders))
    }

    /// Order `j`.
    fn order(&self, j: u64) -> anyhow::Result<ImportedOrder> {
        let index = usize::try_from(j).context("order index")?;
        let (first, last) = (self.line_offsets[index], self.line_offsets[index + 1]);
        let product_count = self.products.len() as u64;
        let mut lines = Vec::new();
        for g in first..last {
            let product = &self.products[usize::try_from(g % product_count).context("product index")?];
            let slot = to_i64(g / product_count);
            let slot_start = self.start + Duration::seconds(slot * self.slot_secs);
            let room = self.slot_secs - i64::from(product.terms.buffer_minutes) * 60;
            // Periods of whole hours, from a quarter of the room up to all of it, somewhere inside the room.
            let hours = (room / 3600).max(1);
            let length = (hours / 4 + to_i64(draw(j, 1 + (g - first), (hours - hours / 4) as u64 + 1))).clamp(1, hours);
            let offset = to_i64(draw(j, 4 + (g - first), (hours - length + 1) as u64));
            let starts_at = slot_start + Duration::hours(offset);
            let quantity = 1 + to_i64(draw(j, 7 + (g - first), product.capacity.clamp(1, 3) as u64));
            lines.push(ImportedLine {
                product_id: product.id,
                quantity: i32::try_from(quantity).unwrap_or(1),
                starts_at,
                ends_at: starts_at + Duration::hours(length),
                terms: product.terms,
            });
        }
        let starts_at = lines.iter().map(|l| l.starts_at).min().context("an order without lines")?;
        let ends_at = lines.iter().map(|l| l.ends_at).max().context("an order without lines")?;
        let late_fee = lines[0].terms.late_fee_per_day.amount_minor;
        let deposit = lines[0].terms.deposit_per_unit.amount_minor;

        let roll = draw(j, 10, 100);
        let now = self.now;
        let status = if ends_at < now - Duration::days(14) {
            match roll {
                0..88 => OrderStatus::Closed,
                88..95 => OrderStatus::Cancelled,
                _ => OrderStatus::Quote,
            }
        } else if ends_at <= now {
            match roll {
                0..50 => OrderStatus::Returned,
                50..90 => OrderStatus::Closed,
                _ => OrderStatus::Cancelled,
            }
        } else if starts_at <= now {
            if roll < 95 { OrderStatus::PickedUp } else { OrderStatus::Cancelled }
        } else {
            match roll {
                0..80 => OrderStatus::Reserved,
                80..92 => OrderStatus::Quote,
                _ => OrderStatus::Cancelled,
            }
        };
        let lead = Duration::hours(to_i64(24 + draw(j, 11, 21 * 24)));
        let created_at = (starts_at - lead).min(now - Duration::hours(1));
        let picked_up = matches!(status, OrderStatus::PickedUp | OrderStatus::Returned | OrderStatus::Closed);
        let returned = matches!(status, OrderStatus::Returned | OrderStatus::Closed);
        let after_return = (ends_at + Duration::hours(2)).min(now);

        let charge_roll = draw(j, 12, 100);
        let invoice = match status {
            OrderStatus::Closed => {
                let mut charges = Vec::new();
                if charge_roll < 6 {
                    let days = 1 + draw(j, 13, 3);
                    charges.push(ImportedCharge {
                        kind: ChargeKind::LateFee,
                        description: format!("{days} day(s) late"),
                        quantity: i32::try_from(days).unwrap_or(1),
                        unit_amount_minor: late_fee,
                        taxable: true,
                    });
                } else if charge_roll < 8 {
                    charges.push(ImportedCharge {
                        kind: ChargeKind::Damage,
                        description: "damage".to_owned(),
                        quantity: 1,
                        unit_amount_minor: deposit / 2,
                        taxable: false,
                    });
                }
                Some(ImportedInvoice { status: InvoiceStatus::Paid, issued_at: Some(after_return), charges })
            }
            OrderStatus::Returned => Some(ImportedInvoice {
                status: InvoiceStatus::Open,
                issued_at: Some(after_return),
                charges: Vec::new(),
            }),
            OrderStatus::PickedUp => Some(ImportedInvoice {
                status: InvoiceStatus::Open,
                issued_at: Some(starts_at.min(now)),
                charges: Vec::new(),
            }),
            OrderStatus::Reserved if charge_roll < 50 => {
                Some(ImportedInvoice { status: InvoiceStatus::Draft, issued_at: None, charges: Vec::new() })
            }
            OrderStatus::Cancelled if charge_roll < 30 => Some(ImportedInvoice {
                status: InvoiceStatus::Void,
                issued_at: Some((created_at + Duration::hours(1)).min(now)),
                charges: Vec::new(),
            }),
            _ => None,
        };
        Ok(ImportedOrder {
            customer_id: self.customers[usize::try_from(draw(j, 14, self.customers.len() as u64)).unwrap_or(0)],
            status,
            currency: self.currency,
            tax_rate_bp: TAX_RATE_BP,
            created_at,
            picked_up_at: picked_up.then_some(starts_at),
            returned_at: returned.then_some(ends_at),
            notes: None,
            lines,
            invoice,
        })
    }
}

/// Seeds `orders` orders in batches of `batch`, `concurrency` batches at a time, and returns how many lines
/// they have.
///
/// # Errors
/// When there are no customers or products with capacity, the database already has orders, the products are
/// too few for the orders, or an import fails.
pub async fn seed(
    importer: OrderImporter,
    orders: u64,
    batch: u64,
    concurrency: u64,
    progress: ProgressBar,
) -> anyhow::Result<u64> {
    if importer.has_orders().await.context("counting orders")? {
        bail!("the database already has orders: the order seeder lays out each product's timeline from scratch");
    }
    let customers = importer.customer_ids(1_000_000).await.context("loading customers")?;
    if customers.is_empty() {
        bail!("seed some customers first (--users N)");
    }
    let all = importer.products().await.context("loading products")?;
    let Some(first) = all.iter().find(|p| p.capacity > 0) else {
        bail!("seed some products with units or stock first (--products N)");
    };
    let currency = first.terms.currency();
    // One currency per run, so that an order's lines share it.
    let products: Vec<ImportProduct> =
        all.into_iter().filter(|p| p.capacity > 0 && p.terms.currency() == currency).collect();

    let mut line_offsets = Vec::with_capacity(usize::try_from(orders + 1).unwrap_or(0));
    let mut total_lines = 0u64;
    for j in 0..orders {
        line_offsets.push(total_lines);
        total_lines += lines_of(j);
    }
    line_offsets.push(total_lines);
    let slots = total_lines.div_ceil(products.len() as u64).max(1);
    let now = Utc::now().duration_trunc(Duration::hours(1)).context("now")?;
    let start = now - Duration::days(PAST_DAYS);
    let slot_secs = (PAST_DAYS + FUTURE_DAYS) * 86_400 / to_i64(slots);
    let longest_buffer = products.iter().map(|p| i64::from(p.terms.buffer_minutes) * 60).max().unwrap_or(0);
    if slot_secs < longest_buffer + 3_600 {
        bail!(
            "{} products are too few for {orders} orders: each product's slot would be {slot_secs} s, shorter \
             than an hour plus its buffer",
            products.len()
        );
    }
    let plan = Arc::new(Plan {
        products,
        customers,
        currency,
        line_offsets,
        start,
        now,
        slot_secs,
        orders,
        batch,
        next_batch: AtomicU64::new(0),
    });
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (importer, plan, progress) = (importer.clone(), Arc::clone(&plan), progress.clone());
        workers.spawn(async move {
            while let Some(range) = plan.claim() {
                let (first, count) = (range.start, range.end - range.start);
                let batch = range.map(|j| plan.order(j)).collect::<anyhow::Result<Vec<_>>>()?;
                importer
                    .database()
                    .write(async |uow| importer.import(uow, batch).await)
                    .await
                    .with_context(|| format!("importing orders {first}.."))?;
                progress.inc(count);
            }
            anyhow::Ok(())
        });
    }
    while let Some(finished) = workers.join_next().await {
        finished.context("an order seed worker panicked")??;
    }
    Ok(total_lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_have_one_to_three_lines_two_on_average() {
        let total: u64 = (0..30_000).map(lines_of).sum();
        assert!((0..1000).all(|j| (1..=3).contains(&lines_of(j))));
        assert!((58_000..62_000).contains(&total), "{total}");
    }
}
