//! Deposits held on the customer's card (`stripe_deposits`): one row per rental order, read and written in the
//! caller's [`UnitOfWork`] under the order's row lock. What a deposit's fields become is decided by the
//! service; this module stores them as given.

use chrono::{DateTime, Utc};
use rental_domain::{Money, OrderStatus};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::PaymentRepo;
use crate::entity::{rental_order, stripe_deposit};
use crate::{Backend, RepoError, RepoResult, UnitOfWork, stored};

/// Statuses of a deposit: `scheduled` (to be placed at `place_from`), `pending` (asked of Stripe, not held
/// yet), `failed`, `requires_capture` (held), `succeeded` (captured, in full or in part), `canceled` (released).
pub const DEPOSIT_STATUSES: [&str; 6] = ["scheduled", "pending", "failed", "requires_capture", "succeeded", "canceled"];

/// What a deposit needs of its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositOrder {
    /// The order.
    pub id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// Where it stands.
    pub status: OrderStatus,
    /// The sum of its lines' deposits, in the order's currency.
    pub deposit: Money,
    /// Its earliest start.
    pub starts_at: DateTime<Utc>,
    /// Its latest end.
    pub ends_at: DateTime<Utc>,
}

/// A stored deposit. The service changes its fields and hands it back to [`PaymentRepo::save_deposit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositRecord {
    /// Our id (Stripe's objects carry `deposit:<id>:<hold_seq>` as their reference).
    pub id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// Its customer.
    pub customer_id: Uuid,
    /// The amount to hold.
    pub amount: Money,
    /// One of [`DEPOSIT_STATUSES`].
    pub status: String,
    /// The number of the current hold (1, 2, … after failures): the `n` of its Stripe idempotency keys.
    pub hold_seq: i32,
    /// When a hold may be placed.
    pub place_from: DateTime<Utc>,
    /// The current hold's payment intent.
    pub payment_intent_id: Option<String>,
    /// The customer's Stripe customer.
    pub stripe_customer_id: Option<String>,
    /// Held on the card, minor units.
    pub amount_held_minor: i64,
    /// Captured, minor units.
    pub amount_captured_minor: i64,
    /// The amount of a capture asked of Stripe (its key is per hold, so a retry must ask for the same).
    pub capture_requested_minor: Option<i64>,
    /// When the hold was first seen in place.
    pub authorised_at: Option<DateTime<Utc>>,
    /// Why staff should look at it.
    pub attention: Option<String>,
    /// Stripe's reason of the last failure.
    pub failure_reason: Option<String>,
    /// The first hold saved the card to the customer (`setup_future_usage=off_session`): the deposit job may
    /// place the next hold off-session before this one lapses.
    pub saves_card: bool,
    /// The saved card (`pm_…`), once known.
    pub payment_method_id: Option<String>,
    /// The `hold_seq` of a re-authorisation asked of Stripe whose answer is not recorded yet.
    pub reauth_seq: Option<i32>,
    /// A replaced hold still to release at Stripe (its intent and its own `hold_seq`, for its key).
    pub release: Option<(String, i32)>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl DepositRecord {
    /// A new deposit of `amount` for `order_id` of `customer_id`, first hold, nothing held or captured yet: `status`
    /// is `scheduled` (placed from `place_from`) or `pending` (to be placed now).
    #[must_use]
    pub fn new(
        order_id: Uuid,
        customer_id: Uuid,
        amount: Money,
        status: &str,
        place_from: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            order_id,
            customer_id,
            amount,
            status: status.to_owned(),
            hold_seq: 1,
            place_from,
            payment_intent_id: None,
            stripe_customer_id: None,
            amount_held_minor: 0,
            amount_captured_minor: 0,
            capture_requested_minor: None,
            authorised_at: None,
            attention: None,
            failure_reason: None,
            saves_card: false,
            payment_method_id: None,
            reauth_seq: None,
            release: None,
            created_at: at,
            updated_at: at,
        }
    }
}

/// How a deposit is looked up.
#[derive(Debug, Clone, Copy)]
pub enum DepositKey<'a> {
    /// By our id.
    Id(Uuid),
    /// By its order.
    Order(Uuid),
    /// By its current payment intent.
    Intent(&'a str),
}

impl PaymentRepo {
    /// The order a deposit is for, read in `uow` and locked for update (PostgreSQL; SQLite's unit holds the
    /// write lock), so that two requests for one order's deposit take turns.
    ///
    /// # Errors
    /// [`RepoError::Database`]; a corrupt row.
    pub async fn lock_deposit_order(&self, uow: &UnitOfWork, order_id: Uuid) -> RepoResult<Option<DepositOrder>> {
        let mut select = rental_order::Entity::find_by_id(order_id);
        if uow.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        let Some(m) = select.one(uow.conn()).await? else { return Ok(None) };
        let currency = stored::currency("rental_orders", &m.currency)?;
        Ok(Some(DepositOrder {
            id: m.id,
            customer_id: m.customer_id,
            status: m.status.parse().map_err(RepoError::Domain)?,
            deposit: Money::new(m.deposit_minor, currency),
            starts_at: m.starts_at,
            ends_at: m.ends_at,
        }))
    }

    /// A deposit read in `uow` and locked for update.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn lock_deposit(&self, uow: &UnitOfWork, key: DepositKey<'_>) -> RepoResult<Option<DepositRecord>> {
        let select = stripe_deposit::Entity::find();
        let mut select = match key {
            DepositKey::Id(id) => select.filter(stripe_deposit::Column::Id.eq(id)),
            DepositKey::Order(order) => select.filter(stripe_deposit::Column::OrderId.eq(order)),
            DepositKey::Intent(intent) => select.filter(stripe_deposit::Column::PaymentIntentId.eq(intent)),
        };
        if uow.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        select.one(uow.conn()).await?.map(deposit_record).transpose()
    }

    /// The deposit of an order.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn deposit_of_order(&self, order_id: Uuid) -> RepoResult<Option<DepositRecord>> {
        stripe_deposit::Entity::find()
            .filter(stripe_deposit::Column::OrderId.eq(order_id))
            .one(self.database().connection())
            .await?
            .map(deposit_record)
            .transpose()
    }

    /// A deposit by its id.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn deposit(&self, id: Uuid) -> RepoResult<Option<DepositRecord>> {
        stripe_deposit::Entity::find_by_id(id).one(self.database().connection()).await?.map(deposit_record).transpose()
    }

    /// Writes a new deposit in `uow`.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] when the order has one already; [`RepoError::Database`].
    pub async fn insert_deposit(&self, uow: &UnitOfWork, deposit: &DepositRecord) -> RepoResult<()> {
        stripe_deposit::Entity::insert(stripe_deposit::ActiveModel::from(deposit_model(deposit)))
            .exec_without_returning(uow.conn())
            .await?;
        Ok(())
    }

    /// Stores every field of `deposit` in `uow`.
    ///
    /// # Errors
    /// [`RepoError::Conflict`] when another deposit has its payment intent; [`RepoError::Database`].
    pub async fn save_deposit(&self, uow: &UnitOfWork, deposit: &DepositRecord) -> RepoResult<()> {
        let mut model = deposit_model(deposit).into_active_model().reset_all();
        model.id = sea_orm::ActiveValue::Unchanged(deposit.id);
        model.update(uow.conn()).await?;
        Ok(())
    }

    /// Deposits in `status` whose `place_from` (`scheduled`) or `authorised_at` (`requires_capture`, without
    /// `attention` yet) is at or before `until`, oldest first, at most `limit`: the deposit job's work.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn deposits_due(&self, status: &str, until: DateTime<Utc>, limit: u64) -> RepoResult<Vec<DepositRecord>> {
        let select = stripe_deposit::Entity::find().filter(stripe_deposit::Column::Status.eq(status));
        let select = if status == "scheduled" {
            select.filter(stripe_deposit::Column::PlaceFrom.lte(until)).order_by_asc(stripe_deposit::Column::PlaceFrom)
        } else {
            select
                .filter(stripe_deposit::Column::AuthorisedAt.lte(until))
                .filter(stripe_deposit::Column::Attention.is_null())
                .order_by_asc(stripe_deposit::Column::AuthorisedAt)
        };
        select.limit(limit).all(self.database().connection()).await?.into_iter().map(deposit_record).collect()
    }
}

impl PaymentRepo {
    /// Deposits changed since `since` whose outcome at Stripe may be unknown to us, oldest change first, at
    /// most `limit`: `pending` ones (a hold asked of Stripe; its answer or the customer's confirmation not
    /// recorded) and held ones with a capture asked of Stripe (`capture_requested_minor`) but not recorded.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn deposits_to_reconcile(&self, since: DateTime<Utc>, limit: u64) -> RepoResult<Vec<DepositRecord>> {
        let capture_asked = sea_orm::Condition::all()
            .add(stripe_deposit::Column::Status.eq("requires_capture"))
            .add(stripe_deposit::Column::CaptureRequestedMinor.is_not_null());
        let unknown = sea_orm::Condition::all()
            .add(stripe_deposit::Column::UpdatedAt.gte(since))
            .add(sea_orm::Condition::any().add(stripe_deposit::Column::Status.eq("pending")).add(capture_asked));
        self.deposits_by_change(unknown, limit).await
    }

    /// Deposits with work left over from an earlier run of the deposit job: a re-authorisation asked of Stripe
    /// without its answer recorded (`reauth_seq`), or a replaced hold still to release (`release_intent_id`);
    /// oldest change first, at most `limit`.
    ///
    /// # Errors
    /// [`RepoError::Database`].
    pub async fn deposits_unfinished(&self, limit: u64) -> RepoResult<Vec<DepositRecord>> {
        let unfinished = sea_orm::Condition::any()
            .add(stripe_deposit::Column::ReauthSeq.is_not_null())
            .add(stripe_deposit::Column::ReleaseIntentId.is_not_null());
        self.deposits_by_change(unfinished, limit).await
    }

    /// Deposits meeting `condition`, oldest change first, at most `limit`.
    async fn deposits_by_change(&self, condition: sea_orm::Condition, limit: u64) -> RepoResult<Vec<DepositRecord>> {
        stripe_deposit::Entity::find()
            .filter(condition)
            .order_by_asc(stripe_deposit::Column::UpdatedAt)
            .limit(limit)
            .all(self.database().connection())
            .await?
            .into_iter()
            .map(deposit_record)
            .collect()
    }
}

fn deposit_model(d: &DepositRecord) -> stripe_deposit::Model {
    stripe_deposit::Model {
        id: d.id,
        order_id: d.order_id,
        customer_id: d.customer_id,
        amount_minor: d.amount.amount_minor,
        currency: d.amount.currency.as_str().to_owned(),
        status: d.status.clone(),
        hold_seq: d.hold_seq,
        place_from: d.place_from,
        payment_intent_id: d.payment_intent_id.clone(),
        stripe_customer_id: d.stripe_customer_id.clone(),
        amount_held_minor: d.amount_held_minor,
        amount_captured_minor: d.amount_captured_minor,
        capture_requested_minor: d.capture_requested_minor,
        authorised_at: d.authorised_at,
        attention: d.attention.clone(),
        failure_reason: d.failure_reason.clone(),
        saves_card: d.saves_card,
        payment_method_id: d.payment_method_id.clone(),
        reauth_seq: d.reauth_seq,
        release_intent_id: d.release.as_ref().map(|(intent, _)| intent.clone()),
        release_hold_seq: d.release.as_ref().map(|(_, seq)| *seq),
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

fn deposit_record(m: stripe_deposit::Model) -> RepoResult<DepositRecord> {
    let currency = stored::currency("stripe_deposits", &m.currency)?;
    Ok(DepositRecord {
        id: m.id,
        order_id: m.order_id,
        customer_id: m.customer_id,
        amount: Money::new(m.amount_minor, currency),
        status: m.status,
        hold_seq: m.hold_seq,
        place_from: m.place_from,
        payment_intent_id: m.payment_intent_id,
        stripe_customer_id: m.stripe_customer_id,
        amount_held_minor: m.amount_held_minor,
        amount_captured_minor: m.amount_captured_minor,
        capture_requested_minor: m.capture_requested_minor,
        authorised_at: m.authorised_at,
        attention: m.attention,
        failure_reason: m.failure_reason,
        saves_card: m.saves_card,
        payment_method_id: m.payment_method_id,
        reauth_seq: m.reauth_seq,
        release: m.release_intent_id.zip(m.release_hold_seq),
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}
