//! The contract of [`PaymentStore`]: Stripe payments, their refunds, the users' Stripe customers, webhook events
//! and deposits. The fixtures (a customer, reserved orders with their open invoices) are written with the
//! crate's user, catalogue, order and billing repositories; everything checked goes through the store.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rental_domain::{Email, FullName, InvoiceStatus, Money, OrderStatus};
use uuid::Uuid;

use super::{eur, fixtures, now, ok, order, place};
use crate::{
    BillingRepo, Database, DepositKey, DepositRecord, InvoiceRecord, NewStripePayment, NewUserRecord, NewWebhookEvent,
    OrderRepo, PaymentFacts, PaymentKey, PaymentStore, RefundRecord, RepoError, RepoResult, StripePaymentRecord,
    UserRepo, UserStore, payment_list_spec,
};

/// A customer and `count` reserved orders of one item each, from `start` for two days, each with its open
/// invoice of 20.00 EUR. Returns (customer, orders, start).
async fn reserved_orders(db: &Database, count: usize) -> (Uuid, Vec<Uuid>, DateTime<Utc>) {
    let (customer, product) = fixtures(db, count).await;
    let (orders, billing) = (OrderRepo::new(db.clone()), BillingRepo::new(db.clone()));
    let start = now() + Duration::days(3);
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let new = order(customer, product, OrderStatus::Reserved, 1, start);
        ids.push(ok(place(db, &orders, &billing, &new).await, "a reservation"));
    }
    (customer, ids, start)
}

/// The invoice of `order`, read through the store.
async fn invoice_of<P: PaymentStore>(payments: &P, order: Uuid) -> InvoiceRecord {
    ok(payments.invoice_of_order(order).await, "the invoice of an order").unwrap_or_else(|| panic!("no invoice"))
}

/// A payment of all of `invoice`.
fn asked(invoice: &InvoiceRecord, kind: &'static str) -> NewStripePayment {
    NewStripePayment {
        invoice_id: invoice.id,
        order_id: invoice.order_id,
        customer_id: invoice.customer_id,
        kind,
        amount: invoice.total,
        stripe_customer_id: None,
    }
}

async fn create<P: PaymentStore>(
    db: &Database,
    payments: &P,
    new: NewStripePayment,
) -> RepoResult<StripePaymentRecord> {
    db.write(async |uow| payments.create(uow, new, now()).await).await
}

async fn attach<P: PaymentStore>(
    db: &Database,
    payments: &P,
    id: Uuid,
    session: Option<&str>,
    intent: Option<&str>,
) -> RepoResult<()> {
    db.write(async |uow| payments.attach(uow, id, session, intent, now()).await).await
}

async fn stored<P: PaymentStore>(payments: &P, id: Uuid) -> StripePaymentRecord {
    ok(payments.get(id).await, "get").unwrap_or_else(|| panic!("payment {id} is not stored"))
}

/// Stores `facts` as payment `id`'s, read under its lock, as the webhook does.
async fn store_facts<P: PaymentStore>(db: &Database, payments: &P, id: Uuid, facts: PaymentFacts) {
    let written = db
        .write(async |uow| {
            let current = payments.lock(uow, PaymentKey::Id(id)).await?.ok_or(RepoError::NotFound)?;
            payments.store_facts(uow, &current, &facts, now()).await
        })
        .await;
    ok(written, "storing a payment's facts");
}

/// The ids of the payments listed for `params`.
async fn listed<P: PaymentStore>(payments: &P, params: &[(&str, String)]) -> Vec<Uuid> {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let query = ok(payment_list_spec().parse(&params), "a payment query");
    ok(payments.list(&query).await, "the payment list").items().iter().map(|p| p.id).collect()
}

fn webhook_event(id: &str, outcome: &'static str, intent: Option<&str>, stripe_created: i64) -> NewWebhookEvent {
    NewWebhookEvent {
        event_id: id.to_owned(),
        kind: "payment_intent.succeeded".into(),
        api_version: Some("2024-06-20".into()),
        stripe_created,
        outcome,
        payment_id: None,
        payment_intent_id: intent.map(str::to_owned),
        effect: (outcome == "deferred").then(|| format!("{{\"event\":\"{id}\"}}")),
    }
}

async fn record<P: PaymentStore>(db: &Database, payments: &P, new: NewWebhookEvent) -> bool {
    ok(db.write(async |uow| payments.record_event(uow, new, now()).await).await, "recording an event")
}

/// The ids of the events deferred until `intent` is known, read in a unit of their own.
async fn deferred<P: PaymentStore>(db: &Database, payments: &P, intent: &str) -> Vec<String> {
    let events = db.write(async |uow| payments.deferred_events(uow, intent).await).await;
    ok(events, "deferred events").into_iter().map(|e| e.event_id).collect()
}

async fn add_refund<P: PaymentStore>(
    db: &Database,
    payments: &P,
    payment: Uuid,
    amount: i64,
    at: DateTime<Utc>,
) -> RepoResult<RefundRecord> {
    db.write(async |uow| payments.add_refund(uow, payment, amount, None, at).await).await
}

/// The totals of payment `id`'s refunds reserved and succeeded.
async fn refund_totals<P: PaymentStore>(db: &Database, payments: &P, id: Uuid) -> (i64, i64) {
    let totals = db
        .write(async |uow| {
            Ok::<_, RepoError>((payments.refunds_reserved(uow, id).await?, payments.refunds_succeeded(uow, id).await?))
        })
        .await;
    ok(totals, "refund totals")
}

/// A payment is written `pending` with nothing paid, read back as written by its id, and found by its payment
/// intent and its checkout session once Stripe's ids are noted (noting one keeps the other); the list filters
/// by invoice, customer and status; a pending payment with an intent awaits settlement, one without does not.
pub async fn payments_are_recorded_and_found_by_their_keys<P: PaymentStore>(db: &Database, payments: &P) {
    let (customer, orders, _) = reserved_orders(db, 1).await;
    let invoice = invoice_of(payments, orders[0]).await;
    assert_eq!((invoice.order_id, invoice.customer_id, invoice.status), (orders[0], customer, InvoiceStatus::Open));
    assert_eq!(ok(payments.invoice_of_order(Uuid::now_v7()).await, "no invoice"), None);

    let new = NewStripePayment { stripe_customer_id: Some("cus_1".into()), ..asked(&invoice, "checkout") };
    let created = ok(create(db, payments, new).await, "a payment");
    let pending = PaymentFacts { status: "pending".into(), ..PaymentFacts::default() };
    assert_eq!((created.status.as_str(), &created.facts), ("pending", &pending), "a new payment is pending");
    assert_eq!((created.amount, created.kind.as_str()), (invoice.total, "checkout"));
    assert_eq!((created.invoice_id, created.order_id, created.customer_id), (invoice.id, orders[0], customer));
    assert_eq!(created.stripe_customer_id.as_deref(), Some("cus_1"));
    assert_eq!((created.checkout_session_id.as_deref(), created.payment_intent_id.as_deref()), (None, None));
    assert_eq!(stored(payments, created.id).await, created, "what create returns is what is stored");
    assert_eq!(ok(payments.get(Uuid::now_v7()).await, "get"), None);

    ok(attach(db, payments, created.id, Some("cs_1"), None).await, "noting the session");
    ok(attach(db, payments, created.id, None, Some("pi_1")).await, "noting the intent");
    let attached = stored(payments, created.id).await;
    assert_eq!(attached.checkout_session_id.as_deref(), Some("cs_1"), "noting the intent kept the session");
    assert_eq!(attached.payment_intent_id.as_deref(), Some("pi_1"));
    let found = db
        .write(async |uow| {
            Ok::<_, RepoError>([
                payments.lock(uow, PaymentKey::Id(created.id)).await?.map(|p| p.id),
                payments.lock(uow, PaymentKey::Intent("pi_1")).await?.map(|p| p.id),
                payments.lock(uow, PaymentKey::Session("cs_1")).await?.map(|p| p.id),
                payments.lock(uow, PaymentKey::Intent("pi_unknown")).await?.map(|p| p.id),
            ])
        })
        .await;
    let id = Some(created.id);
    assert_eq!(ok(found, "looking up by key"), [id, id, id, None], "found by id, intent and session");

    let other = ok(create(db, payments, asked(&invoice, "intent")).await, "a second payment");
    let mut both = vec![created.id, other.id];
    both.sort();
    let mut by_invoice = listed(payments, &[("invoice", invoice.id.to_string())]).await;
    by_invoice.sort();
    assert_eq!(by_invoice, both, "the invoice's payments");
    assert_eq!(listed(payments, &[("customer", customer.to_string())]).await.len(), 2);
    assert!(listed(payments, &[("customer", Uuid::now_v7().to_string())]).await.is_empty());
    assert_eq!(listed(payments, &[("status", "pending".into())]).await.len(), 2);
    assert!(listed(payments, &[("status", "succeeded".into())]).await.is_empty());
    let unsettled = ok(payments.unsettled(created.created_at - Duration::minutes(1), 10).await, "unsettled");
    let unsettled: Vec<Uuid> = unsettled.iter().map(|p| p.id).collect();
    assert_eq!(unsettled, [created.id], "only a payment with an intent awaits Stripe's settlement");
}

/// One row per Stripe object, so one object at Stripe per row whatever the retries: noting a payment's ids
/// again is harmless, but an intent or a session noted on one payment is refused to another (which keeps
/// none); a user is linked to one Stripe customer, the first one, and a customer to one user.
pub async fn a_stripe_object_belongs_to_one_row<P: PaymentStore>(db: &Database, payments: &P) {
    let (customer, orders, _) = reserved_orders(db, 1).await;
    let invoice = invoice_of(payments, orders[0]).await;
    let first = ok(create(db, payments, asked(&invoice, "checkout")).await, "a payment");
    let second = ok(create(db, payments, asked(&invoice, "intent")).await, "another payment");
    ok(attach(db, payments, first.id, Some("cs_1"), Some("pi_1")).await, "noting the ids");
    ok(attach(db, payments, first.id, Some("cs_1"), Some("pi_1")).await, "noting the same ids again");
    let intent = attach(db, payments, second.id, None, Some("pi_1")).await;
    assert!(matches!(intent, Err(RepoError::Conflict { .. })), "an intent belongs to one payment, got {intent:?}");
    let session = attach(db, payments, second.id, Some("cs_1"), None).await;
    assert!(matches!(session, Err(RepoError::Conflict { .. })), "a session belongs to one payment, got {session:?}");
    let refused = stored(payments, second.id).await;
    assert_eq!((refused.checkout_session_id, refused.payment_intent_id), (None, None), "the refused ids");
    let found = db.write(async |uow| payments.lock(uow, PaymentKey::Intent("pi_1")).await).await;
    assert_eq!(ok(found, "by intent").map(|p| p.id), Some(first.id));

    assert_eq!(ok(payments.stripe_customer(customer).await, "no customer yet"), None);
    assert_eq!(ok(payments.link_customer(customer, "cus_1", now()).await, "link"), "cus_1");
    assert_eq!(ok(payments.link_customer(customer, "cus_2", now()).await, "link again"), "cus_1", "the first wins");
    let linked = db.write(async |uow| payments.link_customer_in(uow, customer, "cus_3", now()).await).await;
    assert_eq!(ok(linked, "link in a unit"), "cus_1", "the first wins in a unit too");
    assert_eq!(ok(payments.stripe_customer(customer).await, "customer").as_deref(), Some("cus_1"));
    let users = UserRepo::new(db.clone());
    let new_user = NewUserRecord {
        email: ok(Email::parse("second@example.com"), "e-mail"),
        full_name: ok(FullName::parse("Second Customer"), "name"),
        password_hash: None,
        is_active: true,
        is_superuser: false,
        roles: Vec::new(),
    };
    let other = ok(db.write(async |uow| users.create(uow, new_user, now()).await).await, "a second user");
    let taken = payments.link_customer(other.id.as_uuid(), "cus_1", now()).await;
    assert!(matches!(taken, Err(RepoError::Conflict { .. })), "a customer belongs to one user, got {taken:?}");
    assert_eq!(ok(payments.stripe_customer(other.id.as_uuid()).await, "customer"), None);
}

/// A webhook event is recorded at its first delivery and recognised at every later one, which changes
/// nothing of the record; an event recorded in a unit that rolls back is not recorded (its redelivery is a
/// first delivery); deferred events wait for their intent in Stripe's order until marked applied.
pub async fn a_webhook_event_is_recorded_once<P: PaymentStore>(db: &Database, payments: &P) {
    let (_, orders, _) = reserved_orders(db, 1).await;
    let invoice = invoice_of(payments, orders[0]).await;
    let payment = ok(create(db, payments, asked(&invoice, "intent")).await, "a payment");

    let first = NewWebhookEvent { payment_id: Some(payment.id), ..webhook_event("evt_1", "applied", Some("pi_1"), 10) };
    assert!(record(db, payments, first).await, "the first delivery is new");
    let again = webhook_event("evt_1", "ignored", None, 10);
    assert!(!record(db, payments, again).await, "a second delivery is recognised");
    let kept = ok(payments.event("evt_1").await, "event").unwrap_or_else(|| panic!("evt_1 is not recorded"));
    assert_eq!((kept.outcome.as_str(), kept.payment_id), ("applied", Some(payment.id)), "the first record stays");
    assert_eq!((kept.kind.as_str(), kept.payment_intent_id.as_deref()), ("payment_intent.succeeded", Some("pi_1")));

    let rolled_back: RepoResult<bool> = db
        .write(async |uow| {
            ok(payments.record_event(uow, webhook_event("evt_2", "applied", None, 20), now()).await, "record");
            Err(RepoError::NotFound)
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(ok(payments.event("evt_2").await, "event"), None, "a rolled-back record is gone");
    assert!(record(db, payments, webhook_event("evt_2", "applied", None, 20)).await, "so its redelivery is new");

    for (id, intent, created) in [("evt_late", "pi_late", 300), ("evt_early", "pi_late", 100), ("evt_x", "pi_x", 200)] {
        assert!(record(db, payments, webhook_event(id, "deferred", Some(intent), created)).await);
    }
    let waiting = deferred(db, payments, "pi_late").await;
    assert_eq!(waiting, ["evt_early", "evt_late"], "the intent's deferred events, in Stripe's order");
    let early = ok(payments.event("evt_early").await, "event").unwrap_or_else(|| panic!("evt_early is gone"));
    assert_eq!((early.outcome.as_str(), early.payment_id), ("deferred", None));
    assert_eq!(early.effect.as_deref(), Some("{\"event\":\"evt_early\"}"), "the effect is kept as given");
    let marked = db.write(async |uow| payments.mark_applied(uow, "evt_early", payment.id, now()).await).await;
    ok(marked, "marking applied");
    let applied = ok(payments.event("evt_early").await, "event").unwrap_or_else(|| panic!("evt_early is gone"));
    assert_eq!((applied.outcome.as_str(), applied.payment_id), ("applied", Some(payment.id)));
    assert_eq!(deferred(db, payments, "pi_late").await, ["evt_late"], "an applied event waits no more");
}

/// Concurrent deliveries of one event, each in its own unit: exactly one records it.
pub async fn concurrent_deliveries_record_an_event_once<P: PaymentStore + 'static>(db: &Database, payments: Arc<P>) {
    let deliveries: Vec<_> = (0..8)
        .map(|_| {
            let (db, payments) = (db.clone(), payments.clone());
            tokio::spawn(async move {
                let new = webhook_event("evt_raced", "applied", Some("pi_raced"), 1);
                db.write(async |uow| payments.record_event(uow, new, now()).await).await
            })
        })
        .collect();
    let mut first = 0;
    for delivery in deliveries {
        if ok(ok(delivery.await, "a delivery panicked"), "a delivery failed instead of being recognised") {
            first += 1;
        }
    }
    assert_eq!(first, 1, "exactly one delivery of an event is its first");
    assert!(ok(payments.event("evt_raced").await, "event").is_some());
}

/// Refunds are numbered 1, 2, … per payment and end `succeeded` (with Stripe's id) or `failed`; the totals
/// reserved (requested or succeeded) and succeeded follow; the requested ones await Stripe with their
/// payment's intent; a refund of an unknown payment is refused.
pub async fn refunds_are_numbered_against_their_payment<P: PaymentStore>(db: &Database, payments: &P) {
    let (customer, orders, _) = reserved_orders(db, 1).await;
    let invoice = invoice_of(payments, orders[0]).await;
    let paid = ok(create(db, payments, asked(&invoice, "intent")).await, "a payment");
    let other = ok(create(db, payments, asked(&invoice, "checkout")).await, "another payment");
    ok(attach(db, payments, paid.id, None, Some("pi_r")).await, "noting the intent");
    let t = now();
    let by_customer = db.write(async |uow| payments.add_refund(uow, paid.id, 500, Some(customer), t).await).await;
    let one = ok(by_customer, "a refund");
    let two = ok(add_refund(db, payments, paid.id, 700, t + Duration::seconds(1)).await, "a second refund");
    let elsewhere = add_refund(db, payments, other.id, 300, t + Duration::seconds(2)).await;
    let elsewhere = ok(elsewhere, "a refund of another payment");
    assert_eq!((one.seq, two.seq, elsewhere.seq), (1, 2, 1), "numbered per payment");
    assert_eq!((one.payment_id, one.amount_minor, one.status.as_str()), (paid.id, 500, "requested"));
    assert_eq!((one.stripe_refund_id.as_deref(), one.created_at), (None, t));
    assert_eq!(refund_totals(db, payments, paid.id).await, (1_200, 0));
    let requested = ok(payments.requested_refunds(t - Duration::minutes(1), 10).await, "requested refunds");
    let expected =
        vec![(one.clone(), Some("pi_r".to_owned())), (two.clone(), Some("pi_r".to_owned())), (elsewhere.clone(), None)];
    assert_eq!(requested, expected, "requested refunds, oldest first, with their payment's intent");
    let later = ok(payments.requested_refunds(t + Duration::milliseconds(500), 1).await, "requested refunds");
    assert_eq!(later, expected[1..2], "since and limit are honoured");

    let finished = db
        .write(async |uow| {
            payments.finish_refund(uow, one.id, Some("re_1"), now()).await?;
            payments.finish_refund(uow, two.id, None, now()).await
        })
        .await;
    ok(finished, "finishing the refunds");
    let ended = ok(payments.refunds(paid.id).await, "refunds");
    let ends: Vec<(i32, &str, Option<&str>)> =
        ended.iter().map(|r| (r.seq, r.status.as_str(), r.stripe_refund_id.as_deref())).collect();
    assert_eq!(ends, [(1, "succeeded", Some("re_1")), (2, "failed", None)]);
    let in_unit = db.write(async |uow| payments.refunds_in(uow, paid.id).await).await;
    assert_eq!(ok(in_unit, "refunds in a unit"), ended, "the same refunds, read in a unit");
    assert_eq!(refund_totals(db, payments, paid.id).await, (500, 500), "a failed refund frees its amount");
    let requested = ok(payments.requested_refunds(t - Duration::minutes(1), 10).await, "requested refunds");
    assert_eq!(requested, [(elsewhere, None)], "only a refund still requested awaits Stripe");

    let unknown = add_refund(db, payments, Uuid::now_v7(), 100, now()).await;
    assert!(matches!(unknown, Err(RepoError::Conflict { .. })), "refund of an unknown payment: {unknown:?}");
}

/// Storing a payment's facts stores them as given and moves its invoice's paid amount by the change of the net
/// amount: a fully paid invoice is paid, a refund reopens it, facts that leave the net amount alone leave the
/// invoice alone; a settled payment no longer awaits Stripe.
pub async fn stored_facts_move_the_invoice_paid_amount<P: PaymentStore>(db: &Database, payments: &P) {
    let (_, orders, _) = reserved_orders(db, 1).await;
    let invoice = invoice_of(payments, orders[0]).await;
    let total = invoice.total.amount_minor;
    let paid = ok(create(db, payments, asked(&invoice, "intent")).await, "a payment");
    let failed = ok(create(db, payments, asked(&invoice, "intent")).await, "a failing payment");
    ok(attach(db, payments, paid.id, None, Some("pi_paid")).await, "intent");
    ok(attach(db, payments, failed.id, None, Some("pi_failed")).await, "intent");
    let paid_amount = |minor: i64| Money::new(minor, invoice.total.currency);

    let succeeded = PaymentFacts {
        status: "succeeded".into(),
        amount_paid_minor: total,
        payment_intent_id: Some("pi_paid".into()),
        charge_id: Some("ch_1".into()),
        ..PaymentFacts::default()
    };
    store_facts(db, payments, paid.id, succeeded.clone()).await;
    let record = stored(payments, paid.id).await;
    assert_eq!((record.status.as_str(), &record.facts), ("succeeded", &succeeded), "the facts as given");
    let after = invoice_of(payments, orders[0]).await;
    assert_eq!((after.status, after.amount_paid), (InvoiceStatus::Paid, invoice.total), "fully paid");

    let refunded = PaymentFacts { amount_refunded_minor: 500, ..succeeded.clone() };
    store_facts(db, payments, paid.id, refunded.clone()).await;
    let after = invoice_of(payments, orders[0]).await;
    assert_eq!((after.status, after.amount_paid), (InvoiceStatus::Open, paid_amount(total - 500)), "reopened");

    let disputed = PaymentFacts { disputed: true, ..refunded };
    store_facts(db, payments, paid.id, disputed.clone()).await;
    assert_eq!(stored(payments, paid.id).await.facts, disputed);
    let after = invoice_of(payments, orders[0]).await;
    assert_eq!(after.amount_paid, paid_amount(total - 500), "the net amount did not change");

    let declined = PaymentFacts {
        status: "failed".into(),
        failure_reason: Some("card_declined".into()),
        payment_intent_id: Some("pi_failed".into()),
        ..PaymentFacts::default()
    };
    store_facts(db, payments, failed.id, declined.clone()).await;
    assert_eq!(stored(payments, failed.id).await.facts, declined);
    assert_eq!(invoice_of(payments, orders[0]).await.amount_paid, paid_amount(total - 500), "nothing paid");
    let unsettled = ok(payments.unsettled(paid.created_at - Duration::minutes(1), 10).await, "unsettled");
    let unsettled: Vec<Uuid> = unsettled.iter().map(|p| p.id).collect();
    assert_eq!(unsettled, [failed.id], "a failed payment may still be settled, a succeeded one is");
}

/// A deposit of every field as given, for `order` of `customer`, to be placed from `place_from`.
fn deposit(order: Uuid, customer: Uuid, place_from: DateTime<Utc>, at: DateTime<Utc>) -> DepositRecord {
    DepositRecord::new(order, customer, Money::new(5_000, eur()), "scheduled", place_from, at)
}

async fn insert<P: PaymentStore>(db: &Database, payments: &P, d: &DepositRecord) -> RepoResult<()> {
    db.write(async |uow| payments.insert_deposit(uow, d).await).await
}

fn ids(found: RepoResult<Vec<DepositRecord>>) -> Vec<Uuid> {
    ok(found, "a deposit list").into_iter().map(|d| d.id).collect()
}

async fn save<P: PaymentStore>(db: &Database, payments: &P, d: &DepositRecord) -> RepoResult<()> {
    db.write(async |uow| payments.save_deposit(uow, d).await).await
}

/// A deposit's order is read with what the deposit needs; a deposit is written and read back as written by id,
/// order and intent, every changed field saved and read back (and cleared again); an order has one deposit.
pub async fn deposits_are_saved_and_read_back<P: PaymentStore>(db: &Database, payments: &P) {
    let (customer, orders, start) = reserved_orders(db, 1).await;
    let order_id = orders[0];
    let locked = db.write(async |uow| payments.lock_deposit_order(uow, order_id).await).await;
    let Some(order) = ok(locked, "the deposit's order") else { panic!("the order of a deposit is found") };
    assert_eq!((order.id, order.customer_id, order.status), (order_id, customer, OrderStatus::Reserved));
    assert_eq!((order.starts_at, order.ends_at), (start, start + Duration::days(2)), "the rental's period");
    assert_eq!(order.deposit, Money::zero(eur()), "the fixtures' product asks no deposit");
    let unknown = db.write(async |uow| payments.lock_deposit_order(uow, Uuid::now_v7()).await).await;
    assert_eq!(ok(unknown, "an unknown order"), None);

    let at = now();
    let new = deposit(order_id, customer, start - Duration::days(1), at);
    ok(insert(db, payments, &new).await, "a deposit");
    assert_eq!(ok(payments.deposit(new.id).await, "by id"), Some(new.clone()), "read back as written");
    assert_eq!(ok(payments.deposit_of_order(order_id).await, "by order"), Some(new.clone()));
    assert_eq!(ok(payments.deposit_of_order(Uuid::now_v7()).await, "no deposit"), None);

    let held = DepositRecord {
        status: "requires_capture".into(),
        hold_seq: 2,
        payment_intent_id: Some("pi_dep".into()),
        stripe_customer_id: Some("cus_dep".into()),
        amount_held_minor: 5_000,
        amount_captured_minor: 1_000,
        capture_requested_minor: Some(1_000),
        authorised_at: Some(at + Duration::hours(1)),
        attention: Some("the hold expires before the rental ends".into()),
        failure_reason: Some("card_declined".into()),
        saves_card: true,
        payment_method_id: Some("pm_1".into()),
        reauth_seq: Some(3),
        release: Some(("pi_old".into(), 1)),
        updated_at: at + Duration::hours(2),
        ..new.clone()
    };
    ok(save(db, payments, &held).await, "saving every field");
    let by_keys = db
        .write(async |uow| {
            Ok::<_, RepoError>([
                payments.lock_deposit(uow, DepositKey::Id(new.id)).await?,
                payments.lock_deposit(uow, DepositKey::Order(order_id)).await?,
                payments.lock_deposit(uow, DepositKey::Intent("pi_dep")).await?,
            ])
        })
        .await;
    let some = Some(held.clone());
    assert_eq!(ok(by_keys, "by key"), [some.clone(), some.clone(), some], "every field saved, found by each key");

    let cleared = DepositRecord {
        payment_intent_id: None,
        capture_requested_minor: None,
        authorised_at: None,
        attention: None,
        failure_reason: None,
        payment_method_id: None,
        reauth_seq: None,
        release: None,
        ..held
    };
    ok(save(db, payments, &cleared).await, "clearing fields");
    assert_eq!(ok(payments.deposit(new.id).await, "by id"), Some(cleared.clone()), "cleared fields read back");
    let by_intent = db.write(async |uow| payments.lock_deposit(uow, DepositKey::Intent("pi_dep")).await).await;
    assert_eq!(ok(by_intent, "by intent"), None, "the old intent finds nothing");

    let second = deposit(order_id, customer, start, now());
    let refused = insert(db, payments, &second).await;
    assert!(matches!(refused, Err(RepoError::Conflict { .. })), "one deposit per order, got {refused:?}");
    assert_eq!(ok(payments.deposit(second.id).await, "by id"), None, "the refused deposit was written");
    assert_eq!(ok(payments.deposit_of_order(order_id).await, "by order"), Some(cleared));
}

/// The deposit job's lists: scheduled deposits by `place_from`, held ones by `authorised_at` unless flagged,
/// the ones whose outcome at Stripe may be unknown, and the ones with work left, each oldest first within
/// its limit; an intent belongs to one deposit.
pub async fn the_deposit_jobs_find_their_work<P: PaymentStore>(db: &Database, payments: &P) {
    let (customer, orders, _) = reserved_orders(db, 4).await;
    let t = now();
    let soon = deposit(orders[0], customer, t - Duration::hours(1), t - Duration::hours(2));
    let later = deposit(orders[1], customer, t + Duration::days(1), t - Duration::hours(2));
    let held = DepositRecord {
        status: "requires_capture".into(),
        payment_intent_id: Some("pi_held".into()),
        authorised_at: Some(t - Duration::days(6)),
        capture_requested_minor: Some(2_000),
        release: Some(("pi_replaced".into(), 1)),
        updated_at: t - Duration::minutes(30),
        ..deposit(orders[2], customer, t - Duration::days(6), t - Duration::days(6))
    };
    let pending = DepositRecord {
        status: "pending".into(),
        payment_intent_id: Some("pi_pending".into()),
        reauth_seq: Some(2),
        updated_at: t - Duration::minutes(10),
        ..deposit(orders[3], customer, t - Duration::hours(1), t - Duration::hours(1))
    };
    for d in [&soon, &later, &held, &pending] {
        ok(insert(db, payments, d).await, "a deposit");
    }
    let due = ids(payments.deposits_due("scheduled", t, 10).await);
    assert_eq!(due, [soon.id], "a scheduled deposit is due from its place_from");
    let due = ids(payments.deposits_due("scheduled", t + Duration::days(2), 10).await);
    assert_eq!(due, [soon.id, later.id], "oldest first");
    let due = ids(payments.deposits_due("scheduled", t + Duration::days(2), 1).await);
    assert_eq!(due, [soon.id], "at most the limit");
    let due = ids(payments.deposits_due("requires_capture", t - Duration::days(5), 10).await);
    assert_eq!(due, [held.id], "a hold is due by its authorisation");
    let due = ids(payments.deposits_due("requires_capture", t - Duration::days(7), 10).await);
    assert!(due.is_empty(), "not before its authorisation");

    let unknown = ids(payments.deposits_to_reconcile(t - Duration::hours(1), 10).await);
    assert_eq!(unknown, [held.id, pending.id], "a pending hold and an asked capture, oldest change first");
    let unknown = ids(payments.deposits_to_reconcile(t - Duration::minutes(20), 10).await);
    assert_eq!(unknown, [pending.id], "only those changed since");
    let unfinished = ids(payments.deposits_unfinished(10).await);
    assert_eq!(unfinished, [held.id, pending.id], "a hold to release and a re-authorisation to note");

    let flagged = DepositRecord { attention: Some("expiring".into()), ..held.clone() };
    ok(save(db, payments, &flagged).await, "flagging the hold");
    let due = ids(payments.deposits_due("requires_capture", t, 10).await);
    assert!(due.is_empty(), "a flagged hold is not due again");

    let clash = DepositRecord { payment_intent_id: Some("pi_held".into()), ..pending.clone() };
    let refused = save(db, payments, &clash).await;
    assert!(matches!(refused, Err(RepoError::Conflict { .. })), "an intent belongs to one deposit: {refused:?}");
    assert_eq!(ok(payments.deposit(pending.id).await, "by id"), Some(pending), "the refused save changed nothing");
}

/// Refused writes leave nothing: a payment of an unknown invoice or customer, a deposit of an unknown order;
/// and a unit holding a payment, its refund, a webhook event and a deposit that ends with a refused write
/// leaves none of them.
pub async fn refused_writes_leave_nothing<P: PaymentStore>(db: &Database, payments: &P) {
    let (customer, orders, start) = reserved_orders(db, 1).await;
    let invoice = invoice_of(payments, orders[0]).await;
    let conflict = |what: &str, result: RepoResult<()>| {
        assert!(matches!(result, Err(RepoError::Conflict { .. })), "{what} must be refused, got {result:?}");
    };
    let unknown_invoice = NewStripePayment { invoice_id: Uuid::now_v7(), ..asked(&invoice, "intent") };
    conflict("a payment of an unknown invoice", create(db, payments, unknown_invoice).await.map(drop));
    let unknown_customer = NewStripePayment { customer_id: Uuid::now_v7(), ..asked(&invoice, "intent") };
    conflict("a payment of an unknown customer", create(db, payments, unknown_customer).await.map(drop));
    let orphan = deposit(Uuid::now_v7(), customer, start, now());
    conflict("a deposit of an unknown order", insert(db, payments, &orphan).await);
    assert_eq!(ok(payments.deposit(orphan.id).await, "by id"), None);

    let good = deposit(orders[0], customer, start, now());
    let attempt: RepoResult<Uuid> = db
        .write(async |uow| {
            let payment = payments.create(uow, asked(&invoice, "intent"), now()).await?;
            payments.attach(uow, payment.id, None, Some("pi_doomed"), now()).await?;
            payments.add_refund(uow, payment.id, 100, None, now()).await?;
            payments.record_event(uow, webhook_event("evt_doomed", "applied", Some("pi_doomed"), 1), now()).await?;
            payments.insert_deposit(uow, &good).await?;
            payments.insert_deposit(uow, &orphan).await?;
            Ok(payment.id)
        })
        .await;
    assert!(matches!(attempt, Err(RepoError::Conflict { .. })), "the unit ends refused, got {attempt:?}");
    assert!(listed(payments, &[]).await.is_empty(), "a refused write left a payment behind");
    let by_intent = db.write(async |uow| payments.lock(uow, PaymentKey::Intent("pi_doomed")).await).await;
    assert_eq!(ok(by_intent, "by intent"), None);
    let requested = ok(payments.requested_refunds(start - Duration::days(30), 10).await, "requested refunds");
    assert!(requested.is_empty(), "a refused write left a refund behind");
    assert_eq!(ok(payments.event("evt_doomed").await, "event"), None, "a refused write left an event behind");
    assert_eq!(ok(payments.deposit_of_order(orders[0]).await, "deposit"), None, "or a deposit");
    for id in [good.id, orphan.id] {
        assert_eq!(ok(payments.deposit(id).await, "by id"), None);
    }
}
