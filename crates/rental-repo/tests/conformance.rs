//! The store traits' conformance suite (`rental_repo::conformance`) run on the sea-orm repositories (users and
//! refresh tokens, catalogue, orders and billing, jobs, payments): on SQLite by default, on PostgreSQL when
//! TEST_DATABASE_URL is set, a fresh database per check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rental_repo::conformance;
use rental_repo::{
    BillingRepo, CatalogueRepo, Database, DatabaseConfig, JobRepo, OrderRepo, PaymentRepo, RefreshTokenRepo, UserRepo,
};
use rental_testkit::TestDb;

async fn stores() -> (TestDb, Database, Arc<OrderRepo>, Arc<BillingRepo>) {
    let test_db = TestDb::new().await;
    let config = DatabaseConfig {
        max_connections: Some(20),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    let db = Database::connect(&config).await.unwrap();
    let (orders, billing) = (Arc::new(OrderRepo::new(db.clone())), Arc::new(BillingRepo::new(db.clone())));
    (test_db, db, orders, billing)
}

/// Runs a check of the users' contract on a fresh database with the sea-orm user and token stores.
macro_rules! users_check {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let (_test_db, db, _, _) = stores().await;
            conformance::$name(&db, &UserRepo::new(db.clone())).await;
        }
    };
    ($name:ident, tokens) => {
        #[tokio::test]
        async fn $name() {
            let (_test_db, db, _, _) = stores().await;
            conformance::$name(&db, &UserRepo::new(db.clone()), &RefreshTokenRepo::new(db.clone())).await;
        }
    };
}

/// Runs a check of the catalogue's contract on a fresh database with the sea-orm catalogue store.
macro_rules! catalogue_check {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let (_test_db, db, _, _) = stores().await;
            conformance::$name(&db, &CatalogueRepo::new(db.clone())).await;
        }
    };
}

/// Runs a check of the queue's contract on a fresh database with the sea-orm job store.
macro_rules! jobs_check {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let (_test_db, db, _, _) = stores().await;
            conformance::$name(&db, &JobRepo::new(db.clone())).await;
        }
    };
    ($name:ident, shared) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (_test_db, db, _, _) = stores().await;
            conformance::$name(&db, Arc::new(JobRepo::new(db.clone()))).await;
        }
    };
}

/// Runs a check of the payments' contract on a fresh database with the sea-orm payment store.
macro_rules! payments_check {
    ($name:ident) => {
        #[tokio::test]
        async fn $name() {
            let (_test_db, db, _, _) = stores().await;
            conformance::$name(&db, &PaymentRepo::new(db.clone())).await;
        }
    };
    ($name:ident, shared) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (_test_db, db, _, _) = stores().await;
            conformance::$name(&db, Arc::new(PaymentRepo::new(db.clone()))).await;
        }
    };
}

payments_check!(payments_are_recorded_and_found_by_their_keys);
payments_check!(a_stripe_object_belongs_to_one_row);
payments_check!(a_webhook_event_is_recorded_once);
payments_check!(concurrent_deliveries_record_an_event_once, shared);
payments_check!(refunds_are_numbered_against_their_payment);
payments_check!(stored_facts_move_the_invoice_paid_amount);
payments_check!(deposits_are_saved_and_read_back);
payments_check!(the_deposit_jobs_find_their_work);
payments_check!(refused_writes_leave_nothing);

jobs_check!(jobs_exist_if_and_only_if_their_unit_committed);
jobs_check!(claims_take_due_jobs_oldest_first);
jobs_check!(a_jobs_request_id_goes_from_enqueue_to_claim);
jobs_check!(only_the_holder_changes_a_running_job);
jobs_check!(expired_leases_are_rescued);
jobs_check!(admins_retry_and_cancel_and_see_counts);
jobs_check!(concurrent_claims_never_share_a_job, shared);
jobs_check!(schedule_slots_advance_once, shared);

#[tokio::test]
async fn reset_tokens_are_spent_once_before_they_expire() {
    let (_test_db, db, _, _) = stores().await;
    conformance::reset_tokens_are_spent_once_before_they_expire(&db, &RefreshTokenRepo::new(db.clone())).await;
}

catalogue_check!(categories_are_unique_by_slug_and_restrict_deletion);
catalogue_check!(products_are_created_updated_and_deleted_with_their_stock);
catalogue_check!(adding_units_is_all_or_nothing);
catalogue_check!(product_list_filters_sorts_and_searches);
catalogue_check!(keyset_pages_walk_every_product_once_in_order);

users_check!(users_are_created_found_changed_and_deleted);
users_check!(addresses_are_unique);
users_check!(batches_are_all_or_nothing_and_name_the_bad_row);
users_check!(keyset_pages_walk_every_user_once_in_order);
users_check!(offset_pages_report_totals);
users_check!(filters_and_search_narrow_the_list);
users_check!(a_rolled_back_unit_leaves_nothing, tokens);
users_check!(refresh_tokens_are_spent_once_and_revoked, tokens);

#[tokio::test]
async fn reservations_hold_stock_and_refusals_write_nothing() {
    let (_test_db, db, orders, billing) = stores().await;
    conformance::reservations_hold_stock_and_refusals_write_nothing(&db, orders.as_ref(), billing.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_overbook() {
    let (_test_db, db, orders, billing) = stores().await;
    conformance::concurrent_reservations_never_overbook(&db, orders, billing).await;
}

#[tokio::test]
async fn transitions_follow_the_lifecycle_and_are_logged() {
    let (_test_db, db, orders, billing) = stores().await;
    conformance::transitions_follow_the_lifecycle_and_are_logged(&db, orders.as_ref(), billing.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issued_invoices_get_gap_free_numbers() {
    let (_test_db, db, orders, billing) = stores().await;
    conformance::issued_invoices_get_gap_free_numbers(&db, orders, billing).await;
}

#[tokio::test]
async fn payments_are_accepted_up_to_the_amount_due() {
    let (_test_db, db, orders, billing) = stores().await;
    conformance::payments_are_accepted_up_to_the_amount_due(&db, orders.as_ref(), billing.as_ref()).await;
}
