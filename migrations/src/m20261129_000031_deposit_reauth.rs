//! Deposits of long rentals: the card is saved and the hold re-authorised off-session before it lapses.
//!
//! - `saves_card`: the first hold was asked with `setup_future_usage=off_session` (the rental's hold period is
//!   longer than a card hold lives), so the deposit job may place the next hold without the customer.
//! - `payment_method_id`: the saved card (Stripe's `pm_…`), learnt from the held intent.
//! - `reauth_seq`: the `hold_seq` of a re-authorisation asked of Stripe whose answer is not recorded yet (a
//!   crash between Stripe's answer and our commit is repaired by the next run, which sends the same key).
//! - `release_intent_id`, `release_hold_seq`: a hold replaced by a newer one (or placed for a deposit settled
//!   meanwhile) that must still be released at Stripe, with the key of its own hold.
//!
//! Nullable or with a constant default: neither backend rewrites the table. One column per statement: SQLite
//! alters one thing at a time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum StripeDeposits {
    Table,
    SavesCard,
    PaymentMethodId,
    ReauthSeq,
    ReleaseIntentId,
    ReleaseHoldSeq,
}

fn columns() -> [ColumnDef; 5] {
    [
        ColumnDef::new(StripeDeposits::SavesCard).boolean().not_null().default(false).to_owned(),
        ColumnDef::new(StripeDeposits::PaymentMethodId).text().null().to_owned(),
        ColumnDef::new(StripeDeposits::ReauthSeq).integer().null().to_owned(),
        ColumnDef::new(StripeDeposits::ReleaseIntentId).text().null().to_owned(),
        ColumnDef::new(StripeDeposits::ReleaseHoldSeq).integer().null().to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in columns() {
            manager.alter_table(Table::alter().table(StripeDeposits::Table).add_column(&mut column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            StripeDeposits::ReleaseHoldSeq,
            StripeDeposits::ReleaseIntentId,
            StripeDeposits::ReauthSeq,
            StripeDeposits::PaymentMethodId,
            StripeDeposits::SavesCard,
        ] {
            manager.alter_table(Table::alter().table(StripeDeposits::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
