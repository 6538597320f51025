//! `dashboard_counters`: the dashboard's totals (users, active users, superusers, orders per status) kept by the
//! repositories in the same transactions as the writes that change them, so the dashboard reads a few rows
//! instead of counting a million.
//!
//! A figure is the sum of its rows over `slot`: a writer adds its delta to the slot of the row it wrote (chosen
//! from the row's id), so concurrent writers rarely update the same counter row. The migration fills the
//! counters from the tables as they are (everything in slot 0); `DashboardCounters::repair` in rental-repo
//! recomputes them the same way.
//!
//! Held now (the units of reserved or picked-up orders whose line's period contains the instant) needs the
//! order's status on the line: `order_lines.order_holding`, true while the line's order is reserved or picked
//! up, kept by the order repository's transitions, with a partial index of those lines by start that carries
//! the end and the quantity. The statement then reads one range of that index instead of looking up the lines of
//! every running order (34 ms at 5,500 running orders, docs/PERFORMANCE.md). The other time-dependent figures
//! have their indexes already: `idx_users_created_at`, `idx_rental_orders_status_ends_at` (overdue, due today)
//! and `idx_invoices_revenue`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OrderLines {
    Table,
    OrderHolding,
}

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
        manager
            .alter_table(
                Table::alter()
                    .table(OrderLines::Table)
                    .add_column(ColumnDef::new(OrderLines::OrderHolding).boolean().not_null().default(false))
                    .to_owned(),
            )
            .await?;
        conn.execute_unprepared(
            "UPDATE order_lines SET order_holding = TRUE WHERE order_id IN \
             (SELECT id FROM rental_orders WHERE status IN ('reserved', 'picked_up'))",
        )
        .await?;
        let holding = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "CREATE INDEX idx_order_lines_holding ON order_lines (starts_at) INCLUDE (ends_at, quantity) \
                 WHERE order_holding"
            }
            _ => {
                "CREATE INDEX idx_order_lines_holding ON order_lines (starts_at, ends_at, quantity) WHERE order_holding"
            }
        };
        conn.execute_unprepared(holding).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX idx_order_lines_holding").await?;
        manager
            .alter_table(Table::alter().table(OrderLines::Table).drop_column(OrderLines::OrderHolding).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(DashboardCounters::Table).to_owned()).await
    }
}
