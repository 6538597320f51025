//! The catalogue: categories, locations, products, units and stock. Staff and admins manage it; everyone,
//! signed in or not, browses the active products.

mod views;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rental_domain::catalogue::{
    CATALOGUE_NAME_MAX_LEN, PRODUCT_NAME_MAX_LEN, buffer_minutes, code, description, display_text, quantity,
};
use rental_domain::pricing::{ProductTerms, RateCard};
use rental_domain::{CategoryName, Collector, Currency, DomainError, FieldError, Money, UnitCondition};
use rental_repo::query::FilterValue;
use rental_repo::{
    CatalogueRepo, CatalogueStore, CategoryChanges, Database, NewCategoryRecord, NewLocationRecord, NewProductRecord,
    NewUnitRecord, ProductChanges, ProductFilter, RepoError, RepoResult, UnitOfWork, parse_product_query,
};
use uuid::Uuid;

use crate::cache::{CacheValue, Caches, Namespace, NamespaceSpec, Singleton};
use crate::{CacheConfig, Clock, Principal, ServiceError, ServiceResult};

pub use views::*;

/// Most units added in one request.
pub const UNITS_MAX: usize = 1_000;

/// What a cached product page is reckoned to cost: its decoded rows and their JSON, per product.
const CACHED_BYTES_PER_PRODUCT: usize = 2_048;

/// A page of the product list, shared by every caller of a cached page, with its JSON encoded at most once.
pub type ProductPage = crate::EncodedPage<ProductListView>;

/// A product page's weight in the cache, in (estimated) bytes.
fn page_weight(page: &ProductPage) -> u32 {
    let bytes = (page.items().len() + 1).saturating_mul(CACHED_BYTES_PER_PRODUCT);
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Catalogue management and browsing, over a [`CatalogueStore`] (the sea-orm [`CatalogueRepo`] unless another
/// is given). Cheap to clone.
#[derive(Debug)]
pub struct CatalogueService<C = CatalogueRepo> {
    db: Database,
    repo: Arc<C>,
    clock: Arc<dyn Clock>,
    /// Pages of the product list by their validated query (which includes the forced `is_active` of callers
    /// who are not staff); every catalogue write clears them all. Order writes do not, so a page filtered by
    /// availability may be up to the TTL old: the reservation itself decides.
    pages: Option<Namespace<String, Arc<ProductPage>>>,
    /// The category list; every catalogue write clears it, on every instance.
    categories: Namespace<Singleton, Arc<Vec<CategoryView>>>,
    /// Product details by id, inactive ones and unknown ids (`None`) included; every catalogue write clears
    /// them, on every instance (a category or location rename shows in many details).
    products: Namespace<Uuid, Arc<Option<ProductDetailView>>>,
    /// The rentals' availability answers: units, stock levels, buffers and activity decide them too, so every
    /// catalogue write clears them (when the services share one).
    availability: Option<crate::orders::AvailabilityCache>,
}

/// Product details stay in the process that read them (clears reach every instance).
impl CacheValue for Arc<Option<ProductDetailView>> {}

/// The category list stays in the process that read it (clears reach every instance).
impl CacheValue for Arc<Vec<CategoryView>> {}

/// Product pages stay in the process that read them: they hold their decoded rows beside the JSON.
impl CacheValue for Arc<ProductPage> {}

impl<C> Clone for CatalogueService<C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            repo: self.repo.clone(),
            clock: self.clock.clone(),
            pages: self.pages.clone(),
            categories: self.categories.clone(),
            products: self.products.clone(),
            availability: self.availability.clone(),
        }
    }
}

impl CatalogueService {
    /// The service over `db`'s catalogue repository, judging time by `clock`, with a product-page cache when
    /// `config.list_ttl_secs` is not 0.
    pub fn new(db: Database, clock: Arc<dyn Clock>, config: &CacheConfig, caches: &Caches) -> Self {
        Self::with_store(db.clone(), Arc::new(CatalogueRepo::new(db)), clock, config, caches)
    }
}

impl<C: CatalogueStore + 'static> CatalogueService<C> {
    /// The service over another implementation of the store; `db` gives the units of work it writes in.
    pub fn with_store(
        db: Database,
        repo: Arc<C>,
        clock: Arc<dyn Clock>,
        config: &CacheConfig,
        caches: &Caches,
    ) -> Self {
        let pages = (config.list_ttl_secs > 0).then(|| {
            let spec = config.refresh_ahead(NamespaceSpec::new(
                "product_pages",
                Duration::from_secs(config.list_ttl_secs),
                config.product_list_max_bytes,
            ));
            caches.weighed_namespace(spec, |page: &Arc<ProductPage>| page_weight(page))
        });
        let categories = caches.namespace(NamespaceSpec::new(
            "categories",
            Duration::from_secs(config.catalogue_ttl_secs.max(1)),
            1,
        ));
        let products = caches.namespace(NamespaceSpec::new(
            "products",
            Duration::from_secs(config.product_ttl_secs.max(1)),
            config.product_capacity,
        ));
        Self { db, repo, clock, pages, categories, products, availability: None }
    }

    /// The same service clearing `availability` after every catalogue write.
    #[must_use]
    pub(crate) fn with_availability_cache(mut self, availability: crate::orders::AvailabilityCache) -> Self {
        self.availability = Some(availability);
        self
    }

    /// Forgets every cached product page. Called after every catalogue write, whatever its outcome: a write
    /// that failed half-way may still have changed something.
    async fn clear_pages(&self) {
        if let Some(pages) = &self.pages {
            pages.clear().await;
        }
        self.categories.clear().await;
        self.products.clear().await;
        if let Some(availability) = &self.availability {
            availability.clear().await;
        }
    }

    /// Runs one catalogue write in a unit of its own, stamped by the clock, then clears the cached pages
    /// whatever the outcome.
    async fn write<T>(&self, work: impl AsyncFnOnce(&C, &UnitOfWork, DateTime<Utc>) -> RepoResult<T>) -> RepoResult<T> {
        let at = self.clock.now();
        let result = self.db.write(async |uow| work(&self.repo, uow, at).await).await;
        self.clear_pages().await;
        result
    }

    /// Every category, by name. Public.
    ///
    /// # Errors
    /// [`ServiceError::Repo`].
    pub async fn list_categories(&self) -> ServiceResult<Vec<CategoryView>> {
        let repo = self.repo.clone();
        let load = async move {
            Ok::<_, RepoError>(Arc::new(repo.list_categories().await?.into_iter().map(Into::into).collect()))
        };
        let categories = self.categories.get_or_load(Singleton, load).await?;
        Ok((*categories).clone())
    }

    /// One category. Public.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn get_category(&self, id: Uuid) -> ServiceResult<CategoryView> {
        self.repo.find_category(id).await?.map(Into::into).ok_or(ServiceError::NotFound("category"))
    }

    /// Creates a category (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`] listing every bad field, [`ServiceError::Conflict`]
    /// when a category of the same slug exists.
    #[tracing::instrument(skip_all)]
    pub async fn create_category(&self, principal: &Principal, new: NewCategory) -> ServiceResult<CategoryView> {
        principal.require_staff()?;
        let mut errors = Collector::default();
        let name = errors.take(CategoryName::parse(&new.name));
        let description = new.description.as_deref().and_then(|d| errors.take(description("description", d)));
        errors.finish()?;
        let name = name.ok_or_else(|| ServiceError::Internal("validated name missing".into()))?;
        let record = NewCategoryRecord { name, description: description.flatten() };
        Ok(self.write(async |repo, uow, at| repo.create_category(uow, record, at).await).await?.into())
    }

    /// Changes a category (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`],
    /// [`ServiceError::Conflict`].
    #[tracing::instrument(skip_all, fields(category_id = %id))]
    pub async fn update_category(
        &self,
        principal: &Principal,
        id: Uuid,
        update: CategoryUpdate,
    ) -> ServiceResult<CategoryView> {
        principal.require_staff()?;
        let mut errors = Collector::default();
        let name = update.name.as_deref().and_then(|n| errors.take(CategoryName::parse(n)));
        let new_description = match update.description {
            None => None,
            Some(None) => Some(None),
            Some(Some(d)) => errors.take(description("description", &d)),
        };
        errors.finish()?;
        let changes = CategoryChanges { name, description: new_description };
        Ok(self
            .write(async |repo, uow, at| repo.update_category(uow, id, changes, at).await)
            .await
            .map_err(not_found_as("category"))?
            .into())
    }

    /// Deletes a category (staff) that no product belongs to.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Conflict`] while it has
    /// products.
    #[tracing::instrument(skip_all, fields(category_id = %id))]
    pub async fn delete_category(&self, principal: &Principal, id: Uuid) -> ServiceResult<()> {
        principal.require_staff()?;
        match self.write(async |repo, uow, _| repo.delete_category(uow, id).await).await {
            Ok(()) => Ok(()),
            Err(RepoError::NotFound) => Err(ServiceError::NotFound("category")),
            Err(RepoError::Conflict { .. }) => Err(ServiceError::Conflict {
                message: "the category still has products; move or delete them first".into(),
                index: None,
            }),
            Err(other) => Err(other.into()),
        }
    }

    /// Every location, by name. Public.
    ///
    /// # Errors
    /// [`ServiceError::Repo`].
    pub async fn list_locations(&self) -> ServiceResult<Vec<LocationView>> {
        Ok(self.repo.list_locations().await?.into_iter().map(Into::into).collect())
    }

    /// Creates a location (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`], [`ServiceError::Conflict`] when the name is taken.
    #[tracing::instrument(skip_all)]
    pub async fn create_location(&self, principal: &Principal, new: NewLocation) -> ServiceResult<LocationView> {
        principal.require_staff()?;
        let mut errors = Collector::default();
        let name = errors.take(display_text("name", &new.name, CATALOGUE_NAME_MAX_LEN));
        let address = new.address.as_deref().and_then(|a| errors.take(description("address", a)));
        errors.finish()?;
        let name = name.ok_or_else(|| ServiceError::Internal("validated name missing".into()))?;
        let record = NewLocationRecord { name, address: address.flatten() };
        Ok(self.write(async |repo, uow, at| repo.create_location(uow, record, at).await).await?.into())
    }

    /// One page of products, each with its category and stock. Public; callers who are not staff see active
    /// products only, whatever `is_active` they ask for. Pages are cached for `cache.list_ttl_secs` and
    /// cleared by every catalogue write; concurrent misses for one page share one database read and one JSON
    /// encoding. A page filtered by availability may therefore be up to the TTL old with respect to orders.
    ///
    /// # Errors
    /// [`ServiceError::InvalidQuery`] naming a bad parameter.
    pub async fn list_products(
        &self,
        principal: Option<&Principal>,
        params: &[(String, String)],
    ) -> ServiceResult<Arc<ProductPage>> {
        let mut query = parse_product_query(params)?;
        if !principal.is_some_and(Principal::is_staff) {
            query.filters.insert(ProductFilter::IS_ACTIVE, FilterValue::Bool(true));
        }
        let Some(pages) = &self.pages else {
            return Ok(Arc::new(ProductPage::new(self.repo.list_products(&query).await?.map(ProductListView::from))));
        };
        // The key is the validated query, so equivalent query strings share an entry; concurrent misses for
        // one key share one database read.
        let key = crate::users::list_query_key(&query);
        let repo = self.repo.clone();
        let page = pages
            .get_or_load(key, async {
                repo.list_products(&query).await.map(|l| Arc::new(ProductPage::new(l.map(ProductListView::from))))
            })
            .await;
        page.map_err(ServiceError::from)
    }

    /// One product with its category and stock per location. Public; inactive products are not found for
    /// callers who are not staff. Cached for `cache.product_ttl_secs`, cleared by every catalogue write.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn get_product(&self, principal: Option<&Principal>, id: Uuid) -> ServiceResult<ProductDetailView> {
        let staff = principal.is_some_and(Principal::is_staff);
        let repo = self.repo.clone();
        let load = async move { Ok::<_, RepoError>(Arc::new(repo.product_detail(id).await?.map(Into::into))) };
        match self.products.get_or_load(id, load).await?.as_ref() {
            Some(detail) if staff || detail.product.is_active => Ok(detail.clone()),
            _ => Err(ServiceError::NotFound("product")),
        }
    }

    /// Creates a product (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`] listing every bad field (an unknown category is
    /// one), [`ServiceError::Conflict`] when the SKU is taken.
    #[tracing::instrument(skip_all)]
    pub async fn create_product(&self, principal: &Principal, new: NewProduct) -> ServiceResult<ProductView> {
        principal.require_staff()?;
        let mut errors = Collector::default();
        let sku = errors.take(code("sku", &new.sku));
        let name = errors.take(display_text("name", &new.name, PRODUCT_NAME_MAX_LEN));
        let description = new.description.as_deref().and_then(|d| errors.take(description("description", d)));
        let currency = errors.take(Currency::parse(&new.currency));
        let amounts = validate_amounts(
            &mut errors,
            currency,
            new.price_per_day_minor,
            new.price_per_week_minor,
            new.price_per_month_minor,
            new.deposit_minor.unwrap_or(0),
            new.late_fee_per_day_minor.unwrap_or(0),
        );
        let buffer = errors.take(buffer_minutes(new.buffer_minutes.unwrap_or(0)));
        if self.repo.find_category(new.category_id).await?.is_none() {
            errors.take::<()>(Err(DomainError::field("category_id", "no such category")));
        }
        errors.finish()?;
        let (Some(sku), Some(name), Some((rates, deposit_per_unit, late_fee_per_day)), Some(buffer_minutes)) =
            (sku, name, amounts, buffer)
        else {
            return Err(ServiceError::Internal("validated values missing".into()));
        };
        let record = NewProductRecord {
            category_id: new.category_id,
            sku,
            name,
            description: description.flatten(),
            terms: ProductTerms { rates, deposit_per_unit, late_fee_per_day, buffer_minutes },
            is_active: new.is_active.unwrap_or(true),
        };
        Ok(self.write(async |repo, uow, at| repo.create_product(uow, record, at).await).await?.into())
    }

    /// Changes a product (staff). Price fields are checked together with the stored ones, so a new currency
    /// or week price must still make a valid rate card.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`],
    /// [`ServiceError::Conflict`].
    #[tracing::instrument(skip_all, fields(product_id = %id))]
    pub async fn update_product(
        &self,
        principal: &Principal,
        id: Uuid,
        update: ProductUpdate,
    ) -> ServiceResult<ProductView> {
        principal.require_staff()?;
        let current = self.repo.find_product(id).await?.ok_or(ServiceError::NotFound("product"))?;
        let mut errors = Collector::default();
        let sku = update.sku.as_deref().and_then(|s| errors.take(code("sku", s)));
        let name = update.name.as_deref().and_then(|n| errors.take(display_text("name", n, PRODUCT_NAME_MAX_LEN)));
        let new_description = match update.description {
            None => None,
            Some(None) => Some(None),
            Some(Some(d)) => errors.take(description("description", &d)),
        };
        let prices_change = update.currency.is_some()
            || update.price_per_day_minor.is_some()
            || update.price_per_week_minor.is_some()
            || update.price_per_month_minor.is_some()
            || update.deposit_minor.is_some()
            || update.late_fee_per_day_minor.is_some();
        let stored = &current.terms;
        let amounts = if prices_change {
            let currency = match &update.currency {
                Some(code) => errors.take(Currency::parse(code)),
                None => Some(stored.currency()),
            };
            validate_amounts(
                &mut errors,
                currency,
                update.price_per_day_minor.unwrap_or(stored.rates.per_day.amount_minor),
                update.price_per_week_minor.unwrap_or(stored.rates.per_week.map(|m| m.amount_minor)),
                update.price_per_month_minor.unwrap_or(stored.rates.per_month.map(|m| m.amount_minor)),
                update.deposit_minor.unwrap_or(stored.deposit_per_unit.amount_minor),
                update.late_fee_per_day_minor.unwrap_or(stored.late_fee_per_day.amount_minor),
            )
        } else {
            None
        };
        let buffer = update.buffer_minutes.and_then(|b| errors.take(buffer_minutes(b)));
        if let Some(category_id) = update.category_id
            && category_id != current.category_id
            && self.repo.find_category(category_id).await?.is_none()
        {
            errors.take::<()>(Err(DomainError::field("category_id", "no such category")));
        }
        errors.finish()?;
        let changes = ProductChanges {
            category_id: update.category_id,
            sku,
            name,
            description: new_description,
            rates: amounts.map(|a| a.0),
            deposit_per_unit: amounts.map(|a| a.1),
            late_fee_per_day: amounts.map(|a| a.2),
            buffer_minutes: buffer,
            is_active: update.is_active,
        };
        Ok(self
            .write(async |repo, uow, at| repo.update_product(uow, id, changes, at).await)
            .await
            .map_err(not_found_as("product"))?
            .into())
    }

    /// Deletes a product with its units and stock levels (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Conflict`] while a rental order
    /// names the product.
    #[tracing::instrument(skip_all, fields(product_id = %id))]
    pub async fn delete_product(&self, principal: &Principal, id: Uuid) -> ServiceResult<()> {
        principal.require_staff()?;
        self.write(async |repo, uow, _| repo.delete_product(uow, id).await).await.map_err(not_found_as("product"))
    }

    /// Adds 1–1000 units to a product, all or nothing (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`] for the product, [`ServiceError::Invalid`] with
    /// fields like `units[2].serial_number` (unknown locations included), [`ServiceError::Conflict`] when a
    /// serial number is taken or repeats.
    #[tracing::instrument(skip_all, fields(product_id = %product_id, units = units.len()))]
    pub async fn add_units(
        &self,
        principal: &Principal,
        product_id: Uuid,
        units: Vec<NewUnit>,
    ) -> ServiceResult<Vec<UnitView>> {
        principal.require_staff()?;
        if units.is_empty() || units.len() > UNITS_MAX {
            return Err(DomainError::field("units", "must hold between 1 and 1000 units").into());
        }
        let mut errors: Vec<FieldError> = Vec::new();
        let mut records = Vec::with_capacity(units.len());
        for (index, unit) in units.iter().enumerate() {
            let mut row = Collector::default();
            let serial_number = row.take(code("serial_number", &unit.serial_number));
            let condition = match unit.condition.as_deref() {
                None => Some(UnitCondition::New),
                Some(raw) => row.take(raw.parse::<UnitCondition>()),
            };
            if let Err(err) = row.finish() {
                let prefix = format!("units[{index}]");
                errors.extend(err.fields().iter().cloned().map(|f| f.within(&prefix)));
            }
            if let (Some(serial_number), Some(condition)) = (serial_number, condition) {
                records.push(NewUnitRecord { serial_number, condition, location_id: unit.location_id });
            }
        }
        if self.repo.find_product(product_id).await?.is_none() {
            return Err(ServiceError::NotFound("product"));
        }
        let location_ids: Vec<Uuid> = units.iter().map(|u| u.location_id).collect();
        let missing = self.repo.missing_locations(&location_ids).await?;
        for (index, unit) in units.iter().enumerate() {
            if missing.contains(&unit.location_id) {
                errors.push(FieldError::new(format!("units[{index}].location_id"), "no such location"));
            }
        }
        if !errors.is_empty() {
            errors.truncate(100);
            return Err(DomainError::Invalid(errors).into());
        }
        Ok(self
            .write(async |repo, uow, at| repo.add_units(uow, product_id, records, at).await)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Sets the bulk quantity of a product at a location (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`] for a negative quantity, [`ServiceError::NotFound`]
    /// for the product or the location.
    #[tracing::instrument(skip_all, fields(product_id = %product_id, location_id = %location_id))]
    pub async fn set_stock_level(
        &self,
        principal: &Principal,
        product_id: Uuid,
        location_id: Uuid,
        new_quantity: i64,
    ) -> ServiceResult<StockLevelView> {
        principal.require_staff()?;
        let quantity = quantity(new_quantity)?;
        if self.repo.find_product(product_id).await?.is_none() {
            return Err(ServiceError::NotFound("product"));
        }
        if self.repo.find_location(location_id).await?.is_none() {
            return Err(ServiceError::NotFound("location"));
        }
        let level = self
            .write(async |repo, uow, at| repo.set_stock_level(uow, product_id, location_id, quantity, at).await)
            .await?;
        Ok(StockLevelView {
            product_id: level.product_id,
            location_id: level.location_id,
            quantity: level.quantity,
            updated_at: level.updated_at,
        })
    }
}

/// Checks every amount in `currency` together: the rate card, the deposit and the late fee. `currency` is
/// `None` when the code sent was refused (and is already in `errors`).
fn validate_amounts(
    errors: &mut Collector,
    currency: Option<Currency>,
    per_day: i64,
    per_week: Option<i64>,
    per_month: Option<i64>,
    deposit: i64,
    late_fee: i64,
) -> Option<(RateCard, Money, Money)> {
    // With a bad currency the amounts are still checked (against ISO 4217's "no currency", XXX), so that every
    // bad field is listed at once.
    let parsed = currency;
    let currency = match parsed {
        Some(c) => c,
        None => Currency::parse("XXX").ok()?,
    };
    let day = errors.take(Money::price(per_day, currency, "price_per_day_minor"));
    let week = per_week.map(|w| errors.take(Money::price(w, currency, "price_per_week_minor")));
    let month = per_month.map(|m| errors.take(Money::price(m, currency, "price_per_month_minor")));
    let deposit = errors.take(Money::price(deposit, currency, "deposit_minor"));
    let late_fee = errors.take(Money::price(late_fee, currency, "late_fee_per_day_minor"));
    let (Some(_), Some(day), Some(deposit), Some(late_fee)) = (parsed, day, deposit, late_fee) else { return None };
    let week = match week {
        Some(None) => return None,
        Some(Some(w)) => Some(w),
        None => None,
    };
    let month = match month {
        Some(None) => return None,
        Some(Some(m)) => Some(m),
        None => None,
    };
    let rates = errors.take(RateCard::new(day, week, month))?;
    Some((rates, deposit, late_fee))
}

fn not_found_as(what: &'static str) -> impl Fn(RepoError) -> ServiceError {
    move |err| match err {
        RepoError::NotFound => ServiceError::NotFound(what),
        other => other.into(),
    }
}
