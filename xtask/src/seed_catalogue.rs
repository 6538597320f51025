//! `cargo xtask seed --products N`: a catalogue to browse and rent from.
//!
//! Creates `--categories` categories and `--locations` locations, then N products spread over them (rates
//! varying with the product's index), each with two tracked units and a bulk stock level at one location.
//! Products are created through the repository one by one (each with its units and stock in one unit of work),
//! by `--concurrency` workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use chrono::Utc;
use indicatif::ProgressBar;
use rental_domain::pricing::{ProductTerms, RateCard};
use rental_domain::{CategoryName, Currency, Money, UnitCondition};
use rental_repo::{
    CatalogueRepo, CatalogueStore, NewCategoryRecord, NewLocationRecord, NewProductRecord, NewUnitRecord, RepoError,
};
use tokio::task::JoinSet;
use uuid::Uuid;

/// What the product workers share.
struct Plan {
    run_id: String,
    categories: Vec<Uuid>,
    locations: Vec<Uuid>,
    products: u64,
    next: AtomicU64,
}

/// Seeds the catalogue and returns how many products were created.
///
/// # Errors
/// When a category, location or product cannot be created.
pub async fn seed(
    repo: CatalogueRepo,
    products: u64,
    categories: u64,
    locations: u64,
    concurrency: u64,
    progress: ProgressBar,
) -> anyhow::Result<u64> {
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut new_categories = Vec::new();
    for i in 0..categories.max(1) {
        let name = CategoryName::parse(&format!("Seed {run_id} Category {i}")).context("category name")?;
        new_categories.push(NewCategoryRecord { name, description: Some(format!("Seeded category {i}")) });
    }
    let new_locations = (0..locations.max(1))
        .map(|i| NewLocationRecord { name: format!("Seed {run_id} Depot {i}"), address: None })
        .collect::<Vec<_>>();
    let (category_ids, location_ids) = repo
        .database()
        .write(async |uow| {
            let (mut category_ids, mut location_ids) = (Vec::new(), Vec::new());
            for record in new_categories {
                category_ids.push(repo.create_category(uow, record, Utc::now()).await?.id);
            }
            for record in new_locations {
                location_ids.push(repo.create_location(uow, record, Utc::now()).await?.id);
            }
            Ok::<_, RepoError>((category_ids, location_ids))
        })
        .await
        .context("creating the categories and locations")?;
    let plan =
        Arc::new(Plan { run_id, categories: category_ids, locations: location_ids, products, next: AtomicU64::new(0) });
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        workers.spawn(create_products(repo.clone(), Arc::clone(&plan), progress.clone()));
    }
    while let Some(finished) = workers.join_next().await {
        finished.context("a seed worker panicked")??;
    }
    Ok(products)
}

/// One worker: claims product indexes until none are left.
async fn create_products(repo: CatalogueRepo, plan: Arc<Plan>, progress: ProgressBar) -> anyhow::Result<()> {
    let eur = Currency::parse("EUR").context("currency")?;
    loop {
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.products {
            return Ok(());
        }
        let index = usize::try_from(i).unwrap_or(usize::MAX);
        let day = 500 + i64::try_from(i % 200).unwrap_or(0) * 25;
        let rates =
            RateCard::new(Money::new(day, eur), Some(Money::new(day * 5, eur)), Some(Money::new(day * 15, eur)))
                .context("rates")?;
        let new = NewProductRecord {
            category_id: plan.categories[index % plan.categories.len()],
            sku: format!("SEED-{}-{i}", plan.run_id),
            name: format!("Seed Product {i}"),
            description: Some(format!("Seeded product number {i}")),
            terms: ProductTerms {
                rates,
                deposit_per_unit: Money::new(day * 10, eur),
                late_fee_per_day: Money::new(day / 2, eur),
                buffer_minutes: 60,
            },
            is_active: i % 20 != 19,
        };
        let location = plan.locations[index % plan.locations.len()];
        let units = (0..2)
            .map(|u| NewUnitRecord {
                serial_number: format!("SN-{}-{i}-{u}", plan.run_id),
                condition: UnitCondition::Good,
                location_id: location,
            })
            .collect();
        // A product, its units and its stock level land together or not at all.
        repo.database()
            .write(async |uow| {
                let at = Utc::now();
                let product = repo.create_product(uow, new, at).await?;
                repo.add_units(uow, product.id, units, at).await?;
                repo.set_stock_level(uow, product.id, location, 5, at).await
            })
            .await
            .with_context(|| format!("creating product {i}"))?;
        progress.inc(1);
    }
}
