//! `stripe_deposits`: the refundable deposit of a rental order, held on the customer's card as a Stripe payment
//! intent with manual capture, then captured (in full or in part, for damage or late fees) or released.
//!
//! A table of its own rather than a `kind` of `stripe_payments`: a payment's facts move its invoice's paid
//! amount and its kind and status are fixed by CHECK constraints (which SQLite can only change by rebuilding
//! the table), while a deposit is not invoiced and has statuses of its own. One row per order (`order_id` is
//! unique): placing again after a failure reuses the row with the next `hold_seq`, which numbers the Stripe
//! idempotency keys (`deposit:<id>:<hold_seq>:hold`).
//!
//! `place_from` is when a hold may be placed (card holds lapse after about 7 days, so a hold is placed close
//! to the rental's start; a deposit asked for earlier is `scheduled` until then). `authorised_at` is when
//! Stripe's hold was first seen; `attention` says why staff should look at a deposit (its hold nears expiry
//! while the rental runs).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum RentalOrders {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum StripeDeposits {
    Table,
    Id,
    OrderId,
    CustomerId,
    AmountMinor,
    Currency,
    Status,
    HoldSeq,
    PlaceFrom,
    PaymentIntentId,
    StripeCustomerId,
    AmountHeldMinor,
    AmountCapturedMinor,
    CaptureRequestedMinor,
    AuthorisedAt,
    Attention,
    FailureReason,
    CreatedAt,
    UpdatedAt,
}

/// The statuses of a deposit.
const STATUSES: [&str; 6] = ["scheduled", "pending", "failed", "requires_capture", "succeeded", "canceled"];

fn amount(column: StripeDeposits) -> ColumnDef {
    ColumnDef::new(column).big_integer().not_null().default(0).check(Expr::col(column).gte(0)).to_owned()
}

fn timestamp(column: StripeDeposits) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StripeDeposits::Table)
                    .col(ColumnDef::new(StripeDeposits::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(StripeDeposits::OrderId).uuid().not_null().unique_key())
                    .col(ColumnDef::new(StripeDeposits::CustomerId).uuid().not_null())
                    .col(
                        ColumnDef::new(StripeDeposits::AmountMinor)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(StripeDeposits::AmountMinor).gt(0)),
                    )
                    .col(ColumnDef::new(StripeDeposits::Currency).char_len(3).not_null())
                    .col(
                        ColumnDef::new(StripeDeposits::Status)
                            .text()
                            .not_null()
                            .check(Expr::col(StripeDeposits::Status).is_in(STATUSES)),
                    )
                    .col(
                        ColumnDef::new(StripeDeposits::HoldSeq)
                            .integer()
                            .not_null()
                            .default(1)
                            .check(Expr::col(StripeDeposits::HoldSeq).gte(1)),
                    )
                    .col(timestamp(StripeDeposits::PlaceFrom))
                    .col(ColumnDef::new(StripeDeposits::PaymentIntentId).text().null().unique_key())
                    .col(ColumnDef::new(StripeDeposits::StripeCustomerId).text().null())
                    .col(amount(StripeDeposits::AmountHeldMinor))
                    .col(amount(StripeDeposits::AmountCapturedMinor))
                    .col(ColumnDef::new(StripeDeposits::CaptureRequestedMinor).big_integer().null())
                    .col(ColumnDef::new(StripeDeposits::AuthorisedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(StripeDeposits::Attention).text().null())
                    .col(ColumnDef::new(StripeDeposits::FailureReason).text().null())
                    .col(timestamp(StripeDeposits::CreatedAt))
                    .col(timestamp(StripeDeposits::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stripe_deposits_order")
                            .from(StripeDeposits::Table, StripeDeposits::OrderId)
                            .to(RentalOrders::Table, RentalOrders::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stripe_deposits_customer")
                            .from(StripeDeposits::Table, StripeDeposits::CustomerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The deposit job's two sweeps: scheduled deposits by `place_from`, held ones by `authorised_at`.
        for (name, column) in [
            ("ix_stripe_deposits_place_from", StripeDeposits::PlaceFrom),
            ("ix_stripe_deposits_authorised", StripeDeposits::AuthorisedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(StripeDeposits::Table)
                        .col(StripeDeposits::Status)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(StripeDeposits::Table).to_owned()).await
    }
}
