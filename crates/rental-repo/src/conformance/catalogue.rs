//! The contract of [`CatalogueStore`].
// A conformance check reports a broken contract by panicking, with the store's error in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Deref;

use rental_domain::pricing::{ProductTerms, RateCard};
use rental_domain::{CategoryName, Currency, Money, UnitCondition};
use uuid::Uuid;

use super::now;
use crate::query::{Listing, Pagination};
use crate::{
    CatalogueStore, CategoryChanges, CategoryRecord, Database, LocationRecord, NewCategoryRecord, NewLocationRecord,
    NewProductRecord, NewUnitRecord, ProductChanges, ProductRecord, RepoError, RepoResult, StockLevelRecord,
    UnitRecord, product_list_spec,
};

/// The store with each write in a unit of its own (reads go straight to it).
#[derive(Debug)]
struct Writes<'a, C> {
    db: &'a Database,
    store: &'a C,
}

impl<C> Clone for Writes<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Writes<'_, C> {}

impl<C> Deref for Writes<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.store
    }
}

impl<C: CatalogueStore> Writes<'_, C> {
    async fn create_category(&self, new: NewCategoryRecord) -> RepoResult<CategoryRecord> {
        self.db.write(async |uow| self.store.create_category(uow, new, now()).await).await
    }

    async fn update_category(&self, id: Uuid, changes: CategoryChanges) -> RepoResult<CategoryRecord> {
        self.db.write(async |uow| self.store.update_category(uow, id, changes, now()).await).await
    }

    async fn delete_category(&self, id: Uuid) -> RepoResult<()> {
        self.db.write(async |uow| self.store.delete_category(uow, id).await).await
    }

    async fn create_location(&self, new: NewLocationRecord) -> RepoResult<LocationRecord> {
        self.db.write(async |uow| self.store.create_location(uow, new, now()).await).await
    }

    async fn create_product(&self, new: NewProductRecord) -> RepoResult<ProductRecord> {
        self.db.write(async |uow| self.store.create_product(uow, new, now()).await).await
    }

    async fn update_product(&self, id: Uuid, changes: ProductChanges) -> RepoResult<ProductRecord> {
        self.db.write(async |uow| self.store.update_product(uow, id, changes, now()).await).await
    }

    async fn delete_product(&self, id: Uuid) -> RepoResult<()> {
        self.db.write(async |uow| self.store.delete_product(uow, id).await).await
    }

    async fn add_units(&self, product_id: Uuid, units: Vec<NewUnitRecord>) -> RepoResult<Vec<UnitRecord>> {
        self.db.write(async |uow| self.store.add_units(uow, product_id, units, now()).await).await
    }

    async fn set_stock_level(
        &self,
        product_id: Uuid,
        location_id: Uuid,
        quantity: i32,
    ) -> RepoResult<StockLevelRecord> {
        self.db.write(async |uow| self.store.set_stock_level(uow, product_id, location_id, quantity, now()).await).await
    }
}

/// Query-string pairs as the list parsers take them.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// `amount` minor units of euros.
pub fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::parse("EUR").unwrap())
}

/// A new category named `name`, without description.
pub fn category(name: &str) -> NewCategoryRecord {
    NewCategoryRecord { name: CategoryName::parse(name).unwrap(), description: None }
}

/// A new active product: `per_day` a day, five days' price a week, a 50.00 deposit, a one-hour buffer.
pub fn product(category_id: Uuid, sku: &str, name: &str, per_day: i64) -> NewProductRecord {
    NewProductRecord {
        category_id,
        sku: sku.into(),
        name: name.into(),
        description: Some(format!("The {name}")),
        terms: ProductTerms {
            rates: RateCard::new(eur(per_day), Some(eur(per_day * 5)), None).unwrap(),
            deposit_per_unit: eur(5_000),
            late_fee_per_day: eur(0),
            buffer_minutes: 60,
        },
        is_active: true,
    }
}

/// A new unit in good condition.
pub fn unit(serial: &str, location_id: Uuid) -> NewUnitRecord {
    NewUnitRecord { serial_number: serial.into(), condition: UnitCondition::Good, location_id }
}

/// The SKUs of a product page, in order.
pub fn ids(listing: &Listing<crate::ProductListItem>) -> Vec<String> {
    listing.items().iter().map(|i| i.product.sku.clone()).collect()
}

/// Category slugs are unique (created or renamed to), categories list by name, and a category with products
/// cannot be deleted; unknown ids are [`RepoError::NotFound`].
pub async fn categories_are_unique_by_slug_and_restrict_deletion<C: CatalogueStore>(db: &Database, store: &C) {
    let repo = Writes { db, store };
    let tools = repo.create_category(category("Power Tools")).await.unwrap();
    assert_eq!(tools.slug, "power-tools");
    let err = repo.create_category(category("power   TOOLS")).await.unwrap_err();
    assert!(matches!(&err, RepoError::Conflict { message, .. } if message.contains("category")), "{err:?}");

    let other = repo.create_category(category("Ladders")).await.unwrap();
    let err = repo
        .update_category(
            other.id,
            CategoryChanges { name: Some(CategoryName::parse("Power-Tools").unwrap()), ..Default::default() },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Conflict { .. }), "{err:?}");
    let renamed = repo
        .update_category(
            other.id,
            CategoryChanges {
                name: Some(CategoryName::parse("Tall Ladders").unwrap()),
                description: Some(Some("x".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!((renamed.slug.as_str(), renamed.description.as_deref()), ("tall-ladders", Some("x")));
    assert_eq!(
        repo.list_categories().await.unwrap().iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Power Tools", "Tall Ladders"]
    );

    repo.create_product(product(tools.id, "DRL-1", "Drill", 1500)).await.unwrap();
    let err = repo.delete_category(tools.id).await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict { .. }), "a category with products stays: {err:?}");
    repo.delete_category(other.id).await.unwrap();
    assert!(matches!(repo.delete_category(other.id).await, Err(RepoError::NotFound)));
    assert!(matches!(repo.update_category(Uuid::now_v7(), CategoryChanges::default()).await, Err(RepoError::NotFound)));
}

/// Locations and SKUs are unique, a product needs its category, changes come back as stored, units and stock
/// levels show in the detail, and a deleted product takes its units with it.
pub async fn products_are_created_updated_and_deleted_with_their_stock<C: CatalogueStore>(db: &Database, store: &C) {
    let repo = Writes { db, store };
    let cat = repo.create_category(category("Tools")).await.unwrap();
    let depot = repo.create_location(NewLocationRecord { name: "Depot".into(), address: None }).await.unwrap();
    let err = repo.create_location(NewLocationRecord { name: "Depot".into(), address: None }).await.unwrap_err();
    assert!(matches!(&err, RepoError::Conflict { message, .. } if message.contains("location")), "{err:?}");

    let drill = repo.create_product(product(cat.id, "DRL-1", "Drill", 1500)).await.unwrap();
    assert_eq!(repo.find_product(drill.id).await.unwrap().unwrap(), drill);
    assert_eq!((drill.terms.currency().as_str(), drill.terms.rates.per_week), ("EUR", Some(eur(7500))));
    let err = repo.create_product(product(cat.id, "DRL-1", "Other", 100)).await.unwrap_err();
    assert!(matches!(&err, RepoError::Conflict { message, .. } if message.contains("SKU")), "{err:?}");
    let err = repo.create_product(product(Uuid::now_v7(), "X-1", "Orphan", 100)).await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict { .. }), "unknown category: {err:?}");

    let changed = repo
        .update_product(
            drill.id,
            ProductChanges {
                name: Some("Hammer drill".into()),
                description: Some(None),
                rates: Some(RateCard::new(eur(2000), None, Some(eur(30_000))).unwrap()),
                late_fee_per_day: Some(eur(250)),
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.name, "Hammer drill");
    assert_eq!(changed.description, None);
    assert_eq!(changed.terms.rates, RateCard::new(eur(2000), None, Some(eur(30_000))).unwrap());
    assert_eq!((changed.terms.deposit_per_unit, changed.terms.late_fee_per_day), (eur(5_000), eur(250)));
    assert!(!changed.is_active);

    let units = repo.add_units(drill.id, vec![unit("SN-1", depot.id), unit("SN-2", depot.id)]).await.unwrap();
    assert_eq!(units.len(), 2);
    repo.set_stock_level(drill.id, depot.id, 7).await.unwrap();
    repo.set_stock_level(drill.id, depot.id, 9).await.unwrap();
    let detail = repo.product_detail(drill.id).await.unwrap().unwrap();
    assert_eq!((detail.stock.units, detail.stock.bulk_quantity), (2, 9));

    repo.delete_product(drill.id).await.unwrap();
    assert!(repo.find_product(drill.id).await.unwrap().is_none());
    assert!(matches!(repo.delete_product(drill.id).await, Err(RepoError::NotFound)));
    // The units went with it: their serial numbers are free again.
    let again = repo.create_product(product(cat.id, "DRL-2", "Drill 2", 1500)).await.unwrap();
    repo.add_units(again.id, vec![unit("SN-1", depot.id)]).await.unwrap();
}

/// A batch of units with a taken serial number or an unknown location writes nothing; a good batch is
/// written whole.
pub async fn adding_units_is_all_or_nothing<C: CatalogueStore>(db: &Database, store: &C) {
    let repo = Writes { db, store };
    let cat = repo.create_category(category("Tools")).await.unwrap();
    let depot = repo.create_location(NewLocationRecord { name: "Depot".into(), address: None }).await.unwrap();
    let drill = repo.create_product(product(cat.id, "DRL-1", "Drill", 1500)).await.unwrap();
    repo.add_units(drill.id, vec![unit("TAKEN", depot.id)]).await.unwrap();

    let mut batch: Vec<_> = (0..1500).map(|i| unit(&format!("B-{i}"), depot.id)).collect();
    batch[1200] = unit("TAKEN", depot.id);
    let err = repo.add_units(drill.id, batch).await.unwrap_err();
    assert!(matches!(&err, RepoError::Conflict { message, .. } if message.contains("serial")), "{err:?}");
    let err = repo.add_units(drill.id, vec![unit("C-1", Uuid::now_v7())]).await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict { .. }), "unknown location: {err:?}");
    let detail = repo.product_detail(drill.id).await.unwrap().unwrap();
    assert_eq!(detail.stock.units, 1, "nothing of the failed batches was written");

    let batch: Vec<_> = (0..1500).map(|i| unit(&format!("B-{i}"), depot.id)).collect();
    assert_eq!(repo.add_units(drill.id, batch).await.unwrap().len(), 1500);
    assert_eq!(repo.product_detail(drill.id).await.unwrap().unwrap().stock.units, 1501);
}

/// The product list honours its whitelist: sorts, category, activity, price, location (units or positive
/// stock) and literal search; each item carries its category and stock summary.
pub async fn product_list_filters_sorts_and_searches<C: CatalogueStore>(db: &Database, store: &C) {
    let repo = Writes { db, store };
    let tools = repo.create_category(category("Tools")).await.unwrap();
    let party = repo.create_category(category("Party")).await.unwrap();
    let depot = repo.create_location(NewLocationRecord { name: "Depot".into(), address: None }).await.unwrap();
    let shop = repo.create_location(NewLocationRecord { name: "Shop".into(), address: None }).await.unwrap();
    let drill = repo.create_product(product(tools.id, "DRL-1", "Drill", 1500)).await.unwrap();
    let saw = repo.create_product(product(tools.id, "SAW-1", "Saw", 900)).await.unwrap();
    let tent = repo.create_product(product(party.id, "TNT-1", "Tent 50%", 5000)).await.unwrap();
    let old = repo.create_product(product(party.id, "OLD-1", "Old tent", 100)).await.unwrap();
    repo.update_product(old.id, ProductChanges { is_active: Some(false), ..Default::default() }).await.unwrap();
    repo.add_units(drill.id, vec![unit("D-1", depot.id)]).await.unwrap();
    repo.set_stock_level(tent.id, shop.id, 3).await.unwrap();
    repo.set_stock_level(saw.id, shop.id, 0).await.unwrap();

    let spec = product_list_spec();
    let list = |pairs: &[(&str, &str)]| {
        let query = spec.parse(&params(pairs)).unwrap();
        async move { repo.list_products(&query).await.unwrap() }
    };
    assert_eq!(ids(&list(&[]).await), ["OLD-1", "TNT-1", "SAW-1", "DRL-1"], "newest first by default");
    assert_eq!(ids(&list(&[("sort", "price_per_day")]).await), ["OLD-1", "SAW-1", "DRL-1", "TNT-1"]);
    assert_eq!(ids(&list(&[("sort", "-name")]).await), ["TNT-1", "SAW-1", "OLD-1", "DRL-1"]);
    assert_eq!(ids(&list(&[("category", &party.id.to_string())]).await), ["OLD-1", "TNT-1"]);
    assert_eq!(ids(&list(&[("is_active", "false")]).await), ["OLD-1"]);
    assert_eq!(ids(&list(&[("min_price", "900"), ("max_price", "1500")]).await), ["SAW-1", "DRL-1"]);
    assert_eq!(ids(&list(&[("location", &depot.id.to_string())]).await), ["DRL-1"]);
    assert_eq!(ids(&list(&[("location", &shop.id.to_string())]).await), ["TNT-1"], "zero stock does not count");
    assert_eq!(ids(&list(&[("q", "TENT")]).await), ["OLD-1", "TNT-1"]);
    assert_eq!(ids(&list(&[("q", "saw-")]).await), ["SAW-1"], "sku");
    assert_eq!(ids(&list(&[("q", "the drill")]).await), ["DRL-1"], "description");
    assert_eq!(ids(&list(&[("q", "50%")]).await), ["TNT-1"], "wildcards are literal");

    let first = list(&[]).await;
    let tent_item = first.items().iter().find(|i| i.product.id == tent.id).unwrap();
    assert_eq!(tent_item.category.as_ref().unwrap().name, "Party");
    assert_eq!((tent_item.stock.units, tent_item.stock.bulk_quantity), (0, 3));
    let drill_item = first.items().iter().find(|i| i.product.id == drill.id).unwrap();
    assert_eq!((drill_item.stock.units, drill_item.stock.bulk_quantity), (1, 0));

    for bad in [("category", "nope"), ("min_price", "-5"), ("colour", "red"), ("sort", "sku")] {
        assert!(spec.parse(&params(&[bad])).is_err(), "{bad:?}");
    }
}

/// Keyset pages walk every product once, in the order of each sort, ties broken by id.
pub async fn keyset_pages_walk_every_product_once_in_order<C: CatalogueStore>(db: &Database, store: &C) {
    let repo = Writes { db, store };
    let cat = repo.create_category(category("Tools")).await.unwrap();
    for i in 0..23 {
        // Prices repeat, so the id must break ties.
        repo.create_product(product(cat.id, &format!("P-{i:02}"), &format!("Item {}", (i * 7) % 23), (i % 5) * 100))
            .await
            .unwrap();
    }
    for sort in ["price_per_day", "-price_per_day", "name", "-created_at"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = vec![("sort", sort), ("limit", "4")];
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let query = product_list_spec().parse(&params(&p)).unwrap();
            assert!(matches!(query.pagination, Pagination::Keyset { .. }));
            let Listing::Keyset(page) = repo.list_products(&query).await.unwrap() else { panic!("keyset expected") };
            assert_eq!(page.total, Some(23));
            seen.extend(page.items.into_iter().map(|i| i.product));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{sort}");
        let mut expected = seen.clone();
        match sort {
            "price_per_day" => expected.sort_by_key(|p| (p.terms.rates.per_day.amount_minor, p.id)),
            "-price_per_day" => expected.sort_by_key(|p| std::cmp::Reverse((p.terms.rates.per_day.amount_minor, p.id))),
            "name" => expected.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id))),
            _ => expected.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id))),
        }
        assert_eq!(seen, expected, "{sort}");
    }
}
