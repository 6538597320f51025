//! Indexes for the analytics reports and the CSV exports.
//!
//! Revenue reads open and paid invoices by day of issue: a partial index on the day that also carries the
//! currency and the total answers it from the index alone (PostgreSQL's INCLUDE; SQLite keys the extra
//! columns). The invoice export seeks by (issued_at, id). Utilization and the windowed ranking find the lines
//! overlapping a window from either end of the window: by start or by end, whichever the planner finds more
//! selective.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [&str; 4] =
    ["idx_invoices_revenue", "idx_invoices_issued_at", "idx_order_lines_starts_at", "idx_order_lines_ends_at"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let revenue = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "CREATE INDEX idx_invoices_revenue ON invoices (issued_on, currency) INCLUDE (total_minor) \
                 WHERE status IN ('open', 'paid')"
            }
            _ => {
                "CREATE INDEX idx_invoices_revenue ON invoices (issued_on, currency, total_minor) \
                 WHERE status IN ('open', 'paid')"
            }
        };
        conn.execute_unprepared(revenue).await?;
        conn.execute_unprepared("CREATE INDEX idx_invoices_issued_at ON invoices (issued_at, id)").await?;
        // On PostgreSQL the window indexes carry what the reports read, so they are answered from the index
        // alone (after VACUUM has set the visibility map).
        let covering = match manager.get_database_backend() {
            DbBackend::Postgres => " INCLUDE (product_id, order_id, quantity, line_total_minor, currency)",
            _ => "",
        };
        for (name, key, other) in
            [("idx_order_lines_starts_at", "starts_at", "ends_at"), ("idx_order_lines_ends_at", "ends_at", "starts_at")]
        {
            let include = if covering.is_empty() {
                String::new()
            } else {
                covering.replacen("INCLUDE (", &format!("INCLUDE ({other}, "), 1)
            };
            conn.execute_unprepared(&format!("CREATE INDEX {name} ON order_lines ({key}){include}")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for name in INDEXES {
            conn.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }
}
