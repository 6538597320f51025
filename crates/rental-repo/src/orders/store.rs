//! The persistence contract of orders: what the rental service relies on, implemented by [`OrderRepo`].

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::records::*;
use crate::query::{ListQuery, Listing};
use crate::{OrderRepo, RepoResult, UnitOfWork};

/// Orders, their stock holds and maintenance blocks, as the services need them. Writes take the caller's
/// [`UnitOfWork`] so that they join the writes of other stores in one transaction.
///
/// The contract every implementation keeps (checked by `rental_repo::conformance`, which runs on SQLite and
/// PostgreSQL): a reservation never leaves a product overbooked, whatever runs concurrently; a refused
/// reservation writes nothing; every transition follows the domain's state machine and is written to the
/// event log; lists honour their whitelist and paginate without gaps or repeats.
pub trait OrderStore: Send + Sync {
    /// See [`OrderRepo::create_order`].
    fn create_order(
        &self,
        uow: &UnitOfWork,
        new: &NewOrderRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<OrderRecord>> + Send;
    /// See [`OrderRepo::confirm`].
    fn confirm(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        change: &OrderChange,
    ) -> impl Future<Output = RepoResult<Transitioned>> + Send;
    /// See [`OrderRepo::cancel`].
    fn cancel(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        change: &OrderChange,
    ) -> impl Future<Output = RepoResult<Transitioned>> + Send;
    /// See [`OrderRepo::pickup`].
    fn pickup(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        chosen: &[LineUnits],
        change: &OrderChange,
    ) -> impl Future<Output = RepoResult<Transitioned>> + Send;
    /// See [`OrderRepo::return_items`].
    fn return_items(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        returns: &[UnitReturn],
        change: &OrderChange,
    ) -> impl Future<Output = RepoResult<(Transitioned, Vec<ReturnedLine>)>> + Send;
    /// See [`OrderRepo::close`].
    fn close(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        change: &OrderChange,
    ) -> impl Future<Output = RepoResult<Transitioned>> + Send;
    /// See [`OrderRepo::add_maintenance`].
    fn add_maintenance(
        &self,
        uow: &UnitOfWork,
        new: NewMaintenanceRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<MaintenanceRecord>> + Send;
    /// See [`OrderRepo::suggest_free_periods`].
    fn suggest_free_periods(
        &self,
        shortages: Vec<Shortage>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<Vec<Shortage>>> + Send;
    /// See [`OrderRepo::find_order`].
    fn find_order(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<OrderRecord>>> + Send;
    /// See [`OrderRepo::order_detail`].
    fn order_detail(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<OrderDetail>>> + Send;
    /// See [`OrderRepo::order_product_ids`].
    fn order_product_ids(&self, id: Uuid) -> impl Future<Output = RepoResult<BTreeSet<Uuid>>> + Send;
    /// See [`OrderRepo::events`].
    fn events(&self, id: Uuid) -> impl Future<Output = RepoResult<Vec<OrderEventRecord>>> + Send;
    /// See [`OrderRepo::list_orders`].
    fn list_orders(
        &self,
        query: &ListQuery,
        now: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<Listing<OrderRecord>>> + Send;
    /// See [`OrderRepo::product_holds`].
    fn product_holds(
        &self,
        product_id: Uuid,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<StockHolds>> + Send;
    /// See [`OrderRepo::product_terms`].
    fn product_terms(&self, ids: &BTreeSet<Uuid>) -> impl Future<Output = RepoResult<Vec<ProductTermsRecord>>> + Send;
    /// See [`OrderRepo::active_user_exists`].
    fn active_user_exists(&self, id: Uuid) -> impl Future<Output = RepoResult<bool>> + Send;
    /// See [`OrderRepo::count_overbooked`].
    fn count_overbooked(&self) -> impl Future<Output = RepoResult<u64>> + Send;
}

impl OrderStore for OrderRepo {
    async fn create_order(&self, uow: &UnitOfWork, new: &NewOrderRecord, at: DateTime<Utc>) -> RepoResult<OrderRecord> {
        OrderRepo::create_order(self, uow, new, at).await
    }
    async fn confirm(&self, uow: &UnitOfWork, id: Uuid, change: &OrderChange) -> RepoResult<Transitioned> {
        OrderRepo::confirm(self, uow, id, change).await
    }
    async fn cancel(&self, uow: &UnitOfWork, id: Uuid, change: &OrderChange) -> RepoResult<Transitioned> {
        OrderRepo::cancel(self, uow, id, change).await
    }
    async fn pickup(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        chosen: &[LineUnits],
        change: &OrderChange,
    ) -> RepoResult<Transitioned> {
        OrderRepo::pickup(self, uow, id, chosen, change).await
    }
    async fn return_items(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        returns: &[UnitReturn],
        change: &OrderChange,
    ) -> RepoResult<(Transitioned, Vec<ReturnedLine>)> {
        OrderRepo::return_items(self, uow, id, returns, change).await
    }
    async fn close(&self, uow: &UnitOfWork, id: Uuid, change: &OrderChange) -> RepoResult<Transitioned> {
        OrderRepo::close(self, uow, id, change).await
    }
    async fn add_maintenance(
        &self,
        uow: &UnitOfWork,
        new: NewMaintenanceRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<MaintenanceRecord> {
        OrderRepo::add_maintenance(self, uow, new, at).await
    }
    async fn suggest_free_periods(&self, shortages: Vec<Shortage>, now: DateTime<Utc>) -> RepoResult<Vec<Shortage>> {
        OrderRepo::suggest_free_periods(self, shortages, now).await
    }
    async fn find_order(&self, id: Uuid) -> RepoResult<Option<OrderRecord>> {
        OrderRepo::find_order(self, id).await
    }
    async fn order_detail(&self, id: Uuid) -> RepoResult<Option<OrderDetail>> {
        OrderRepo::order_detail(self, id).await
    }
    async fn events(&self, id: Uuid) -> RepoResult<Vec<OrderEventRecord>> {
        OrderRepo::events(self, id).await
    }
    async fn list_orders(&self, query: &ListQuery, now: DateTime<Utc>) -> RepoResult<Listing<OrderRecord>> {
        OrderRepo::list_orders(self, query, now).await
    }
    async fn product_holds(
        &self,
        product_id: Uuid,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<StockHolds> {
        OrderRepo::product_holds(self, product_id, from, until).await
    }
    async fn order_product_ids(&self, id: Uuid) -> RepoResult<BTreeSet<Uuid>> {
        OrderRepo::order_product_ids(self, id).await
    }
    async fn product_terms(&self, ids: &BTreeSet<Uuid>) -> RepoResult<Vec<ProductTermsRecord>> {
        OrderRepo::product_terms(self, ids).await
    }
    async fn active_user_exists(&self, id: Uuid) -> RepoResult<bool> {
        OrderRepo::active_user_exists(self, id).await
    }
    async fn count_overbooked(&self) -> RepoResult<u64> {
        OrderRepo::count_overbooked(self).await
    }
}
