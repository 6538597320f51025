//! Stripe payments: `stripe_payments` (one row per checkout session or payment intent we create for an
//! invoice, with Stripe's ids, the status by precedence and the monotonic amounts paid and refunded),
//! `stripe_refunds` (each refund we ask Stripe for, numbered per payment: the idempotency key's `n`),
//! `stripe_customers` (user -> Stripe customer) and `webhook_events` (each Stripe event once, by its id, with
//! what was done with it).
//!
//! Desk payments stay in `payments`; an online payment moves the invoice's `amount_paid_minor` by the change
//! of its net amount (paid less refunded) in the transaction that applies the change.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Invoices {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum StripePayments {
    Table,
    Id,
    InvoiceId,
    OrderId,
    CustomerId,
    Kind,
    AmountMinor,
    Currency,
    Status,
    CheckoutSessionId,
    PaymentIntentId,
    ChargeId,
    StripeCustomerId,
    AmountPaidMinor,
    AmountRefundedMinor,
    Disputed,
    FailureReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StripeRefunds {
    Table,
    Id,
    PaymentId,
    Seq,
    AmountMinor,
    Status,
    StripeRefundId,
    RequestedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StripeCustomers {
    Table,
    UserId,
    StripeCustomerId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookEvents {
    Table,
    EventId,
    Kind,
    ApiVersion,
    StripeCreated,
    ReceivedAt,
    Outcome,
    PaymentId,
    PaymentIntentId,
    Effect,
    AppliedAt,
}

fn amount(column: impl IntoIden + Copy + 'static) -> ColumnDef {
    ColumnDef::new(column).big_integer().not_null().default(0).check(Expr::col(column).gte(0)).to_owned()
}

fn timestamp(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().not_null().to_owned()
}

fn one_of(column: impl IntoIden + Copy + 'static, values: &[&str]) -> ColumnDef {
    ColumnDef::new(column)
        .text()
        .not_null()
        .check(Expr::col(column).is_in(values.iter().map(|v| (*v).to_owned())))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StripePayments::Table)
                    .col(ColumnDef::new(StripePayments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(StripePayments::InvoiceId).uuid().not_null())
                    .col(ColumnDef::new(StripePayments::OrderId).uuid().not_null())
                    .col(ColumnDef::new(StripePayments::CustomerId).uuid().not_null())
                    .col(one_of(StripePayments::Kind, &["checkout", "intent"]))
                    .col(
                        ColumnDef::new(StripePayments::AmountMinor)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(StripePayments::AmountMinor).gt(0)),
                    )
                    .col(ColumnDef::new(StripePayments::Currency).char_len(3).not_null())
                    .col(one_of(StripePayments::Status, &["pending", "failed", "canceled", "succeeded"]))
                    .col(ColumnDef::new(StripePayments::CheckoutSessionId).text().null().unique_key())
                    .col(ColumnDef::new(StripePayments::PaymentIntentId).text().null().unique_key())
                    .col(ColumnDef::new(StripePayments::ChargeId).text().null())
                    .col(ColumnDef::new(StripePayments::StripeCustomerId).text().null())
                    .col(amount(StripePayments::AmountPaidMinor))
                    .col(amount(StripePayments::AmountRefundedMinor))
                    .col(ColumnDef::new(StripePayments::Disputed).boolean().not_null().default(false))
                    .col(ColumnDef::new(StripePayments::FailureReason).text().null())
                    .col(timestamp(StripePayments::CreatedAt))
                    .col(timestamp(StripePayments::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stripe_payments_invoice")
                            .from(StripePayments::Table, StripePayments::InvoiceId)
                            .to(Invoices::Table, Invoices::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stripe_payments_customer")
                            .from(StripePayments::Table, StripePayments::CustomerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("ix_stripe_payments_customer", [StripePayments::CustomerId, StripePayments::CreatedAt]),
            ("ix_stripe_payments_created", [StripePayments::CreatedAt, StripePayments::Id]),
            ("ix_stripe_payments_status", [StripePayments::Status, StripePayments::CreatedAt]),
        ] {
            let mut index = Index::create().name(name).table(StripePayments::Table).to_owned();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_stripe_payments_invoice")
                    .table(StripePayments::Table)
                    .col(StripePayments::InvoiceId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StripeRefunds::Table)
                    .col(ColumnDef::new(StripeRefunds::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(StripeRefunds::PaymentId).uuid().not_null())
                    .col(ColumnDef::new(StripeRefunds::Seq).integer().not_null())
                    .col(
                        ColumnDef::new(StripeRefunds::AmountMinor)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(StripeRefunds::AmountMinor).gt(0)),
                    )
                    .col(one_of(StripeRefunds::Status, &["requested", "succeeded", "failed"]))
                    .col(ColumnDef::new(StripeRefunds::StripeRefundId).text().null())
                    .col(ColumnDef::new(StripeRefunds::RequestedBy).uuid().null())
                    .col(timestamp(StripeRefunds::CreatedAt))
                    .col(timestamp(StripeRefunds::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stripe_refunds_payment")
                            .from(StripeRefunds::Table, StripeRefunds::PaymentId)
                            .to(StripePayments::Table, StripePayments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_stripe_refunds_payment_seq")
                    .table(StripeRefunds::Table)
                    .col(StripeRefunds::PaymentId)
                    .col(StripeRefunds::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StripeCustomers::Table)
                    .col(ColumnDef::new(StripeCustomers::UserId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(StripeCustomers::StripeCustomerId).text().not_null().unique_key())
                    .col(timestamp(StripeCustomers::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stripe_customers_user")
                            .from(StripeCustomers::Table, StripeCustomers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(ColumnDef::new(WebhookEvents::EventId).text().not_null().primary_key())
                    .col(ColumnDef::new(WebhookEvents::Kind).text().not_null())
                    .col(ColumnDef::new(WebhookEvents::ApiVersion).text().null())
                    .col(ColumnDef::new(WebhookEvents::StripeCreated).big_integer().not_null())
                    .col(timestamp(WebhookEvents::ReceivedAt))
                    .col(one_of(WebhookEvents::Outcome, &["applied", "ignored", "deferred", "unmatched"]))
                    .col(ColumnDef::new(WebhookEvents::PaymentId).uuid().null())
                    .col(ColumnDef::new(WebhookEvents::PaymentIntentId).text().null())
                    // The event's effect (JSON) while it waits for its payment intent to be known.
                    .col(ColumnDef::new(WebhookEvents::Effect).text().null())
                    .col(ColumnDef::new(WebhookEvents::AppliedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_events_intent")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::PaymentIntentId)
                    .col(WebhookEvents::Outcome)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookEvents::Table.into_iden(),
            StripeCustomers::Table.into_iden(),
            StripeRefunds::Table.into_iden(),
            StripePayments::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
