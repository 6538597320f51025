//! The request a job was enqueued by: `jobs.request_id`, the `X-Request-Id` of the HTTP request (or of the job
//! run) during which the job was enqueued, so that a job's log lines and the e-mail it sends can be traced back
//! to that request. Jobs enqueued by the scheduler have none.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    RequestId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nullable without a default: existing rows get NULL, which both backends add without rewriting the table.
        manager
            .alter_table(
                Table::alter().table(Jobs::Table).add_column(ColumnDef::new(Jobs::RequestId).text().null()).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Jobs::Table).drop_column(Jobs::RequestId).to_owned()).await
    }
}
