//! What callers send and see of the catalogue.

use chrono::{DateTime, Utc};
use rental_domain::UnitCondition;
use rental_repo::{
    CategoryRecord, LocationRecord, ProductDetail, ProductListItem, ProductRecord, StockSummary, UnitRecord,
};
use serde::Serialize;
use uuid::Uuid;

/// A category as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategoryView {
    /// Id.
    pub id: Uuid,
    /// Lower-cased, hyphenated name; unique.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<CategoryRecord> for CategoryView {
    fn from(r: CategoryRecord) -> Self {
        Self {
            id: r.id,
            slug: r.slug,
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A location as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LocationView {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<LocationRecord> for LocationView {
    fn from(r: LocationRecord) -> Self {
        Self { id: r.id, name: r.name, address: r.address, created_at: r.created_at }
    }
}

/// A product as callers see it. Amounts are minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductView {
    /// Id.
    pub id: Uuid,
    /// Its category.
    pub category_id: Uuid,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// ISO 4217 code of every amount.
    pub currency: String,
    /// Price of one day.
    pub price_per_day_minor: i64,
    /// Price of seven days.
    pub price_per_week_minor: Option<i64>,
    /// Price of thirty days.
    pub price_per_month_minor: Option<i64>,
    /// Deposit per rented item.
    pub deposit_minor: i64,
    /// Fee per day of late return.
    pub late_fee_per_day_minor: i64,
    /// Minutes kept free after each rental.
    pub buffer_minutes: i32,
    /// Whether customers see it.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<ProductRecord> for ProductView {
    fn from(r: ProductRecord) -> Self {
        Self {
            id: r.id,
            category_id: r.category_id,
            sku: r.sku,
            name: r.name,
            description: r.description,
            currency: r.terms.currency().to_string(),
            price_per_day_minor: r.terms.rates.per_day.amount_minor,
            price_per_week_minor: r.terms.rates.per_week.map(|m| m.amount_minor),
            price_per_month_minor: r.terms.rates.per_month.map(|m| m.amount_minor),
            deposit_minor: r.terms.deposit_per_unit.amount_minor,
            late_fee_per_day_minor: r.terms.late_fee_per_day.amount_minor,
            buffer_minutes: r.terms.buffer_minutes,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Individually tracked units and bulk quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockView {
    /// Tracked units.
    pub units: u64,
    /// Bulk quantity.
    pub bulk_quantity: i64,
}

impl From<StockSummary> for StockView {
    fn from(s: StockSummary) -> Self {
        Self { units: s.units, bulk_quantity: s.bulk_quantity }
    }
}

/// A row of the product list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductListView {
    /// The product.
    #[serde(flatten)]
    pub product: ProductView,
    /// Its category.
    pub category: Option<CategoryView>,
    /// Stock over every location.
    pub stock: StockView,
}

impl From<ProductListItem> for ProductListView {
    fn from(i: ProductListItem) -> Self {
        Self { product: i.product.into(), category: i.category.map(Into::into), stock: i.stock.into() }
    }
}

/// Stock at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LocationStockView {
    /// The location.
    pub location: LocationView,
    /// Stock there.
    pub stock: StockView,
}

/// A product with its category and stock per location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductDetailView {
    /// The product.
    #[serde(flatten)]
    pub product: ProductView,
    /// Its category.
    pub category: Option<CategoryView>,
    /// Stock over every location.
    pub stock: StockView,
    /// Stock per location, by location name.
    pub locations: Vec<LocationStockView>,
}

impl From<ProductDetail> for ProductDetailView {
    fn from(d: ProductDetail) -> Self {
        Self {
            product: d.product.into(),
            category: d.category.map(Into::into),
            stock: d.stock.into(),
            locations: d
                .locations
                .into_iter()
                .map(|l| LocationStockView { location: l.location.into(), stock: l.stock.into() })
                .collect(),
        }
    }
}

/// A unit as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitView {
    /// Id.
    pub id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// Unique serial number.
    pub serial_number: String,
    /// `new`, `good`, `fair` or `damaged`.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::UnitConditionSchema))]
    pub condition: UnitCondition,
    /// Where it is kept.
    pub location_id: Uuid,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<UnitRecord> for UnitView {
    fn from(r: UnitRecord) -> Self {
        Self {
            id: r.id,
            product_id: r.product_id,
            serial_number: r.serial_number,
            condition: r.condition,
            location_id: r.location_id,
            created_at: r.created_at,
        }
    }
}

/// The bulk quantity of a product at a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockLevelView {
    /// The product.
    pub product_id: Uuid,
    /// The location.
    pub location_id: Uuid,
    /// Items there.
    pub quantity: i32,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A category as received (unvalidated).
#[derive(Debug, Clone, Default)]
pub struct NewCategory {
    /// Name; its slug must be unique.
    pub name: String,
    /// Description.
    pub description: Option<String>,
}

/// Changes to a category; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct CategoryUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
}

/// A location as received.
#[derive(Debug, Clone, Default)]
pub struct NewLocation {
    /// Unique name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
}

/// A product as received. Amounts are minor units of `currency`.
#[derive(Debug, Clone, Default)]
pub struct NewProduct {
    /// Its category.
    pub category_id: Uuid,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// ISO 4217 code.
    pub currency: String,
    /// Price of one day.
    pub price_per_day_minor: i64,
    /// Price of seven days.
    pub price_per_week_minor: Option<i64>,
    /// Price of thirty days.
    pub price_per_month_minor: Option<i64>,
    /// Deposit; defaults to 0.
    pub deposit_minor: Option<i64>,
    /// Late fee per day; defaults to 0.
    pub late_fee_per_day_minor: Option<i64>,
    /// Buffer after each rental in minutes (0–10080); defaults to 0.
    pub buffer_minutes: Option<i64>,
    /// Defaults to true.
    pub is_active: Option<bool>,
}

/// Changes to a product; `None` keeps a field, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct ProductUpdate {
    /// New category.
    pub category_id: Option<Uuid>,
    /// New SKU.
    pub sku: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<Option<String>>,
    /// New currency of every amount.
    pub currency: Option<String>,
    /// New day price.
    pub price_per_day_minor: Option<i64>,
    /// New week price.
    pub price_per_week_minor: Option<Option<i64>>,
    /// New month price.
    pub price_per_month_minor: Option<Option<i64>>,
    /// New deposit.
    pub deposit_minor: Option<i64>,
    /// New late fee.
    pub late_fee_per_day_minor: Option<i64>,
    /// New buffer.
    pub buffer_minutes: Option<i64>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

/// A unit as received.
#[derive(Debug, Clone, Default)]
pub struct NewUnit {
    /// Unique serial number.
    pub serial_number: String,
    /// `new`, `good`, `fair` or `damaged`; defaults to `new`.
    pub condition: Option<String>,
    /// Where it is kept.
    pub location_id: Uuid,
}
