//! What the repository tests share: a pool on the test's database, and the catalogue store with each write in a
//! unit of work of its own, for the tests that set a catalogue up one write at a time (reads go straight to it).
#![allow(dead_code, clippy::unwrap_used)]

use std::ops::Deref;

use chrono::Utc;
use rental_repo::{
    CatalogueRepo, CatalogueStore, CategoryChanges, CategoryRecord, Database, DatabaseConfig, LocationRecord,
    NewCategoryRecord, NewLocationRecord, NewProductRecord, NewUnitRecord, ProductChanges, ProductRecord, RepoResult,
    StockLevelRecord, UnitRecord,
};
use rental_testkit::TestDb;
use uuid::Uuid;

/// A small pool on the test's database.
pub async fn connect(test_db: &TestDb) -> Database {
    let config = DatabaseConfig {
        max_connections: Some(5),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    Database::connect(&config).await.unwrap()
}

/// [`CatalogueRepo`] whose writes each run in a unit of their own, stamped now.
#[derive(Debug, Clone)]
pub struct Catalogue(CatalogueRepo);

impl Deref for Catalogue {
    type Target = CatalogueRepo;

    fn deref(&self) -> &CatalogueRepo {
        &self.0
    }
}

impl Catalogue {
    pub fn new(db: Database) -> Self {
        Self(CatalogueRepo::new(db))
    }

    fn db(&self) -> &Database {
        self.0.database()
    }

    pub async fn create_category(&self, new: NewCategoryRecord) -> RepoResult<CategoryRecord> {
        self.db().write(async |uow| self.0.create_category(uow, new, Utc::now()).await).await
    }

    pub async fn update_category(&self, id: Uuid, changes: CategoryChanges) -> RepoResult<CategoryRecord> {
        self.db().write(async |uow| self.0.update_category(uow, id, changes, Utc::now()).await).await
    }

    pub async fn delete_category(&self, id: Uuid) -> RepoResult<()> {
        self.db().write(async |uow| self.0.delete_category(uow, id).await).await
    }

    pub async fn create_location(&self, new: NewLocationRecord) -> RepoResult<LocationRecord> {
        self.db().write(async |uow| self.0.create_location(uow, new, Utc::now()).await).await
    }

    pub async fn create_product(&self, new: NewProductRecord) -> RepoResult<ProductRecord> {
        self.db().write(async |uow| self.0.create_product(uow, new, Utc::now()).await).await
    }

    pub async fn update_product(&self, id: Uuid, changes: ProductChanges) -> RepoResult<ProductRecord> {
        self.db().write(async |uow| self.0.update_product(uow, id, changes, Utc::now()).await).await
    }

    pub async fn delete_product(&self, id: Uuid) -> RepoResult<()> {
        self.db().write(async |uow| self.0.delete_product(uow, id).await).await
    }

    pub async fn add_units(&self, product_id: Uuid, units: Vec<NewUnitRecord>) -> RepoResult<Vec<UnitRecord>> {
        self.db().write(async |uow| self.0.add_units(uow, product_id, units, Utc::now()).await).await
    }

    pub async fn set_stock_level(
        &self,
        product_id: Uuid,
        location_id: Uuid,
        quantity: i32,
    ) -> RepoResult<StockLevelRecord> {
        self.db()
            .write(async |uow| self.0.set_stock_level(uow, product_id, location_id, quantity, Utc::now()).await)
            .await
    }
}
