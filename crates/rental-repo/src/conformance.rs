//! The conformance suite of the store traits: the behaviour the services rely on, written against the traits
//! only ([`crate::UserStore`], [`crate::RefreshTokenStore`], [`CatalogueStore`], [`OrderStore`], [`BillingStore`],
//! [`crate::JobStore`], [`crate::PaymentStore`]), so that any implementation can prove itself with it. The
//! crate's own tests run it on the sea-orm repositories, on SQLite and on PostgreSQL (`tests/conformance.rs`);
//! an embedding developer runs it the same way on theirs.
//!
//! Each check takes a freshly migrated, empty [`Database`] (the units of work are begun on it and the fixtures —
//! a customer and products, and for the payment checks reserved orders with their invoices — are written with
//! this crate's user, catalogue, order and billing repositories) and the stores to check, and panics with a
//! message when the contract is broken. The invariants are checked against the real database, never against a
//! fake: no double booking under concurrency, gap-free invoice numbers, a webhook event recorded once however
//! its deliveries race, one payment per Stripe intent, nothing written by a refused operation.
//!
//! Available with the `conformance` feature.

mod catalogue;
mod jobs;
mod payments;
mod users;

pub use catalogue::{
    adding_units_is_all_or_nothing, categories_are_unique_by_slug_and_restrict_deletion, category, ids,
    keyset_pages_walk_every_product_once_in_order, params, product, product_list_filters_sorts_and_searches,
    products_are_created_updated_and_deleted_with_their_stock, unit,
};
pub use jobs::*;
pub use payments::*;
pub use users::*;

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rental_domain::billing::Charge;
use rental_domain::pricing::{OrderTotals, ProductTerms, RateCard};
use rental_domain::{
    CategoryName, ChargeKind, Currency, DomainError, Email, FullName, InvoiceStatus, Money, OrderStatus, PaymentMethod,
    Role, UnitCondition,
};
use uuid::Uuid;

use crate::{
    BillingStore, CatalogueRepo, CatalogueStore, Database, LineTerms, NewCategoryRecord, NewInvoiceRecord,
    NewLocationRecord, NewOrderLineRecord, NewOrderRecord, NewPaymentRecord, NewProductRecord, NewUnitRecord,
    NewUserRecord, OrderChange, OrderStore, RepoError, RepoResult, UserRepo, UserStore, order_list_spec,
};

fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: {err:?}"),
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn eur() -> Currency {
    ok(Currency::parse("EUR"), "EUR")
}

/// The terms of the fixtures' product: 10.00 a day, no deposit, no late fee, no buffer.
fn kit_terms() -> ProductTerms {
    ProductTerms {
        rates: ok(RateCard::new(Money::new(1_000, eur()), None, None), "rates"),
        deposit_per_unit: Money::zero(eur()),
        late_fee_per_day: Money::zero(eur()),
        buffer_minutes: 0,
    }
}

/// A customer and a product with `units` tracked units at 10.00 a day; returns (customer, product).
async fn fixtures(db: &Database, units: usize) -> (Uuid, Uuid) {
    let users = UserRepo::new(db.clone());
    let new = NewUserRecord {
        email: ok(Email::parse("conformance@example.com"), "email"),
        full_name: ok(FullName::parse("Con Formance"), "name"),
        password_hash: None,
        is_active: true,
        is_superuser: false,
        roles: vec![Role::Customer],
    };
    let catalogue = CatalogueRepo::new(db.clone());
    let category = NewCategoryRecord { name: ok(CategoryName::parse("Kit"), "category"), description: None };
    let location = NewLocationRecord { name: "Depot".into(), address: None };
    let written = db
        .write(async |uow| {
            let at = now();
            let customer = users.create(uow, new, at).await?;
            let category = catalogue.create_category(uow, category, at).await?;
            let location = catalogue.create_location(uow, location, at).await?;
            let product = NewProductRecord {
                category_id: category.id,
                sku: "KIT-1".into(),
                name: "Kit".into(),
                description: None,
                terms: kit_terms(),
                is_active: true,
            };
            let product = catalogue.create_product(uow, product, at).await?;
            let units = (0..units)
                .map(|i| NewUnitRecord {
                    serial_number: format!("KIT-1-{i}"),
                    condition: UnitCondition::Good,
                    location_id: location.id,
                })
                .collect();
            catalogue.add_units(uow, product.id, units, at).await?;
            Ok::<_, RepoError>((customer, product))
        })
        .await;
    let (customer, product) = ok(written, "writing the fixtures");
    (customer.id.as_uuid(), product.id)
}

/// A one-line order of `quantity` items for `days` days from `start`, at 10.00 a day.
fn order(customer: Uuid, product: Uuid, status: OrderStatus, quantity: i32, start: DateTime<Utc>) -> NewOrderRecord {
    let days = 2;
    let terms = kit_terms();
    let priced = ok(terms.price(days, i64::from(quantity)), "pricing the line");
    NewOrderRecord {
        customer_id: customer,
        status,
        totals: ok(OrderTotals::of(eur(), [&priced], 0), "totals"),
        tax_rate_bp: 0,
        notes: None,
        created_by: Some(customer),
        lines: vec![NewOrderLineRecord {
            product_id: product,
            quantity,
            starts_at: start,
            ends_at: start + Duration::days(days),
            terms: ok(LineTerms::priced(&terms, &priced), "line terms"),
            description: "Kit".into(),
        }],
    }
}

fn invoice(order_id: Uuid, customer: Uuid, total: Money, issue: bool) -> NewInvoiceRecord {
    NewInvoiceRecord {
        order_id,
        customer_id: customer,
        subtotal: total,
        tax_rate_bp: 0,
        tax: Money::zero(total.currency),
        total,
        issue,
        lines: vec![Charge {
            kind: ChargeKind::Rental,
            description: "Kit".into(),
            quantity: 1,
            unit_amount: total,
            amount: total,
            taxable: true,
        }],
    }
}

/// Writes an order and its invoice in one unit of work, as the rental service does.
async fn place<O: OrderStore, B: BillingStore>(
    db: &Database,
    orders: &O,
    billing: &B,
    new: &NewOrderRecord,
) -> RepoResult<Uuid> {
    let at = now();
    let uow = db.begin().await?;
    let result = async {
        let order = orders.create_order(&uow, new, at).await?;
        let issue = new.status == OrderStatus::Reserved;
        billing.create_invoice(&uow, &invoice(order.id, new.customer_id, new.totals.total, issue), at).await?;
        Ok(order.id)
    }
    .await;
    uow.finish(result).await
}

/// Reservations hold stock: what is left can be reserved, one item more is refused with the line that does not
/// fit, and a refused reservation writes nothing (no order, no invoice). Quotes hold nothing.
pub async fn reservations_hold_stock_and_refusals_write_nothing<O: OrderStore, B: BillingStore>(
    db: &Database,
    orders: &O,
    billing: &B,
) {
    let (customer, product) = fixtures(db, 3).await;
    let start = now() + Duration::days(3);
    ok(place(db, orders, billing, &order(customer, product, OrderStatus::Quote, 3, start)).await, "a quote");
    ok(place(db, orders, billing, &order(customer, product, OrderStatus::Reserved, 2, start)).await, "2 of 3");
    let refused = place(db, orders, billing, &order(customer, product, OrderStatus::Reserved, 2, start)).await;
    match refused {
        Err(RepoError::InsufficientStock(lines)) => {
            assert_eq!(lines.len(), 1, "one line does not fit");
            assert_eq!((lines[0].requested, lines[0].free), (2, 1), "2 asked, 1 free");
        }
        other => panic!("a reservation beyond the stock must be refused, got {other:?}"),
    }
    let listed = ok(orders.list_orders(&ok(order_list_spec().parse(&[]), "query"), now()).await, "listing");
    assert_eq!(listed.items().len(), 2, "the refused reservation left an order behind");
    let invoices = ok(billing.list_invoices(&ok(crate::invoice_list_spec().parse(&[]), "query")).await, "invoices");
    assert_eq!(invoices.items().len(), 2, "the refused reservation left an invoice behind");
    ok(place(db, orders, billing, &order(customer, product, OrderStatus::Reserved, 1, start)).await, "the last");
    let holds = ok(orders.product_holds(product, start, start + Duration::days(2)).await, "holds");
    assert_eq!(holds.capacity, 3);
    assert_eq!(holds.holds.iter().map(|h| h.quantity).sum::<i64>(), 3, "quotes hold nothing");
}

/// Concurrent reservations of the last unit, each in its own unit of work: exactly one succeeds and nothing is
/// overbooked.
pub async fn concurrent_reservations_never_overbook<O, B>(db: &Database, orders: Arc<O>, billing: Arc<B>)
where
    O: OrderStore + 'static,
    B: BillingStore + 'static,
{
    let (customer, product) = fixtures(db, 1).await;
    let start = now() + Duration::days(5);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (db, orders, billing) = (db.clone(), orders.clone(), billing.clone());
            tokio::spawn(async move {
                place(
                    &db,
                    orders.as_ref(),
                    billing.as_ref(),
                    &order(customer, product, OrderStatus::Reserved, 1, start),
                )
                .await
            })
        })
        .collect();
    let (mut made, mut refused) = (0, 0);
    for task in tasks {
        match ok(task.await, "a reservation task panicked") {
            Ok(_) => made += 1,
            Err(RepoError::InsufficientStock(_)) => refused += 1,
            Err(other) => panic!("a concurrent reservation failed instead of being refused: {other:?}"),
        }
    }
    assert_eq!((made, refused), (1, 11), "exactly one reservation of the last unit may succeed");
    assert_eq!(ok(orders.count_overbooked().await, "overbooking check"), 0);
}

/// Transitions follow the domain's state machine, are written to the event log, and an illegal one changes
/// nothing.
pub async fn transitions_follow_the_lifecycle_and_are_logged<O: OrderStore, B: BillingStore>(
    db: &Database,
    orders: &O,
    billing: &B,
) {
    let (customer, product) = fixtures(db, 2).await;
    let id = ok(
        place(db, orders, billing, &order(customer, product, OrderStatus::Quote, 1, now() + Duration::days(2))).await,
        "a quote",
    );
    let change = |note: &str| OrderChange { actor: Some(customer), note: Some(note.into()), at: now() };
    let uow = ok(db.begin().await, "begin");
    let illegal = orders.close(&uow, id, &change("too early")).await;
    uow.rollback().await;
    assert!(
        matches!(illegal, Err(RepoError::Domain(DomainError::IllegalTransition { .. }))),
        "closing a quote must be illegal, got {illegal:?}"
    );
    let uow = ok(db.begin().await, "begin");
    let confirmed = orders.confirm(&uow, id, &change("yes")).await;
    let confirmed = ok(uow.finish(confirmed).await, "confirming the quote");
    assert_eq!((confirmed.from, confirmed.order.status), (OrderStatus::Quote, OrderStatus::Reserved));
    assert_eq!(confirmed.usage_changed, 1, "the confirmed line's usage changed");
    let uow = ok(db.begin().await, "begin");
    let cancelled = orders.cancel(&uow, id, &change("no")).await;
    let cancelled = ok(uow.finish(cancelled).await, "cancelling");
    assert_eq!(cancelled.order.status, OrderStatus::Cancelled);
    let events = ok(orders.events(id).await, "events");
    let steps: Vec<(Option<String>, String)> = events.into_iter().map(|e| (e.from_status, e.to_status)).collect();
    assert_eq!(
        steps,
        [
            (None, "quote".to_owned()),
            (Some("quote".to_owned()), "reserved".to_owned()),
            (Some("reserved".to_owned()), "cancelled".to_owned()),
        ],
        "every transition, and only those that happened, is logged"
    );
    let holds = ok(orders.product_holds(product, now(), now() + Duration::days(10)).await, "holds");
    assert!(holds.holds.is_empty(), "a cancelled order holds nothing");
}

/// Issued invoices written by concurrent units of work get the numbers 1..N of their year, without gaps or
/// repeats; drafts get none.
pub async fn issued_invoices_get_gap_free_numbers<O, B>(db: &Database, orders: Arc<O>, billing: Arc<B>)
where
    O: OrderStore + 'static,
    B: BillingStore + 'static,
{
    let (customer, product) = fixtures(db, 40).await;
    let start = now() + Duration::days(1);
    ok(
        place(db, orders.as_ref(), billing.as_ref(), &order(customer, product, OrderStatus::Quote, 1, start)).await,
        "a quote",
    );
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (db, orders, billing) = (db.clone(), orders.clone(), billing.clone());
            tokio::spawn(async move {
                let new = order(customer, product, OrderStatus::Reserved, 1, start);
                place(&db, orders.as_ref(), billing.as_ref(), &new).await?;
                billing.number_issued_invoices().await
            })
        })
        .collect();
    for task in tasks {
        ok(ok(task.await, "a task panicked"), "a reservation or its numbering failed");
    }
    let query = ok(crate::invoice_list_spec().parse(&[("per_page".into(), "100".into())]), "query");
    let invoices = ok(billing.list_invoices(&query).await, "invoices").items().to_vec();
    let mut numbers: Vec<String> = invoices.iter().filter_map(|i| i.number.clone()).collect();
    numbers.sort();
    let year = now().format("%Y");
    let expected: Vec<String> = (1..=16).map(|seq| format!("INV-{year}-{seq:06}")).collect();
    assert_eq!(numbers, expected, "issued invoices must be numbered 1..N without gaps");
    let drafts: Vec<_> = invoices.iter().filter(|i| i.status == InvoiceStatus::Draft).collect();
    assert_eq!(drafts.len(), 1);
    assert!(drafts[0].number.is_none(), "a draft has no number");
}

/// Payments: only what is due is accepted, a refused payment writes nothing, and the invoice is paid once fully
/// paid.
pub async fn payments_are_accepted_up_to_the_amount_due<O: OrderStore, B: BillingStore>(
    db: &Database,
    orders: &O,
    billing: &B,
) {
    let (customer, product) = fixtures(db, 1).await;
    let id = ok(
        place(db, orders, billing, &order(customer, product, OrderStatus::Reserved, 1, now() + Duration::days(1)))
            .await,
        "a reservation",
    );
    let detail = ok(orders.order_detail(id).await, "detail");
    let Some(invoice) = detail.and_then(|d| d.invoice) else { panic!("a reservation has an invoice") };
    assert_eq!(invoice.status, InvoiceStatus::Open);
    let pay = |amount| NewPaymentRecord {
        invoice_id: invoice.id,
        amount: Money::new(amount, eur()),
        method: PaymentMethod::Cash,
        reference: None,
        recorded_by: Some(customer),
    };
    let uow = ok(db.begin().await, "begin");
    let refused = billing.record_payment(&uow, pay(invoice.total.amount_minor + 1), now()).await;
    let refused = uow.finish(refused).await;
    assert!(matches!(refused, Err(RepoError::Domain(_))), "more than is due must be refused, got {refused:?}");
    let uow = ok(db.begin().await, "begin");
    let part = billing.record_payment(&uow, pay(500), now()).await;
    ok(uow.finish(part).await, "a part payment");
    let uow = ok(db.begin().await, "begin");
    let rest = billing.record_payment(&uow, pay(invoice.total.amount_minor - 500), now()).await;
    ok(uow.finish(rest).await, "the rest");
    let Some((paid, payments)) = ok(billing.invoice(invoice.id).await, "the invoice") else {
        panic!("the invoice is gone")
    };
    assert_eq!((paid.status, paid.amount_paid), (InvoiceStatus::Paid, invoice.total));
    assert_eq!(payments.len(), 2, "the refused payment was written");
}
