//! `webhook_events`: each Stripe event once, by its id, written in the transaction of its effect.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QueryTrait};
use uuid::Uuid;

use super::PaymentRepo;
use crate::entity::webhook_event;
use crate::{RepoResult, UnitOfWork};

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewWebhookEvent {
    /// Stripe's id (`evt_…`).
    pub event_id: String,
    /// Its type.
    pub kind: String,
    /// Its API version.
    pub api_version: Option<String>,
    /// When Stripe created it (Unix seconds).
    pub stripe_created: i64,
    /// `applied`, `ignored`, `deferred` (waiting for its payment intent to be known) or `unmatched`.
    pub outcome: &'static str,
    /// The payment it changed.
    pub payment_id: Option<Uuid>,
    /// The payment intent it concerns.
    pub payment_intent_id: Option<String>,
    /// The effect (JSON) of a deferred event.
    pub effect: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEventRecord {
    /// Stripe's id.
    pub event_id: String,
    /// Its type.
    pub kind: String,
    /// What was done with it.
    pub outcome: String,
    /// The payment it changed.
    pub payment_id: Option<Uuid>,
    /// The payment intent it concerns.
    pub payment_intent_id: Option<String>,
    /// The effect (JSON) of a deferred event.
    pub effect: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

impl PaymentRepo {
    /// Records an event in `uow` unless it was recorded before: `false` for a duplicate (then nothing of it may
    /// be applied). On PostgreSQL a concurrent delivery of the same event waits here for the first one's
    /// transaction and then finds it recorded.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`].
    pub async fn record_event(&self, uow: &UnitOfWork, new: NewWebhookEvent, at: DateTime<Utc>) -> RepoResult<bool> {
        let applied = (new.outcome == "applied").then_some(at);
        let model = webhook_event::Model {
            event_id: new.event_id,
            kind: new.kind,
            api_version: new.api_version,
            stripe_created: new.stripe_created,
            received_at: at,
            outcome: new.outcome.to_owned(),
            payment_id: new.payment_id,
            payment_intent_id: new.payment_intent_id,
            effect: new.effect,
            applied_at: applied,
        };
        let insert = webhook_event::Entity::insert(webhook_event::ActiveModel::from(model))
            .on_conflict(OnConflict::column(webhook_event::Column::EventId).do_nothing().to_owned())
            .build(uow.conn().get_database_backend());
        Ok(uow.conn().execute_raw(insert).await?.rows_affected() == 1)
    }

    /// Whether an event was recorded.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`].
    pub async fn event(&self, event_id: &str) -> RepoResult<Option<WebhookEventRecord>> {
        Ok(webhook_event::Entity::find_by_id(event_id.to_owned()).one(self.db.connection()).await?.map(event_record))
    }

    /// The events deferred until payment intent `intent` is known, oldest first.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`].
    pub async fn deferred_events(&self, uow: &UnitOfWork, intent: &str) -> RepoResult<Vec<WebhookEventRecord>> {
        Ok(webhook_event::Entity::find()
            .filter(webhook_event::Column::PaymentIntentId.eq(intent))
            .filter(webhook_event::Column::Outcome.eq("deferred"))
            .order_by_asc(webhook_event::Column::StripeCreated)
            .all(uow.conn())
            .await?
            .into_iter()
            .map(event_record)
            .collect())
    }

    /// Marks a deferred event applied to payment `payment_id`.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`].
    pub async fn mark_applied(
        &self,
        uow: &UnitOfWork,
        event_id: &str,
        payment_id: Uuid,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        webhook_event::Entity::update_many()
            .col_expr(webhook_event::Column::Outcome, Expr::val("applied"))
            .col_expr(webhook_event::Column::PaymentId, Expr::val(payment_id))
            .col_expr(webhook_event::Column::AppliedAt, Expr::val(at))
            .filter(webhook_event::Column::EventId.eq(event_id))
            .exec(uow.conn())
            .await?;
        Ok(())
    }
}

fn event_record(m: webhook_event::Model) -> WebhookEventRecord {
    WebhookEventRecord {
        event_id: m.event_id,
        kind: m.kind,
        outcome: m.outcome,
        payment_id: m.payment_id,
        payment_intent_id: m.payment_intent_id,
        effect: m.effect,
        received_at: m.received_at,
    }
}
