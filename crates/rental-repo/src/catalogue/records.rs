//! The records the catalogue repository reads and writes.

use chrono::{DateTime, Utc};
use rental_domain::pricing::{ProductTerms, RateCard};
use rental_domain::{CategoryName, Money, UnitCondition};
use uuid::Uuid;

/// Most categories or locations returned by their (unpaginated) lists.
pub const SMALL_LIST_MAX: u64 = 1_000;

/// A stored category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRecord {
    /// Time-ordered id.
    pub id: Uuid,
    /// Lower-cased, hyphenated name; unique.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A category to insert.
#[derive(Debug, Clone)]
pub struct NewCategoryRecord {
    /// Validated name with its slug.
    pub name: CategoryName,
    /// Optional description.
    pub description: Option<String>,
}

/// Changes to a category; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct CategoryChanges {
    /// New name (and slug).
    pub name: Option<CategoryName>,
    /// New description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
}

/// A stored location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRecord {
    /// Time-ordered id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A location to insert.
#[derive(Debug, Clone)]
pub struct NewLocationRecord {
    /// Validated name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
}

/// A stored product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    /// Time-ordered id.
    pub id: Uuid,
    /// Its category.
    pub category_id: Uuid,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Its rates, deposit and late fee per item (all in one currency), and the minutes kept free after each
    /// rental.
    pub terms: ProductTerms,
    /// Whether customers can see and rent it.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A product to insert; every value already validated.
#[derive(Debug, Clone)]
pub struct NewProductRecord {
    /// Its category.
    pub category_id: Uuid,
    /// Unique stock-keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Its rates, deposit and late fee per item, all in the product's currency, and its buffer.
    pub terms: ProductTerms,
    /// Whether customers can see it.
    pub is_active: bool,
}

/// Changes to a product; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct ProductChanges {
    /// New category.
    pub category_id: Option<Uuid>,
    /// New SKU.
    pub sku: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// New rates and currency (all three rates are written).
    pub rates: Option<RateCard>,
    /// New deposit per item (its amount is written; the currency is the rates').
    pub deposit_per_unit: Option<Money>,
    /// New late fee per item and day (its amount is written; the currency is the rates').
    pub late_fee_per_day: Option<Money>,
    /// New buffer.
    pub buffer_minutes: Option<i32>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

/// How much of a product there is: individually tracked units plus bulk quantities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockSummary {
    /// Tracked units.
    pub units: u64,
    /// Sum of the bulk stock levels.
    pub bulk_quantity: i64,
}

/// A row of the product list: the product, its category and its stock summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductListItem {
    /// The product.
    pub product: ProductRecord,
    /// Its category (`None` only if it vanished between two statements).
    pub category: Option<CategoryRecord>,
    /// Units and bulk quantity over every location.
    pub stock: StockSummary,
}

/// Stock of a product at one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationStock {
    /// The location.
    pub location: LocationRecord,
    /// Units and bulk quantity there.
    pub stock: StockSummary,
}

/// A product with its category and its stock per location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDetail {
    /// The product.
    pub product: ProductRecord,
    /// Its category.
    pub category: Option<CategoryRecord>,
    /// Totals over every location.
    pub stock: StockSummary,
    /// Per location, sorted by location name.
    pub locations: Vec<LocationStock>,
}

/// A stored unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRecord {
    /// Time-ordered id.
    pub id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// Unique serial number.
    pub serial_number: String,
    /// Its state.
    pub condition: UnitCondition,
    /// Where it is kept.
    pub location_id: Uuid,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A unit to insert.
#[derive(Debug, Clone)]
pub struct NewUnitRecord {
    /// Validated serial number.
    pub serial_number: String,
    /// Its state.
    pub condition: UnitCondition,
    /// Where it is kept.
    pub location_id: Uuid,
}

/// The bulk quantity of a product at a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevelRecord {
    /// The product.
    pub product_id: Uuid,
    /// The location.
    pub location_id: Uuid,
    /// Items there.
    pub quantity: i32,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}
