//! The persistence contract of the catalogue: what the catalogue service relies on, implemented by
//! [`crate::CatalogueRepo`].

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::records::*;
use crate::query::{ListQuery, Listing};
use crate::{RepoResult, UnitOfWork};

/// Categories, locations, products with their individually tracked units, and bulk stock levels. Writes take
/// the caller's [`UnitOfWork`]; reads use the pool.
///
/// The contract every implementation keeps (checked by `rental_repo::conformance` on SQLite and PostgreSQL):
/// slugs, location names, SKUs and serial numbers are unique ([`crate::RepoError::Conflict`]); a product
/// needs an existing category, a unit or stock level an existing product and location; adding units is all or
/// nothing; a product's detail and list entries count its units and bulk quantity per location; lists honour
/// their whitelist ([`crate::product_list_spec`]) including the availability window.
pub trait CatalogueStore: Send + Sync {
    /// Inserts a category created `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when its slug is taken.
    fn create_category(
        &self,
        uow: &UnitOfWork,
        new: NewCategoryRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<CategoryRecord>> + Send;

    /// A category by id.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn find_category(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<CategoryRecord>>> + Send;

    /// Every category by name (at most `SMALL_LIST_MAX`, 1,000).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn list_categories(&self) -> impl Future<Output = RepoResult<Vec<CategoryRecord>>> + Send;

    /// Applies `changes`, stamping `updated_at` with `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`]; [`crate::RepoError::Conflict`] when the new slug is taken.
    fn update_category(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        changes: CategoryChanges,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<CategoryRecord>> + Send;

    /// Deletes a category.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`]; [`crate::RepoError::Conflict`] while products belong to it.
    fn delete_category(&self, uow: &UnitOfWork, id: Uuid) -> impl Future<Output = RepoResult<()>> + Send;

    /// Inserts a location created `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when the name is taken.
    fn create_location(
        &self,
        uow: &UnitOfWork,
        new: NewLocationRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<LocationRecord>> + Send;

    /// A location by id.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn find_location(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<LocationRecord>>> + Send;

    /// Every location by name (at most `SMALL_LIST_MAX`, 1,000).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn list_locations(&self) -> impl Future<Output = RepoResult<Vec<LocationRecord>>> + Send;

    /// Which of `ids` name no location, sorted.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn missing_locations(&self, ids: &[Uuid]) -> impl Future<Output = RepoResult<Vec<Uuid>>> + Send;

    /// Inserts a product created `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when the SKU is taken or the category does not exist.
    fn create_product(
        &self,
        uow: &UnitOfWork,
        new: NewProductRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<ProductRecord>> + Send;

    /// A product by id.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn find_product(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<ProductRecord>>> + Send;

    /// A product with its category and stock per location (the sea-orm store: at most five statements,
    /// whatever the number of units and locations).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a query fails.
    fn product_detail(&self, id: Uuid) -> impl Future<Output = RepoResult<Option<ProductDetail>>> + Send;

    /// Applies `changes`, stamping `updated_at` with `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`]; [`crate::RepoError::Conflict`] when the SKU is taken or the category
    /// does not exist.
    fn update_product(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        changes: ProductChanges,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<ProductRecord>> + Send;

    /// Deletes a product; its units and stock levels go with it.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`]; [`crate::RepoError::Conflict`] while orders refer to it.
    fn delete_product(&self, uow: &UnitOfWork, id: Uuid) -> impl Future<Output = RepoResult<()>> + Send;

    /// One page of products matching `query`, each with its category and stock summary (the sea-orm store: at
    /// most four statements whatever the page size and the filters; the availability window is part of the
    /// page's WHERE clause, not extra statements).
    ///
    /// # Errors
    /// [`crate::RepoError::InvalidQuery`] for a bad availability window; [`crate::RepoError::Database`] when a
    /// query fails.
    fn list_products(&self, query: &ListQuery) -> impl Future<Output = RepoResult<Listing<ProductListItem>>> + Send;

    /// Adds units to a product, all or nothing, created `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when a serial number is taken or repeats, or the product or a location
    /// does not exist; nothing is written then.
    fn add_units(
        &self,
        uow: &UnitOfWork,
        product_id: Uuid,
        units: Vec<NewUnitRecord>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<Vec<UnitRecord>>> + Send;

    /// Sets the bulk quantity of a product at a location (insert or update), stamped `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when the product or the location does not exist.
    fn set_stock_level(
        &self,
        uow: &UnitOfWork,
        product_id: Uuid,
        location_id: Uuid,
        quantity: i32,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<StockLevelRecord>> + Send;
}
