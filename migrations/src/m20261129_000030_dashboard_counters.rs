//! `dashboard_counters`: the dashboard's totals (users, active users, superusers, orders per status) kept by the
//! repositories in the same transactions as the writes that change them, so the dashboard reads a few rows
//! instead of counting a million.
//!
//! A figure is the sum of its rows over `slot`: a writer adds its delta to the slot of the row it wrote (chosen
//! from the row's id), so concurrent writers rarely update the same counter row. The migration fills the
//! counters from the tables as they are (everything in slot 0); `DashboardCounters::repair` in rental-repo
//! recomputes them the same way.
//!
//! Two indexes serve the dashboard's time-dependent figures: the orders that hold stock now (reserved or picked
//! up, partial on those statuses, keyed by the period's start and carrying its end), and the users' creation
//! time exists already (`idx_users_created_at`), as do overdue and due today (`idx_rental_orders_status_ends_at`)
//! and revenue (`idx_invoices_revenue`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DashboardCounters {
    Table,
    Name,
    Slot,
    Value,
}

/// The counters computed from the tables, as `dashboard_counters` rows in slot 0. The same statements as
/// `DashboardCounters::repair` in rental-repo (this crate knows nothing of the others).
const FILL: [&str; 2] = [
    "INSERT INTO dashboard_counters (name, slot, value) \
     SELECT 'users_total', 0, COUNT(*) FROM users UNION ALL \
     SELECT 'users_active', 0, COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0) FROM users UNION ALL \
     SELECT 'users_superuser', 0, COALESCE(SUM(CASE WHEN is_superuser THEN 1 ELSE 0 END), 0) FROM users",
    "INSERT INTO dashboard_counters (name, slot, value) \
     SELECT 'orders_' || status, 0, COUNT(*) FROM rental_orders GROUP BY status",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DashboardCounters::Table)
                    .col(ColumnDef::new(DashboardCounters::Name).string_len(32).not_null())
                    .col(ColumnDef::new(DashboardCounters::Slot).small_integer().not_null())
                    .col(ColumnDef::new(DashboardCounters::Value).big_integer().not_null().default(0))
                    .primary_key(Index::create().col(DashboardCounters::Name).col(DashboardCounters::Slot))
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        for statement in FILL {
            conn.execute_unprepared(statement).await?;
        }
        // Held now: the orders holding stock whose period has started; the end is in the key too, so the
        // test of the end is made in the index (and, on PostgreSQL, the join reads the order id from it).
        let holding = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "CREATE INDEX idx_rental_orders_holding ON rental_orders (starts_at, ends_at) INCLUDE (id) \
                 WHERE status IN ('reserved', 'picked_up')"
            }
            _ => {
                "CREATE INDEX idx_rental_orders_holding ON rental_orders (starts_at, ends_at) \
                 WHERE status IN ('reserved', 'picked_up')"
            }
        };
        conn.execute_unprepared(holding).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX idx_rental_orders_holding").await?;
        manager.drop_table(Table::drop().table(DashboardCounters::Table).to_owned()).await
    }
}
