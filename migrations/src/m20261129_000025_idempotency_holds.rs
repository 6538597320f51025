//! Idempotency keys held across a call to another system (the payment endpoints call Stripe outside any
//! transaction): `idempotency_keys.held_until`, until when an answerless record belongs to the request that
//! claimed it (a duplicate meanwhile is refused; after it, a retry takes the claim over and resumes), and
//! `idempotency_keys.resource`, the id of our own record the claim made (the payment, the refund), from which the
//! idempotency key sent to Stripe is derived, so that a resumed request sends Stripe the same key.
//! Both are NULL on the records of requests that end in one unit of work.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    HeldUntil,
    Resource,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nullable without a default: neither backend rewrites the table. One column per statement: SQLite
        // alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(ColumnDef::new(IdempotencyKeys::HeldUntil).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyKeys::Table)
                    .add_column(ColumnDef::new(IdempotencyKeys::Resource).string_len(64).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(IdempotencyKeys::Table).drop_column(IdempotencyKeys::Resource).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(IdempotencyKeys::Table).drop_column(IdempotencyKeys::HeldUntil).to_owned(),
            )
            .await
    }
}
