//! The dashboard's counters on a real database (SQLite by default, PostgreSQL when TEST_DATABASE_URL is set):
//! after every kind of write that changes a counted figure, the dashboard read from the counters equals the one
//! computed from the tables (`dashboard_from_tables`, the aggregates it replaced); a unit that rolls back leaves
//! the counters as they were; concurrent writers end with exact counts; the repair recomputes drifted counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use common::connect;
use rental_domain::pricing::{OrderTotals, ProductTerms, RateCard};
use rental_domain::{
    CategoryName, Currency, Email, FullName, InvoiceStatus, Money, OrderStatus, Role, UnitCondition, UserId,
};
use rental_repo::{
    AnalyticsRepo, CatalogueRepo, CatalogueStore, DashboardCounters, DashboardRecord, Database, ImportedInvoice,
    ImportedLine, ImportedOrder, LineTerms, NewCategoryRecord, NewLocationRecord, NewOrderLineRecord, NewOrderRecord,
    NewProductRecord, NewUnitRecord, NewUserRecord, OrderChange, OrderImporter, OrderRepo, RepoError, UserChanges,
    UserRepo, UserStore,
};
use rental_testkit::TestDb;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

fn terms() -> ProductTerms {
    ProductTerms {
        rates: RateCard::new(Money::new(1_000, eur()), None, None).unwrap(),
        deposit_per_unit: Money::zero(eur()),
        late_fee_per_day: Money::zero(eur()),
        buffer_minutes: 0,
    }
}

fn new_user(name: &str, is_active: bool, is_superuser: bool) -> NewUserRecord {
    NewUserRecord {
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        full_name: FullName::parse(name).unwrap(),
        password_hash: None,
        is_active,
        is_superuser,
        roles: vec![Role::Customer],
    }
}

/// The dashboard from the counters and from the tables at the same instant: they must be equal.
async fn assert_counted_right(db: &Database, when: &str) -> DashboardRecord {
    let analytics = AnalyticsRepo::new(db.clone());
    let at = now();
    let counted = analytics.dashboard_from_counters(at).await.unwrap();
    let aggregated = analytics.dashboard_from_tables(at).await.unwrap();
    assert_eq!(counted, aggregated, "{when}: the counters' dashboard differs from the tables'");
    counted
}

fn orders_in(record: &DashboardRecord, status: OrderStatus) -> i64 {
    record.orders_by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n)
}

struct Shop {
    db: Database,
    users: UserRepo,
    orders: OrderRepo,
    product: Uuid,
    customer: Uuid,
}

/// A customer and a product with eight tracked units at 10.00 a day.
async fn shop(test_db: &TestDb) -> Shop {
    let db = connect(test_db).await;
    let users = UserRepo::new(db.clone());
    let catalogue = CatalogueRepo::new(db.clone());
    let (customer, product) = db
        .write(async |uow| {
            let at = now();
            let customer = users.create(uow, new_user("customer", true, false), at).await?;
            let category = NewCategoryRecord { name: CategoryName::parse("Kit").unwrap(), description: None };
            let category = catalogue.create_category(uow, category, at).await?;
            let location = NewLocationRecord { name: "Depot".into(), address: None };
            let location = catalogue.create_location(uow, location, at).await?;
            let product = NewProductRecord {
                category_id: category.id,
                sku: "KIT-1".into(),
                name: "Kit".into(),
                description: None,
                terms: terms(),
                is_active: true,
            };
            let product = catalogue.create_product(uow, product, at).await?;
            let units = (0..8)
                .map(|i| NewUnitRecord {
                    serial_number: format!("KIT-1-{i}"),
                    condition: UnitCondition::Good,
                    location_id: location.id,
                })
                .collect();
            catalogue.add_units(uow, product.id, units, at).await?;
            Ok::<_, RepoError>((customer.id.as_uuid(), product.id))
        })
        .await
        .unwrap();
    Shop { orders: OrderRepo::new(db.clone()), users, db, product, customer }
}

impl Shop {
    /// A one-item order from `start` for `days` days.
    fn order(&self, status: OrderStatus, start: DateTime<Utc>, days: i64) -> NewOrderRecord {
        let priced = terms().price(days, 1).unwrap();
        NewOrderRecord {
            customer_id: self.customer,
            status,
            totals: OrderTotals::of(eur(), [&priced], 0).unwrap(),
            tax_rate_bp: 0,
            notes: None,
            created_by: None,
            lines: vec![NewOrderLineRecord {
                product_id: self.product,
                quantity: 1,
                starts_at: start,
                ends_at: start + Duration::days(days),
                terms: LineTerms::priced(&terms(), &priced).unwrap(),
                description: "Kit".into(),
            }],
        }
    }

    async fn place(&self, status: OrderStatus, start: DateTime<Utc>, days: i64) -> Uuid {
        let new = self.order(status, start, days);
        self.db.write(async |uow| self.orders.create_order(uow, &new, now()).await).await.unwrap().id
    }

    fn change(&self) -> OrderChange {
        OrderChange { actor: None, note: None, at: now() }
    }
}

#[tokio::test]
async fn the_counters_follow_every_kind_of_write() {
    let test_db = TestDb::new().await;
    let shop = shop(&test_db).await;
    let (db, users, orders) = (&shop.db, &shop.users, &shop.orders);
    assert_counted_right(db, "after the fixture").await;

    // Users: single creations, a bulk creation, a trusted bulk import.
    let mut ids: Vec<UserId> = Vec::new();
    for (i, (active, superuser)) in [(true, false), (false, false), (true, true), (false, true)].into_iter().enumerate()
    {
        let user = new_user(&format!("user{i}"), active, superuser);
        ids.push(db.write(async |uow| users.create(uow, user, now()).await).await.unwrap().id);
    }
    let bulk: Vec<_> = (0..40).map(|i| new_user(&format!("bulk{i}"), i % 3 != 0, i % 7 == 0)).collect();
    db.write(async |uow| users.bulk_create(uow, bulk, now()).await).await.unwrap();
    let imported: Vec<_> = (0..25).map(|i| new_user(&format!("import{i}"), i % 2 == 0, i == 3)).collect();
    db.write(async |uow| users.bulk_import(uow, imported, now()).await).await.unwrap();
    let record = assert_counted_right(db, "after creating users").await;
    assert_eq!(record.users_total, 1 + 4 + 40 + 25);

    // Deactivate, promote, both at once, a change that leaves the flags as they are, a change of name only.
    let update = async |id: UserId, changes: UserChanges| {
        db.write(async |uow| users.update(uow, id, changes, now()).await).await.unwrap();
    };
    update(ids[0], UserChanges { is_active: Some(false), ..UserChanges::default() }).await;
    update(ids[1], UserChanges { is_superuser: Some(true), ..UserChanges::default() }).await;
    update(ids[2], UserChanges { is_active: Some(false), is_superuser: Some(false), ..UserChanges::default() }).await;
    update(ids[3], UserChanges { is_active: Some(false), is_superuser: Some(true), ..UserChanges::default() }).await;
    update(ids[1], UserChanges { full_name: Some(FullName::parse("Renamed").unwrap()), ..UserChanges::default() })
        .await;
    assert_counted_right(db, "after deactivating and promoting").await;

    // Deletes: a superuser, an inactive user; an unknown id changes nothing.
    for id in [ids[1], ids[3]] {
        db.write(async |uow| users.delete(uow, id).await).await.unwrap();
    }
    let missing = db.write(async |uow| users.delete(uow, UserId::new()).await).await;
    assert!(matches!(missing, Err(RepoError::NotFound)), "{missing:?}");
    let record = assert_counted_right(db, "after deleting users").await;
    assert_eq!(record.users_total, 1 + 4 + 40 + 25 - 2);

    // Orders: quotes, reservations (one running now, one overdue), and the whole lifecycle.
    let start = now() + Duration::days(2);
    let quote = shop.place(OrderStatus::Quote, start, 2).await;
    let to_cancel = shop.place(OrderStatus::Quote, start, 2).await;
    let running = shop.place(OrderStatus::Reserved, now() - Duration::hours(1), 3).await;
    let late = shop.place(OrderStatus::Reserved, now() - Duration::days(3), 1).await;
    let done = shop.place(OrderStatus::Reserved, now() - Duration::days(2), 1).await;
    assert_counted_right(db, "after placing orders").await;
    db.write(async |uow| orders.confirm(uow, quote, &shop.change()).await).await.unwrap();
    db.write(async |uow| orders.cancel(uow, to_cancel, &shop.change()).await).await.unwrap();
    for id in [running, late, done] {
        db.write(async |uow| orders.pickup(uow, id, &[], &shop.change()).await).await.unwrap();
    }
    let record = assert_counted_right(db, "after confirming, cancelling and picking up").await;
    assert_eq!((record.orders_overdue, record.held_now), (2, 1), "two overdue, one held now");
    db.write(async |uow| orders.return_items(uow, done, &[], &shop.change()).await).await.unwrap();
    let record = assert_counted_right(db, "after a return").await;
    assert_eq!(orders_in(&record, OrderStatus::Returned), 1);
    db.write(async |uow| orders.close(uow, done, &shop.change()).await).await.unwrap();
    let record = assert_counted_right(db, "after closing").await;
    assert_eq!(
        record.orders_by_status.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        // quote, reserved, picked_up, returned, closed, cancelled
        [0, 1, 2, 0, 1, 1]
    );
    // What is held now follows the transitions that start and end a hold: a reservation running now, its
    // cancellation, and the return of the order picked up now.
    let second = shop.place(OrderStatus::Reserved, now() - Duration::hours(2), 1).await;
    assert_eq!(assert_counted_right(db, "after a second running reservation").await.held_now, 2);
    db.write(async |uow| orders.cancel(uow, second, &shop.change()).await).await.unwrap();
    assert_eq!(assert_counted_right(db, "after cancelling it").await.held_now, 1);
    db.write(async |uow| orders.return_items(uow, running, &[], &shop.change()).await).await.unwrap();
    assert_eq!(assert_counted_right(db, "after returning the running order").await.held_now, 0);

    // The importer: historical orders in every status, one batch.
    let line = |days_ago: i64| ImportedLine {
        product_id: shop.product,
        quantity: 1,
        starts_at: now() - Duration::days(days_ago),
        ends_at: now() - Duration::days(days_ago - 1),
        terms: terms(),
    };
    let batch: Vec<ImportedOrder> = [
        OrderStatus::Closed,
        OrderStatus::Closed,
        OrderStatus::Returned,
        OrderStatus::Cancelled,
        OrderStatus::Quote,
        OrderStatus::PickedUp,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, status)| ImportedOrder {
        customer_id: shop.customer,
        status,
        currency: eur(),
        tax_rate_bp: 0,
        created_at: now() - Duration::days(40 + i as i64),
        picked_up_at: None,
        returned_at: None,
        notes: None,
        lines: vec![line(30 + i as i64)],
        invoice: (status != OrderStatus::Quote).then(|| ImportedInvoice {
            status: InvoiceStatus::Paid,
            issued_at: Some(now()),
            charges: vec![],
        }),
    })
    .collect();
    let importer = OrderImporter::new(db.clone());
    db.write(async |uow| importer.import(uow, batch).await).await.unwrap();
    let record = assert_counted_right(db, "after an import").await;
    assert_eq!(orders_in(&record, OrderStatus::Closed), 3);
    assert_eq!(record.held_now, 0, "the imported orders ended long ago");
    assert!(!record.revenue.is_empty(), "the imported invoices are revenue of today");
}

#[tokio::test]
async fn a_unit_that_rolls_back_leaves_the_counters_as_they_were() {
    let test_db = TestDb::new().await;
    let shop = shop(&test_db).await;
    let (db, users, orders) = (&shop.db, &shop.users, &shop.orders);
    let quote = shop.place(OrderStatus::Quote, now() + Duration::days(2), 2).await;
    let before = assert_counted_right(db, "before").await;

    // Writes that succeed inside a unit that then fails: nothing of them may stay.
    let new = shop.order(OrderStatus::Reserved, now() + Duration::days(1), 1);
    let failed: Result<(), RepoError> = db
        .write(async |uow| {
            users.create(uow, new_user("ghost", true, true), now()).await?;
            users.bulk_create(uow, vec![new_user("ghost2", true, false)], now()).await?;
            orders.create_order(uow, &new, now()).await?;
            orders.confirm(uow, quote, &shop.change()).await?;
            Err(RepoError::NotFound)
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(assert_counted_right(db, "after the rollback").await, before);

    // A write that fails on a constraint: deleting a customer who has orders.
    let refused = db.write(async |uow| users.delete(uow, UserId::from_uuid(shop.customer)).await).await;
    assert!(refused.is_err(), "a customer with orders cannot be deleted: {refused:?}");
    // An illegal transition.
    let illegal = db.write(async |uow| orders.close(uow, quote, &shop.change()).await).await;
    assert!(illegal.is_err(), "closing a quote is illegal: {illegal:?}");
    assert_eq!(assert_counted_right(db, "after the refused writes").await, before);
    assert_eq!(orders_in(&before, OrderStatus::Quote), 1);

    // A failed insert (a taken e-mail) in a unit that is committed anyway: SQLite goes on after the error,
    // PostgreSQL refuses the rest of the transaction; either way the failed user is not counted.
    let uow = db.begin().await.unwrap();
    let taken = users.create(&uow, new_user("customer", true, true), now()).await;
    assert!(matches!(taken, Err(RepoError::Conflict { .. })), "{taken:?}");
    let taken = users.bulk_import(&uow, vec![new_user("customer", true, true)], now()).await;
    assert!(taken.is_err(), "{taken:?}");
    let _ = uow.commit().await;
    assert_eq!(assert_counted_right(db, "after failed inserts in a committed unit").await, before);
}

#[tokio::test]
async fn concurrent_writers_end_with_exact_counts() {
    let test_db = TestDb::new().await;
    let db = connect(&test_db).await;
    let users = UserRepo::new(db.clone());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (db, users) = (db.clone(), users.clone());
            tokio::spawn(async move {
                let user = new_user(&format!("racer{i}"), i % 2 == 0, i % 4 == 0);
                db.write(async |uow| users.create(uow, user, now()).await).await
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        created.push(task.await.unwrap().unwrap().id);
    }
    // Half of them deactivated at once, concurrently too.
    let tasks: Vec<_> = created
        .iter()
        .step_by(2)
        .map(|id| {
            let (db, users, id) = (db.clone(), users.clone(), *id);
            tokio::spawn(async move {
                let changes = UserChanges { is_active: Some(false), ..UserChanges::default() };
                db.write(async |uow| users.update(uow, id, changes, now()).await).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let record = assert_counted_right(&db, "after concurrent writes").await;
    assert_eq!((record.users_total, record.users_active, record.superusers), (32, 0, 8));
}

#[tokio::test]
async fn the_repair_recomputes_counters_that_drifted() {
    let test_db = TestDb::new().await;
    let shop = shop(&test_db).await;
    shop.place(OrderStatus::Quote, now() + Duration::days(2), 2).await;
    let before = assert_counted_right(&shop.db, "before").await;
    // Writes beside the repositories: the counters cannot know of them.
    shop.users.execute_raw("UPDATE users SET is_superuser = TRUE").await.unwrap();
    shop.users.execute_raw("UPDATE dashboard_counters SET value = value + 5").await.unwrap();
    let analytics = AnalyticsRepo::new(shop.db.clone());
    assert_ne!(analytics.dashboard_from_counters(now()).await.unwrap(), before, "the counters drifted");
    let counters = DashboardCounters::new(shop.db.clone());
    counters.repair().await.unwrap();
    let after = assert_counted_right(&shop.db, "after the repair").await;
    assert_eq!((after.users_total, after.superusers), (1, 1));
    // The repair writes every counter in slot 0; later writes add to their own slots.
    let totals = counters.totals().await.unwrap();
    assert_eq!(totals.get("users_total"), Some(&1));
    assert_eq!(totals.get("orders_quote"), Some(&1));
    shop.place(OrderStatus::Quote, now() + Duration::days(2), 2).await;
    assert_eq!(orders_in(&assert_counted_right(&shop.db, "after a write").await, OrderStatus::Quote), 2);
}
