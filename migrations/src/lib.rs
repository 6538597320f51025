//! The schema of the rental backend: one list of migrations for SQLite and PostgreSQL.
//!
//! Migrations are written with sea-query's portable builders; anything only PostgreSQL can do sits behind a
//! backend check inside the migration. This crate knows nothing of the other crates of the workspace.

use sea_orm_migration::prelude::*;

mod m20261122_000001_users;
mod m20261122_000002_catalogue;
mod m20261122_000003_rentals;
mod m20261122_000004_analytics;
mod m20261122_000005_usage_marks;
mod m20261128_000006_jobs;
mod m20261128_000007_job_request_id;
mod m20261129_000008_stripe_payments;
mod m20261129_000020_idempotency;
mod m20261129_000021_deposits;
mod m20261129_000025_idempotency_holds;
mod m20261129_000030_dashboard_counters;
mod m20261129_000031_deposit_reauth;

/// Every migration of the project, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_users::Migration),
            Box::new(m20261122_000002_catalogue::Migration),
            Box::new(m20261122_000003_rentals::Migration),
            Box::new(m20261122_000004_analytics::Migration),
            Box::new(m20261122_000005_usage_marks::Migration),
            Box::new(m20261128_000006_jobs::Migration),
            Box::new(m20261128_000007_job_request_id::Migration),
            Box::new(m20261129_000008_stripe_payments::Migration),
            Box::new(m20261129_000020_idempotency::Migration),
            Box::new(m20261129_000021_deposits::Migration),
            Box::new(m20261129_000025_idempotency_holds::Migration),
            Box::new(m20261129_000030_dashboard_counters::Migration),
            Box::new(m20261129_000031_deposit_reauth::Migration),
        ]
    }
}

pub use sea_orm_migration::{MigrationTrait as Migration, MigratorTrait};
