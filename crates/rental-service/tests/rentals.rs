//! Rental and billing tests at the service layer, on a real database (SQLite by default, PostgreSQL when
//! TEST_DATABASE_URL is set) with a clock the tests move: the unit of work across repositories, pricing, late
//! fees and damage, quotes that started, overdue orders, invoice numbering and permissions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use rental_domain::billing::Charge;
use rental_domain::pricing::{OrderTotals, ProductTerms, RateCard};
use rental_domain::{ChargeKind, Currency, Money, OrderStatus};
use rental_repo::{BillingRepo, LineTerms, NewInvoiceRecord, NewOrderLineRecord, NewOrderRecord, OrderRepo, RepoError};
use rental_service::{
    Clock, NewCategory, NewLocation, NewPayment, NewProduct, NewRental, NewRentalLine, NewUnit, PickupLine, Principal,
    ReturnedUnit, ServiceError, Services,
};
use uuid::Uuid;

mod common;

use common::{Fixture, fixture, people};

/// A product with two tracked units: 20.00 a day, 100.00 a week, a 5.00 late fee per day and a 50.00 deposit.
async fn camera(services: &Services, staff: &Principal) -> (Uuid, Vec<Uuid>) {
    let c = &services.catalogue;
    let category = c.create_category(staff, NewCategory { name: "Cameras".into(), description: None }).await.unwrap();
    let depot = c.create_location(staff, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let product = c
        .create_product(
            staff,
            NewProduct {
                category_id: category.id,
                sku: "CAM-1".into(),
                name: "Camera".into(),
                currency: "EUR".into(),
                price_per_day_minor: 2_000,
                price_per_week_minor: Some(10_000),
                deposit_minor: Some(5_000),
                late_fee_per_day_minor: Some(500),
                ..NewProduct::default()
            },
        )
        .await
        .unwrap();
    let units = ["CAM-1-A", "CAM-1-B"].map(|serial| NewUnit {
        serial_number: serial.into(),
        condition: None,
        location_id: depot.id,
    });
    let units = c.add_units(staff, product.id, units.to_vec()).await.unwrap();
    (product.id, units.into_iter().map(|u| u.id).collect())
}

fn rental(product_id: Uuid, quantity: i64, start: DateTime<Utc>, days: i64, status: Option<&str>) -> NewRental {
    NewRental {
        customer_id: None,
        status: status.map(str::to_owned),
        lines: vec![NewRentalLine { product_id, quantity, start, end: start + Duration::days(days) }],
        notes: None,
    }
}

/// The ids of the orders staff see with the list's `params`.
async fn listed(services: &Services, staff: &Principal, params: &[(&str, String)]) -> Vec<Uuid> {
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    services.rentals.list(staff, &params).await.unwrap().items().iter().map(|o| o.id).collect()
}

/// The ids of the overdue orders, as staff list them.
async fn overdue(services: &Services, staff: &Principal) -> Vec<Uuid> {
    listed(services, staff, &[("overdue", "true".to_owned())]).await
}

fn field_errors(err: ServiceError) -> Vec<String> {
    match err {
        ServiceError::Invalid(e) => e.fields().iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap())
}

/// 20.00 EUR a day and nothing else: no weekly rate, deposit, late fee or buffer.
fn day_rate_terms() -> ProductTerms {
    ProductTerms {
        rates: RateCard::new(eur(2_000), None, None).unwrap(),
        deposit_per_unit: eur(0),
        late_fee_per_day: eur(0),
        buffer_minutes: 0,
    }
}

/// A priced quote of one camera for two days, written straight through the order repository.
fn quote_record(customer: &Principal, product_id: Uuid, at: DateTime<Utc>) -> NewOrderRecord {
    let terms = LineTerms {
        product: day_rate_terms(),
        charged_days: 2,
        months: 0,
        weeks: 0,
        days: 2,
        unit_price: eur(4_000),
        line_total: eur(4_000),
    };
    NewOrderRecord {
        customer_id: customer.user_id.as_uuid(),
        status: OrderStatus::Quote,
        totals: OrderTotals { subtotal: eur(4_000), tax: eur(0), total: eur(4_000), deposit: eur(0) },
        tax_rate_bp: 0,
        notes: None,
        created_by: Some(customer.user_id.as_uuid()),
        lines: vec![NewOrderLineRecord {
            product_id,
            quantity: 1,
            starts_at: at + Duration::days(1),
            ends_at: at + Duration::days(3),
            terms,
            description: "1 × Camera, 2 day(s)".into(),
        }],
    }
}

fn invoice_of(order_id: Uuid, customer: &Principal) -> NewInvoiceRecord {
    let total = Money::new(4_000, Currency::parse("EUR").unwrap());
    NewInvoiceRecord {
        order_id,
        customer_id: customer.user_id.as_uuid(),
        subtotal: total,
        tax_rate_bp: 0,
        tax: Money::zero(total.currency),
        total,
        issue: false,
        lines: vec![Charge {
            kind: ChargeKind::Rental,
            description: "1 × Camera, 2 day(s)".into(),
            quantity: 1,
            unit_amount: total,
            amount: total,
            taxable: true,
        }],
    }
}

#[tokio::test]
async fn a_failed_write_in_the_second_repository_rolls_back_the_first() {
    let Fixture { services, db, clock, _db } = fixture().await;
    let (_, staff, customer) = people(&services).await;
    let (product_id, _) = camera(&services, &staff).await;
    let (orders, billing) = (OrderRepo::new(db.clone()), BillingRepo::new(db.clone()));
    let now = clock.now();

    // The order and its invoice are written, then a second invoice for the same order breaks the unique
    // index on invoices.order_id: the database refuses the billing repository's write.
    let uow = db.begin().await.unwrap();
    let order = orders.create_order(&uow, &quote_record(&customer, product_id, now), now).await.unwrap();
    billing.create_invoice(&uow, &invoice_of(order.id, &customer), now).await.unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    uow.after_commit(async move { flag.store(true, Ordering::SeqCst) });
    let second = billing.create_invoice(&uow, &invoice_of(order.id, &customer), now).await;
    assert!(matches!(second, Err(RepoError::Conflict { .. })), "{second:?}");
    let ended = uow.finish(second.map(|_| ())).await;
    assert!(ended.is_err());

    // Nothing of the unit is left: not the order, not its lines, not the first invoice; the after-commit action
    // never ran.
    assert_eq!(orders.find_order(order.id).await.unwrap(), None);
    assert!(orders.order_detail(order.id).await.unwrap().is_none());
    let invoices = services.billing.list_invoices(&staff, &[]).await.unwrap();
    assert_eq!(invoices.items().len(), 0);
    assert!(!ran.load(Ordering::SeqCst));

    // The same two writes without the failure commit together, and the action runs after the commit, when
    // another connection already sees the order.
    let uow = db.begin().await.unwrap();
    let order = orders.create_order(&uow, &quote_record(&customer, product_id, now), now).await.unwrap();
    billing.create_invoice(&uow, &invoice_of(order.id, &customer), now).await.unwrap();
    let (seen, reader) = (Arc::new(AtomicBool::new(false)), orders.clone());
    let seen_inside = seen.clone();
    let order_id = order.id;
    uow.after_commit(async move {
        let visible = reader.find_order(order_id).await.unwrap().is_some();
        seen_inside.store(visible, Ordering::SeqCst);
    });
    assert!(!seen.load(Ordering::SeqCst), "an after-commit action must not run before the commit");
    uow.finish(Ok::<_, RepoError>(())).await.unwrap();
    assert!(seen.load(Ordering::SeqCst));
    let detail = services.rentals.get(&customer, order.id).await.unwrap();
    assert_eq!(detail.invoice.unwrap().lines.unwrap().len(), 1);
}

#[tokio::test]
async fn a_reservation_is_priced_taxed_invoiced_and_numbered() {
    let f = fixture().await;
    let (_, staff, customer) = people(&f.services).await;
    let (product_id, _) = camera(&f.services, &staff).await;
    let start = f.clock.now() + Duration::days(1);

    // Nine started days: one week (100.00) and two days (40.00) is the cheapest cover, per item.
    let order = f.services.rentals.create(&customer, rental(product_id, 2, start, 9, None)).await.unwrap();
    assert_eq!(order.subtotal_minor, 2 * 14_000);
    assert_eq!(order.tax_minor, 2_800, "10 % tax from the fixture's configuration");
    assert_eq!(order.total_minor, 30_800);
    assert_eq!(order.deposit_minor, 10_000);
    let detail = f.services.rentals.get(&customer, order.id).await.unwrap();
    let invoice = detail.invoice.unwrap();
    assert_eq!(invoice.status, "open");
    let year = f.clock.now().format("%Y").to_string();
    assert_eq!(invoice.number.as_deref(), Some(format!("INV-{year}-000001").as_str()));
    assert_eq!((detail.lines[0].weeks, detail.lines[0].days), (1, 2));

    // A bad quantity is refused before anything is written; a quote gets a draft without a number.
    let bad = f.services.rentals.create(&customer, rental(product_id, 0, start, 1, None)).await;
    assert_eq!(field_errors(bad.unwrap_err()), ["lines[0].quantity"]);
    let quote = f.services.rentals.create(&customer, rental(product_id, 1, start, 1, Some("quote"))).await.unwrap();
    let quote_invoice = f.services.rentals.get(&customer, quote.id).await.unwrap().invoice.unwrap();
    assert_eq!((quote_invoice.status.as_str(), quote_invoice.number), ("draft", None));

    // Both units are now held over the period: a third reservation is refused with the nearest free period.
    let refused = f.services.rentals.create(&customer, rental(product_id, 1, start, 2, None)).await.unwrap_err();
    match refused {
        ServiceError::InsufficientStock(lines) => {
            assert_eq!(lines[0].available, 0);
            assert!(!lines[0].nearest_free.is_empty());
        }
        other => panic!("expected a shortage, got {other:?}"),
    }
}

#[tokio::test]
async fn a_late_return_is_charged_per_started_day_and_item_with_damage() {
    let f = fixture().await;
    let (_, staff, customer) = people(&f.services).await;
    let (product_id, units) = camera(&f.services, &staff).await;
    let start = f.clock.now() + Duration::hours(1);
    let order = f.services.rentals.create(&customer, rental(product_id, 2, start, 2, None)).await.unwrap();

    f.clock.set(start);
    let picked = f.services.rentals.pickup(&staff, order.id, Vec::<PickupLine>::new(), None).await.unwrap();
    assert_eq!(picked.status, OrderStatus::PickedUp);

    // A desk's returns: picked up, ending before an instant (strictly), not late yet.
    let end = start + Duration::days(2);
    let due_before = |at: DateTime<Utc>| {
        [("status", "picked_up".to_owned()), ("ends_before", at.to_rfc3339()), ("overdue", "false".to_owned())]
    };
    assert_eq!(listed(&f.services, &staff, &due_before(end + Duration::seconds(1))).await, [order.id]);
    assert!(listed(&f.services, &staff, &due_before(end)).await.is_empty());
    let bad = f.services.rentals.list(&staff, &[("ends_before".to_owned(), "tomorrow".to_owned())]).await;
    assert!(matches!(bad, Err(ServiceError::InvalidQuery { ref field, .. }) if field == "ends_before"), "{bad:?}");

    // Overdue is judged by the clock: not before the end, yes after it.
    assert!(overdue(&f.services, &staff).await.is_empty());
    // Back 2 days and 1 hour late: three started days, two items, 5.00 each.
    f.clock.set(start + Duration::days(4) + Duration::hours(1));
    assert_eq!(overdue(&f.services, &staff).await, [order.id]);

    let returns = vec![ReturnedUnit {
        unit_id: units[0],
        condition: "damaged".into(),
        damage_note: Some("cracked lens".into()),
        damage_charge_minor: Some(2_500),
    }];
    let returned = f.services.rentals.return_items(&staff, order.id, returns, None).await.unwrap();
    assert_eq!(returned.status, OrderStatus::Returned);
    let invoice = f.services.rentals.get(&staff, order.id).await.unwrap().invoice.unwrap();
    let lines = invoice.lines.unwrap();
    let late = lines.iter().find(|l| l.kind == "late_fee").unwrap();
    assert_eq!((late.quantity, late.unit_amount_minor, late.amount_minor), (2, 1_500, 3_000));
    let damage = lines.iter().find(|l| l.kind == "damage").unwrap();
    assert_eq!(damage.amount_minor, 2_500);
    assert!(damage.description.contains("cracked lens"));
    // Rental 2 × 40.00, plus 30.00 late and 25.00 damage; 10 % tax on all of it.
    assert_eq!(invoice.subtotal_minor, 8_000 + 3_000 + 2_500);
    assert_eq!(invoice.tax_minor, 1_350);
    assert_eq!(invoice.total_minor, 14_850);

    // Paying it all marks it paid; a payment beyond what is due is refused and nothing is written.
    let pay =
        |amount| NewPayment { amount_minor: amount, currency: "EUR".into(), method: "card".into(), reference: None };
    let too_much = f.services.billing.record_payment(&staff, invoice.id, pay(14_851)).await.unwrap_err();
    assert_eq!(field_errors(too_much), ["amount_minor"]);
    f.services.billing.record_payment(&staff, invoice.id, pay(14_850)).await.unwrap();
    let paid = f.services.billing.get_invoice(&customer, invoice.id).await.unwrap();
    assert_eq!((paid.status.as_str(), paid.amount_paid_minor), ("paid", 14_850));
    assert_eq!(paid.payments.unwrap().len(), 1);
    let refused = f.services.billing.record_payment(&customer, invoice.id, pay(1)).await.unwrap_err();
    assert!(matches!(refused, ServiceError::Forbidden(_)));
}

#[tokio::test]
async fn a_quote_can_be_confirmed_until_its_period_starts() {
    let f = fixture().await;
    let (_, staff, customer) = people(&f.services).await;
    let (product_id, _) = camera(&f.services, &staff).await;
    let start = f.clock.now() + Duration::days(2);
    let early = f.services.rentals.create(&customer, rental(product_id, 1, start, 1, Some("quote"))).await.unwrap();
    let late = f.services.rentals.create(&customer, rental(product_id, 1, start, 1, Some("quote"))).await.unwrap();

    f.clock.set(start - Duration::hours(1));
    let confirmed = f.services.rentals.confirm(&customer, early.id, None).await.unwrap();
    assert_eq!(confirmed.status, OrderStatus::Reserved);
    let invoice = f.services.rentals.get(&customer, early.id).await.unwrap().invoice.unwrap();
    assert_eq!(invoice.status, "open");
    assert!(invoice.number.is_some());

    f.clock.set(start + Duration::minutes(5));
    let refused = f.services.rentals.confirm(&customer, late.id, None).await.unwrap_err();
    assert_eq!(field_errors(refused), ["start"]);
    let still = f.services.rentals.get(&customer, late.id).await.unwrap();
    assert_eq!(still.order.status, OrderStatus::Quote);
    assert_eq!(still.invoice.unwrap().status, "draft");
}

#[tokio::test]
async fn customers_see_and_change_only_their_own_orders_and_staff_run_the_desk() {
    let f = fixture().await;
    let (admin, staff, customer) = people(&f.services).await;
    let (product_id, _) = camera(&f.services, &staff).await;
    let start = f.clock.now() + Duration::days(1);
    let mine = f.services.rentals.create(&customer, rental(product_id, 1, start, 1, None)).await.unwrap();
    let theirs = f.services.rentals.create(&admin, rental(product_id, 1, start, 1, None)).await.unwrap();

    assert!(matches!(f.services.rentals.get(&customer, theirs.id).await, Err(ServiceError::NotFound(_))));
    assert!(matches!(f.services.rentals.cancel(&customer, theirs.id, None).await, Err(ServiceError::NotFound(_))));
    let listed = f.services.rentals.list(&customer, &[]).await.unwrap();
    assert_eq!(listed.items().iter().map(|o| o.id).collect::<Vec<_>>(), [mine.id]);
    assert_eq!(f.services.rentals.list(&staff, &[]).await.unwrap().items().len(), 2);
    let pickup = f.services.rentals.pickup(&customer, mine.id, Vec::new(), None).await;
    assert!(matches!(pickup, Err(ServiceError::Forbidden(_))));
    let for_someone = NewRental { customer_id: Some(admin.user_id.as_uuid()), ..rental(product_id, 1, start, 1, None) };
    let refused = f.services.rentals.create(&customer, for_someone).await;
    assert!(matches!(refused, Err(ServiceError::Forbidden(_))));

    // Cancelling frees the stock and voids the invoice in the same unit of work.
    let cancelled = f.services.rentals.cancel(&customer, mine.id, None).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let detail = f.services.rentals.get(&customer, mine.id).await.unwrap();
    assert_eq!(detail.invoice.unwrap().status, "void");
    assert!(detail.lines.iter().all(|l| !l.holds_stock));
    let illegal = f.services.rentals.confirm(&customer, mine.id, None).await.unwrap_err();
    assert!(matches!(illegal, ServiceError::Invalid(rental_domain::DomainError::IllegalTransition { .. })));
}

/// While a product's usage is being recorded (here: an import holding its usage lock, uncommitted), a
/// reservation of that product goes through, and so does the reservation whose commit makes the next recording
/// due: the recording runs in a task of its own, waits for the lock, and records every line once it is free.
/// PostgreSQL only: SQLite's one writer makes every write wait for any other, by design.
#[tokio::test]
async fn a_reservation_waits_neither_for_a_usage_recording_nor_for_the_one_it_makes_due() {
    use rental_domain::OrderStatus;
    use rental_repo::{AnalyticsRepo, AnalyticsStore, ImportedLine, ImportedOrder, OrderImporter};

    let f = fixture().await;
    if f.db.backend() != rental_repo::Backend::Postgres {
        eprintln!("skipped on SQLite: its one write lock serialises every write by design");
        return;
    }
    let (_, staff, customer) = people(&f.services).await;
    let (product_id, _) = camera(&f.services, &staff).await;
    let start = f.clock.now() + Duration::days(1);
    // The first reservation's recording is due at once (nothing was recorded yet); read it back, which waits
    // for that recording.
    f.services.rentals.create(&customer, rental(product_id, 1, start, 1, None)).await.unwrap();
    let analytics = AnalyticsRepo::new(f.db.clone());
    assert_eq!(analytics.popular_products(10, None, None).await.unwrap()[0].rental_count, 1);

    // An import of an order of the product holds its usage lock until it commits.
    let imported = ImportedOrder {
        customer_id: customer.user_id.as_uuid(),
        status: OrderStatus::Reserved,
        currency: Currency::parse("EUR").unwrap(),
        tax_rate_bp: 1_000,
        created_at: f.clock.now(),
        picked_up_at: None,
        returned_at: None,
        notes: None,
        lines: vec![ImportedLine {
            product_id,
            quantity: 1,
            starts_at: start + Duration::days(10),
            ends_at: start + Duration::days(11),
            terms: day_rate_terms(),
        }],
        invoice: None,
    };
    let import = f.db.begin().await.unwrap();
    OrderImporter::new(f.db.clone()).import(&import, vec![imported]).await.unwrap();

    // A second has passed since the last recording, so this reservation's commit makes the next one due; the
    // recording then waits for the import's lock. Neither holds the reservation up (before, it waited for
    // both: the importer locked the product's row, and the request ran the recording itself).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let reserved = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        f.services.rentals.create(&customer, rental(product_id, 1, start + Duration::days(3), 1, None)),
    )
    .await
    .expect("the reservation waited for the usage lock");
    reserved.unwrap();

    import.commit().await.unwrap();
    let ranking = analytics.popular_products(10, None, None).await.unwrap();
    assert_eq!((ranking[0].product_id, ranking[0].rental_count), (product_id, 3), "every line recorded once");
}
