//! The catalogue repository: categories, locations, products with their individually tracked units and bulk
//! stock levels.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::entity::{category, location, maintenance_block, order_line, product, stock_level, unit};
use crate::orders::stock::{bulk_quantity, capacity, held_at, unit_count};
use crate::query::{
    Batch, Direction, FilterKind, FilterOp, ListColumns, ListQuery, ListSpec, Listing, PageSizes, SortKind,
    insert_chunked,
};
use crate::{Database, RepoError, RepoResult, UnitOfWork, stored};

mod records;
mod store;

pub use records::*;
pub use store::CatalogueStore;

/// Filters of the product list, as the whitelist names them.
#[derive(Debug, Clone, Copy)]
pub struct ProductFilter;

impl ProductFilter {
    /// `category=<uuid>`
    pub const CATEGORY: &'static str = "category";
    /// `is_active=true|false`
    pub const IS_ACTIVE: &'static str = "is_active";
    /// `location=<uuid>`: products with a unit or a positive bulk quantity there.
    pub const LOCATION: &'static str = "location";
    /// `min_price=<minor units>`: day price at least this.
    pub const MIN_PRICE: &'static str = "min_price";
    /// `max_price=<minor units>`: day price at most this.
    pub const MAX_PRICE: &'static str = "max_price";
    /// `available_from=<timestamp>`, given with `available_to`: products with at least one item free at every
    /// instant of `[available_from, available_to)`.
    pub const AVAILABLE_FROM: &'static str = "available_from";
    /// `available_to=<timestamp>`: the (excluded) end of the availability window.
    pub const AVAILABLE_TO: &'static str = "available_to";
}

/// Longest availability window the product list accepts, in days.
pub const AVAILABILITY_WINDOW_MAX_DAYS: i64 = 366;

static PRODUCT_LIST_SPEC: ListSpec = ListSpec {
    resource: "products",
    filters: &[
        (ProductFilter::CATEGORY, FilterKind::Uuid),
        (ProductFilter::IS_ACTIVE, FilterKind::Bool),
        (ProductFilter::LOCATION, FilterKind::Uuid),
        (ProductFilter::MIN_PRICE, FilterKind::Integer),
        (ProductFilter::MAX_PRICE, FilterKind::Integer),
        (ProductFilter::AVAILABLE_FROM, FilterKind::DateTime),
        (ProductFilter::AVAILABLE_TO, FilterKind::DateTime),
    ],
    sorts: &[("created_at", SortKind::DateTime), ("name", SortKind::Text), ("price_per_day", SortKind::Integer)],
    default_sort: ("created_at", Direction::Desc),
    searchable: true,
    page_sizes: PageSizes::DEFAULT,
};

/// The product list's names bound to the `products` columns; `location` and the availability window are
/// subqueries, applied by [`CatalogueStore::list_products`].
static PRODUCT_LIST: ListColumns<product::Entity> = ListColumns {
    spec: &PRODUCT_LIST_SPEC,
    key: product::Column::Id,
    sorts: &[
        ("created_at", product::Column::CreatedAt),
        ("name", product::Column::Name),
        ("price_per_day", product::Column::PricePerDayMinor),
    ],
    filters: &[
        (ProductFilter::CATEGORY, product::Column::CategoryId, FilterOp::Eq),
        (ProductFilter::IS_ACTIVE, product::Column::IsActive, FilterOp::Eq),
        (ProductFilter::MIN_PRICE, product::Column::PricePerDayMinor, FilterOp::Gte),
        (ProductFilter::MAX_PRICE, product::Column::PricePerDayMinor, FilterOp::Lte),
    ],
    search: &[product::Column::Name, product::Column::Sku, product::Column::Description],
};

/// The whitelist of the product list: filters `category`, `is_active`, `location`, `min_price`, `max_price`,
/// `available_from` with `available_to`; sorts `created_at` (default, newest first), `name`, `price_per_day`;
/// search `q` in name, SKU and description. [`parse_product_query`] also checks the availability window.
pub fn product_list_spec() -> &'static ListSpec {
    &PRODUCT_LIST_SPEC
}

/// Validates the query-string pairs of a product list request: the whitelist, then the availability window
/// (both bounds or neither, `available_to` after `available_from`, at most [`AVAILABILITY_WINDOW_MAX_DAYS`]).
///
/// # Errors
/// [`RepoError::InvalidQuery`] naming the parameter at fault.
pub fn parse_product_query(params: &[(String, String)]) -> RepoResult<ListQuery> {
    let query = PRODUCT_LIST_SPEC.parse(params)?;
    availability_window(&query)?;
    Ok(query)
}

/// The availability window of `query`, if it asks for one.
fn availability_window(query: &ListQuery) -> RepoResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    let from = query.datetime_filter(ProductFilter::AVAILABLE_FROM);
    let to = query.datetime_filter(ProductFilter::AVAILABLE_TO);
    match (from, to) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(RepoError::invalid(ProductFilter::AVAILABLE_TO, "is required with available_from")),
        (None, Some(_)) => Err(RepoError::invalid(ProductFilter::AVAILABLE_FROM, "is required with available_to")),
        (Some(from), Some(to)) if to <= from => {
            Err(RepoError::invalid(ProductFilter::AVAILABLE_TO, "must be later than available_from"))
        }
        (Some(from), Some(to)) if to - from > chrono::TimeDelta::days(AVAILABILITY_WINDOW_MAX_DAYS) => {
            Err(RepoError::invalid(ProductFilter::AVAILABLE_TO, "must be at most 366 days after available_from"))
        }
        (Some(from), Some(to)) => Ok(Some((from, to))),
    }
}

/// Timestamps are kept to the microsecond, the precision of PostgreSQL.
fn stamp(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A category by id, read on `conn` (the pool, or a unit that has just written it).
async fn find_category_in(conn: &impl ConnectionTrait, id: Uuid) -> RepoResult<Option<CategoryRecord>> {
    Ok(category::Entity::find_by_id(id).one(conn).await?.map(category_record))
}

/// A product by id, read on `conn` (the pool, or a unit that has just written it).
async fn find_product_in(conn: &impl ConnectionTrait, id: Uuid) -> RepoResult<Option<ProductRecord>> {
    product::Entity::find_by_id(id).one(conn).await?.map(product_record).transpose()
}

/// Categories, locations, products, units and stock levels: the sea-orm [`CatalogueStore`].
#[derive(Debug, Clone)]
pub struct CatalogueRepo {
    db: Database,
}

impl CatalogueRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database this repository works on.
    pub fn database(&self) -> &Database {
        &self.db
    }
}

impl CatalogueStore for CatalogueRepo {
    #[tracing::instrument(skip_all)]
    async fn create_category(
        &self,
        uow: &UnitOfWork,
        new: NewCategoryRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<CategoryRecord> {
        let created = stamp(at);
        let (name, slug) = new.name.into_parts();
        let model = category::Model {
            id: Uuid::now_v7(),
            slug,
            name,
            description: new.description,
            created_at: created,
            updated_at: created,
        };
        category::Entity::insert(category::ActiveModel::from(model.clone())).exec_without_returning(uow.conn()).await?;
        Ok(category_record(model))
    }

    async fn find_category(&self, id: Uuid) -> RepoResult<Option<CategoryRecord>> {
        find_category_in(self.db.connection(), id).await
    }

    async fn list_categories(&self) -> RepoResult<Vec<CategoryRecord>> {
        let models = category::Entity::find()
            .order_by_asc(category::Column::Name)
            .order_by_asc(category::Column::Id)
            .limit(SMALL_LIST_MAX)
            .all(self.db.connection())
            .await?;
        Ok(models.into_iter().map(category_record).collect())
    }

    #[tracing::instrument(skip_all, fields(category_id = %id))]
    async fn update_category(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        changes: CategoryChanges,
        at: DateTime<Utc>,
    ) -> RepoResult<CategoryRecord> {
        let mut update = category::Entity::update_many()
            .col_expr(category::Column::UpdatedAt, Expr::val(stamp(at)))
            .filter(category::Column::Id.eq(id));
        if let Some(name) = changes.name {
            let (name, slug) = name.into_parts();
            update = update
                .col_expr(category::Column::Name, Expr::val(name))
                .col_expr(category::Column::Slug, Expr::val(slug));
        }
        if let Some(description) = changes.description {
            update = update.col_expr(category::Column::Description, Expr::val(description));
        }
        if update.exec(uow.conn()).await?.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        find_category_in(uow.conn(), id).await?.ok_or(RepoError::NotFound)
    }

    #[tracing::instrument(skip_all, fields(category_id = %id))]
    async fn delete_category(&self, uow: &UnitOfWork, id: Uuid) -> RepoResult<()> {
        if category::Entity::delete_by_id(id).exec(uow.conn()).await?.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn create_location(
        &self,
        uow: &UnitOfWork,
        new: NewLocationRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<LocationRecord> {
        let model = location::Model { id: Uuid::now_v7(), name: new.name, address: new.address, created_at: stamp(at) };
        location::Entity::insert(location::ActiveModel::from(model.clone())).exec_without_returning(uow.conn()).await?;
        Ok(location_record(model))
    }

    async fn find_location(&self, id: Uuid) -> RepoResult<Option<LocationRecord>> {
        Ok(location::Entity::find_by_id(id).one(self.db.connection()).await?.map(location_record))
    }

    async fn list_locations(&self) -> RepoResult<Vec<LocationRecord>> {
        let models = location::Entity::find()
            .order_by_asc(location::Column::Name)
            .order_by_asc(location::Column::Id)
            .limit(SMALL_LIST_MAX)
            .all(self.db.connection())
            .await?;
        Ok(models.into_iter().map(location_record).collect())
    }

    async fn missing_locations(&self, ids: &[Uuid]) -> RepoResult<Vec<Uuid>> {
        let wanted: HashSet<Uuid> = ids.iter().copied().collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let found: HashSet<Uuid> = location::Entity::find()
            .select_only()
            .column(location::Column::Id)
            .filter(location::Column::Id.is_in(wanted.iter().copied()))
            .into_tuple::<Uuid>()
            .all(self.db.connection())
            .await?
            .into_iter()
            .collect();
        let mut missing: Vec<Uuid> = wanted.difference(&found).copied().collect();
        missing.sort();
        Ok(missing)
    }

    #[tracing::instrument(skip_all)]
    async fn create_product(
        &self,
        uow: &UnitOfWork,
        new: NewProductRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<ProductRecord> {
        let created = stamp(at);
        let model = product::Model {
            id: Uuid::now_v7(),
            category_id: new.category_id,
            sku: new.sku,
            name: new.name,
            description: new.description,
            currency: new.terms.currency().as_str().to_owned(),
            price_per_day_minor: new.terms.rates.per_day.amount_minor,
            price_per_week_minor: new.terms.rates.per_week.map(|m| m.amount_minor),
            price_per_month_minor: new.terms.rates.per_month.map(|m| m.amount_minor),
            deposit_minor: new.terms.deposit_per_unit.amount_minor,
            late_fee_per_day_minor: new.terms.late_fee_per_day.amount_minor,
            buffer_minutes: new.terms.buffer_minutes,
            is_active: new.is_active,
            created_at: created,
            updated_at: created,
        };
        product::Entity::insert(product::ActiveModel::from(model.clone())).exec_without_returning(uow.conn()).await?;
        product_record(model)
    }

    async fn find_product(&self, id: Uuid) -> RepoResult<Option<ProductRecord>> {
        find_product_in(self.db.connection(), id).await
    }

    #[tracing::instrument(skip_all, fields(product_id = %id))]
    async fn product_detail(&self, id: Uuid) -> RepoResult<Option<ProductDetail>> {
        let conn = self.db.connection();
        let Some(model) = product::Entity::find_by_id(id).one(conn).await? else {
            return Ok(None);
        };
        let category = category::Entity::find_by_id(model.category_id).one(conn).await?.map(category_record);
        let units: Vec<(Uuid, i64)> = unit::Entity::find()
            .select_only()
            .column(unit::Column::LocationId)
            .column_as(Expr::col(unit::Column::Id).count(), "units")
            .filter(unit::Column::ProductId.eq(id))
            .group_by(unit::Column::LocationId)
            .into_tuple()
            .all(conn)
            .await?;
        let levels = stock_level::Entity::find().filter(stock_level::Column::ProductId.eq(id)).all(conn).await?;

        let mut per_location: HashMap<Uuid, StockSummary> = HashMap::new();
        for (location_id, count) in units {
            per_location.entry(location_id).or_default().units = u64::try_from(count).unwrap_or(0);
        }
        for level in levels {
            per_location.entry(level.location_id).or_default().bulk_quantity = i64::from(level.quantity);
        }
        let mut locations: Vec<LocationStock> = Batch::new(per_location.keys().copied())
            .one(conn, location::Entity::find(), location::Column::Id)
            .await?
            .into_values()
            .map(|m| LocationStock {
                stock: per_location.get(&m.id).copied().unwrap_or_default(),
                location: location_record(m),
            })
            .collect();
        locations.sort_by(|a, b| a.location.name.cmp(&b.location.name));
        let stock = locations.iter().fold(StockSummary::default(), |sum, l| StockSummary {
            units: sum.units + l.stock.units,
            bulk_quantity: sum.bulk_quantity + l.stock.bulk_quantity,
        });
        Ok(Some(ProductDetail { product: product_record(model)?, category, stock, locations }))
    }

    #[tracing::instrument(skip_all, fields(product_id = %id))]
    async fn update_product(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        changes: ProductChanges,
        at: DateTime<Utc>,
    ) -> RepoResult<ProductRecord> {
        use product::Column as C;
        let mut update =
            product::Entity::update_many().col_expr(C::UpdatedAt, Expr::val(stamp(at))).filter(C::Id.eq(id));
        if let Some(category_id) = changes.category_id {
            update = update.col_expr(C::CategoryId, Expr::val(category_id));
        }
        if let Some(sku) = changes.sku {
            update = update.col_expr(C::Sku, Expr::val(sku));
        }
        if let Some(name) = changes.name {
            update = update.col_expr(C::Name, Expr::val(name));
        }
        if let Some(description) = changes.description {
            update = update.col_expr(C::Description, Expr::val(description));
        }
        if let Some(rates) = changes.rates {
            update = update
                .col_expr(C::Currency, Expr::val(rates.per_day.currency.as_str().to_owned()))
                .col_expr(C::PricePerDayMinor, Expr::val(rates.per_day.amount_minor))
                .col_expr(C::PricePerWeekMinor, Expr::val(rates.per_week.map(|m| m.amount_minor)))
                .col_expr(C::PricePerMonthMinor, Expr::val(rates.per_month.map(|m| m.amount_minor)));
        }
        if let Some(deposit) = changes.deposit_per_unit {
            update = update.col_expr(C::DepositMinor, Expr::val(deposit.amount_minor));
        }
        if let Some(fee) = changes.late_fee_per_day {
            update = update.col_expr(C::LateFeePerDayMinor, Expr::val(fee.amount_minor));
        }
        if let Some(buffer) = changes.buffer_minutes {
            update = update.col_expr(C::BufferMinutes, Expr::val(buffer));
        }
        if let Some(active) = changes.is_active {
            update = update.col_expr(C::IsActive, Expr::val(active));
        }
        if update.exec(uow.conn()).await?.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        find_product_in(uow.conn(), id).await?.ok_or(RepoError::NotFound)
    }

    #[tracing::instrument(skip_all, fields(product_id = %id))]
    async fn delete_product(&self, uow: &UnitOfWork, id: Uuid) -> RepoResult<()> {
        if product::Entity::delete_by_id(id).exec(uow.conn()).await?.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn list_products(&self, query: &ListQuery) -> RepoResult<Listing<ProductListItem>> {
        let window = availability_window(query)?;
        let mut condition = location_condition(query);
        if let Some((from, to)) = window {
            condition = condition.add(available_over(from, to));
        }
        let conn = self.db.connection();
        let page = PRODUCT_LIST.fetch(conn, query, product::Entity::find().filter(condition)).await?;
        let categories = Batch::of(page.items(), |m| m.category_id)
            .one(conn, category::Entity::find(), category::Column::Id)
            .await?;
        // One statement for both halves of the summary: a correlated count and sum per product of the page.
        let summaries: Vec<(Uuid, i64, i64)> = Batch::of(page.items(), |m| m.id)
            .tuples(
                conn,
                product::Entity::find()
                    .select_only()
                    .column(product::Column::Id)
                    .column_as(unit_count(outer_product_id()), "units")
                    .column_as(bulk_quantity(outer_product_id()), "quantity"),
                product::Column::Id,
            )
            .await?;
        let stock: HashMap<Uuid, StockSummary> = summaries
            .into_iter()
            .map(|(id, units, bulk_quantity)| {
                (id, StockSummary { units: u64::try_from(units).unwrap_or(0), bulk_quantity })
            })
            .collect();
        page.try_map(|m| {
            Ok(ProductListItem {
                category: categories.get(&m.category_id).cloned().map(category_record),
                stock: stock.get(&m.id).copied().unwrap_or_default(),
                product: product_record(m)?,
            })
        })
    }

    #[tracing::instrument(skip_all, fields(product_id = %product_id, units = units.len()))]
    async fn add_units(
        &self,
        uow: &UnitOfWork,
        product_id: Uuid,
        units: Vec<NewUnitRecord>,
        at: DateTime<Utc>,
    ) -> RepoResult<Vec<UnitRecord>> {
        let created = stamp(at);
        let models: Vec<unit::Model> = units
            .into_iter()
            .map(|u| unit::Model {
                id: Uuid::now_v7(),
                product_id,
                serial_number: u.serial_number,
                condition: u.condition.as_str().to_owned(),
                location_id: u.location_id,
                created_at: created,
            })
            .collect();
        if models.is_empty() {
            return Ok(Vec::new());
        }
        insert_chunked(uow.conn(), models.iter().cloned().map(unit::ActiveModel::from)).await?;
        Ok(models.into_iter().filter_map(unit_record).collect())
    }

    #[tracing::instrument(skip_all, fields(product_id = %product_id, location_id = %location_id))]
    async fn set_stock_level(
        &self,
        uow: &UnitOfWork,
        product_id: Uuid,
        location_id: Uuid,
        quantity: i32,
        at: DateTime<Utc>,
    ) -> RepoResult<StockLevelRecord> {
        let model = stock_level::Model { product_id, location_id, quantity, updated_at: stamp(at) };
        stock_level::Entity::insert(stock_level::ActiveModel::from(model.clone()))
            .on_conflict(
                OnConflict::columns([stock_level::Column::ProductId, stock_level::Column::LocationId])
                    .update_columns([stock_level::Column::Quantity, stock_level::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(uow.conn())
            .await?;
        Ok(StockLevelRecord {
            product_id: model.product_id,
            location_id: model.location_id,
            quantity: model.quantity,
            updated_at: model.updated_at,
        })
    }
}

fn category_record(m: category::Model) -> CategoryRecord {
    CategoryRecord {
        id: m.id,
        slug: m.slug,
        name: m.name,
        description: m.description,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn location_record(m: location::Model) -> LocationRecord {
    LocationRecord { id: m.id, name: m.name, address: m.address, created_at: m.created_at }
}

fn product_record(m: product::Model) -> RepoResult<ProductRecord> {
    Ok(ProductRecord {
        terms: stored::product_terms(&m)?,
        id: m.id,
        category_id: m.category_id,
        sku: m.sku,
        name: m.name,
        description: m.description,
        is_active: m.is_active,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// A stored unit; the CHECK constraint keeps `condition` to the known words.
fn unit_record(m: unit::Model) -> Option<UnitRecord> {
    Some(UnitRecord {
        id: m.id,
        product_id: m.product_id,
        condition: m.condition.parse().ok()?,
        serial_number: m.serial_number,
        location_id: m.location_id,
        created_at: m.created_at,
    })
}

/// The `location` filter: products with a unit there or a positive bulk quantity there.
fn location_condition(query: &ListQuery) -> Condition {
    let mut condition = Condition::all();
    if let Some(location_id) = query.uuid_filter(ProductFilter::LOCATION) {
        let with_units = Query::select()
            .column(unit::Column::ProductId)
            .from(unit::Entity)
            .and_where(unit::Column::LocationId.eq(location_id))
            .to_owned();
        let with_stock = Query::select()
            .column(stock_level::Column::ProductId)
            .from(stock_level::Entity)
            .and_where(stock_level::Column::LocationId.eq(location_id))
            .and_where(stock_level::Column::Quantity.gt(0))
            .to_owned();
        condition = condition.add(
            Condition::any()
                .add(product::Column::Id.in_subquery(with_units))
                .add(product::Column::Id.in_subquery(with_stock)),
        );
    }
    condition
}

/// `products.id` of the outer query, for correlated subqueries.
fn outer_product_id() -> Expr {
    Expr::col((product::Entity, product::Column::Id))
}

/// Whether at least one item of the product of the outer query is free at instant `t`:
/// `capacity - held(t) >= 1`, capacity being its units plus its bulk quantity.
fn free_at(t: &Expr) -> Expr {
    let product = outer_product_id();
    capacity(&product).gt(held_at(&product, t))
}

/// Products with at least one item free at every instant of `[from, to)`. Holds are step functions that only
/// rise where a hold or a block starts, so checking `from` and every start strictly inside `(from, to)` is
/// exact: `free_at(from) AND NOT EXISTS (a line start inside where not free) AND NOT EXISTS (a block start
/// inside where not free)`. Every part is a correlated subquery on `products.id`, so the filter adds no
/// statement; `idx_order_lines_product_hold` and `idx_maintenance_product_ends` serve the lookups by product.
fn available_over(from: DateTime<Utc>, to: DateTime<Utc>) -> Condition {
    let (lines, blocks) = (Alias::new("start_line"), Alias::new("start_block"));
    let line_start = Expr::col((lines.clone(), order_line::Column::StartsAt));
    let line_starts = Query::select()
        .expr(Expr::val(1))
        .from_as(order_line::Entity, lines.clone())
        .and_where(Expr::col((lines.clone(), order_line::Column::ProductId)).eq(outer_product_id()))
        .and_where(Expr::col((lines, order_line::Column::HoldsStock)).eq(true))
        .and_where(line_start.clone().gt(Expr::val(from)))
        .and_where(line_start.clone().lt(Expr::val(to)))
        .and_where(free_at(&line_start).not())
        .to_owned();
    let block_start = Expr::col((blocks.clone(), maintenance_block::Column::StartsAt));
    let block_starts = Query::select()
        .expr(Expr::val(1))
        .from_as(maintenance_block::Entity, blocks.clone())
        .and_where(Expr::col((blocks, maintenance_block::Column::ProductId)).eq(outer_product_id()))
        .and_where(block_start.clone().gt(Expr::val(from)))
        .and_where(block_start.clone().lt(Expr::val(to)))
        .and_where(free_at(&block_start).not())
        .to_owned();
    Condition::all()
        .add(free_at(&Expr::val(from)))
        .add(Expr::not_exists(line_starts))
        .add(Expr::not_exists(block_starts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sort_of_the_product_list_has_a_column() {
        assert!(PRODUCT_LIST.unbound_sorts().is_empty());
    }
}
