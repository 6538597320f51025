//! Business operations of the rental backend.
//!
//! Authentication (argon2id password hashes computed on the blocking pool, JWT access tokens, rotating refresh
//! tokens grouped in families), users and roles with their authorization rules, the catalogue (staff manage
//! it, everyone browses), and the caches in front of the repositories. Callers get plain view types and
//! [`ServiceError`]; no sea-orm type crosses this crate's public API, and it knows nothing of HTTP.

mod analytics;
mod billing;
pub mod cache;
mod catalogue;
mod config;
pub mod context;
mod error;
pub mod idempotency;
pub mod jobs;
#[cfg(feature = "openapi")]
pub mod openapi;
mod orders;
mod page;
pub mod payments;
mod ports;
mod principal;
mod users;

use std::sync::Arc;

use rental_repo::{BillingRepo, Database, JobRepo};

pub use analytics::{
    AnalyticsService, CurrencyRevenue, DashboardRentals, DashboardRevenue, DashboardStats, DashboardUsers,
    DashboardUtilization, EXPORT_PAGE_MAX, POPULAR_LIMIT_MAX, PopularProductView, PopularProducts,
    ProductUtilizationView, RevenueDay, RevenueReport, StatusCount, StatusDistribution, UTILIZATION_LIMIT_MAX,
    UtilizationReport, Window,
};
pub use billing::{BillingService, InvoiceLineView, InvoiceView, NewPayment, PaymentView};
pub use cache::{CacheStats, Caches, SharedTier, UnknownNamespace};
pub use catalogue::{
    CatalogueService, CategoryUpdate, CategoryView, LocationStockView, LocationView, NewCategory, NewLocation,
    NewProduct, NewUnit, ProductDetailView, ProductListView, ProductPage, ProductUpdate, ProductView, StockLevelView,
    StockView, UNITS_MAX, UnitView,
};
pub use config::{AuthConfig, CacheConfig, Secret, ServiceConfig};
pub use error::{BUSY_RETRY_AFTER, LOCK_RETRY_AFTER, ServiceError, ServiceResult, UNAVAILABLE_RETRY_AFTER};
pub use idempotency::{Held, Idempotency, IdempotencyClaim, IdempotencyConfig, IdempotencyKey, StoredResponse};
pub use jobs::{JobService, JobsConfig, Outbox};
pub use orders::{
    AssignedUnitView, AvailabilityView, CustomerView, DayView, MAX_LINES, MAX_QUANTITY, MaintenanceView, NewRental,
    NewRentalLine, OrderDetailView, OrderEventView, OrderLineView, OrderProductView, OrderView, PeriodView, PickupLine,
    RentalConfig, RentalService, ReturnedUnit, ShortageView,
};
pub use page::EncodedPage;
pub use payments::{
    CheckoutView, DepositConfig, DepositHoldView, DepositRunReport, DepositView, PaymentEvent, PaymentIntentView,
    PaymentService, ReconcileReport, ReconciledDeposit, ReconciledPayment, RefundView, StripeCustomerView,
    StripePaymentView, WebhookEvent, WebhookOutcome,
};
pub use ports::{
    CacheBackend, CacheEvent, CheckoutRequest, Clock, CustomerRequest, GatewayCheckout, GatewayPayment,
    GatewayPaymentStatus, MailMessage, Mailer, ManualClock, PaymentGateway, PaymentRequest, PortError, PortFuture,
    SystemClock,
};
pub use principal::Principal;
pub use rental_repo::query::{KeysetPage, Listing, Page};
pub use rental_repo::{ExportCursor, InvoiceExportRecord, OrderExportRecord};
pub use users::auth::{AuthService, MIN_SECRET_LEN, Registration, TokenPair};
pub use users::password::PasswordHasher;
pub use users::recovery::{PasswordResetMail, RESET_TOKEN_TTL_MINUTES};
pub use users::{AuthUser, NewUser, ProfileUpdate, UserService, UserUpdate, UserView};

/// Every service, wired over one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    /// Login, tokens, registration, password changes.
    pub auth: AuthService,
    /// Profiles and user administration.
    pub users: UserService,
    /// Categories, locations, products, units and stock.
    pub catalogue: CatalogueService,
    /// Rental orders, availability and maintenance.
    pub rentals: RentalService,
    /// Invoices and payments.
    pub billing: BillingService,
    /// Revenue, rankings, status counts, utilization and exports (staff).
    pub analytics: AnalyticsService,
    /// Stripe payments (a gateway is set by the binary with [`PaymentService::with_gateway`]).
    pub payments: PaymentService,
    /// The job queue for admins; its store is the one the services enqueue in, for the workers.
    pub jobs: JobService,
    /// `Idempotency-Key` records: look-ups and replays before an idempotent operation, the purge.
    pub idempotency: Idempotency,
    /// The time every service judges its rules by (background jobs too).
    pub clock: Arc<dyn Clock>,
    /// Every cache namespace of the services, for stats and clears.
    pub caches: Caches,
}

impl Services {
    /// What every cache namespace of the services did since start, per tier: `users`, and `user_lists` and
    /// `product_pages` when list caching is enabled, ...
    pub fn cache_stats(&self) -> Vec<CacheStats> {
        self.caches.stats()
    }

    /// Builds the services over `db`.
    ///
    /// # Errors
    /// [`ServiceError::Config`] when the configuration cannot be used (argon2 parameters out of range, a JWT
    /// secret that is too short).
    pub fn new(db: Database, config: &ServiceConfig) -> ServiceResult<Self> {
        Self::with_clock(db, config, Arc::new(SystemClock))
    }

    /// Builds the services over `db`, judging time by `clock` (tests pass a [`ManualClock`]), with the caches
    /// of `config.cache` (the Redis tier when `cache.redis_url` is set, which needs a tokio runtime).
    ///
    /// # Errors
    /// As [`Services::new`].
    pub fn with_clock(db: Database, config: &ServiceConfig, clock: Arc<dyn Clock>) -> ServiceResult<Self> {
        Self::with_caches(db, config, clock, Caches::from_config(&config.cache)?)
    }

    /// Builds the services over `db` with `caches` (which may have a shared tier, see
    /// [`Caches::with_backend`]). Every namespace is created in `caches`.
    ///
    /// # Errors
    /// As [`Services::new`].
    pub fn with_caches(
        db: Database,
        config: &ServiceConfig,
        clock: Arc<dyn Clock>,
        caches: Caches,
    ) -> ServiceResult<Self> {
        let hasher = PasswordHasher::new(&config.auth)?;
        // One queue for everything: its wake-up signal reaches this process's workers.
        let queue = Arc::new(JobRepo::new(db.clone()));
        let outbox = Outbox::new(queue.clone(), clock.clone(), config.jobs.clone());
        let jobs = JobService::new(db.clone(), queue, clock.clone(), &config.jobs);
        let service_clock = clock.clone();
        let users = UserService::new(db.clone(), hasher.clone(), clock.clone(), &config.cache, &caches);
        // Availability answers: evicted per product by the rentals' writes, cleared by the catalogue's.
        let availability = caches.grouped_namespace(cache::NamespaceSpec::new(
            "availability",
            std::time::Duration::from_secs(config.cache.availability_ttl_secs.max(1)),
            config.cache.availability_capacity,
        ));
        let catalogue = CatalogueService::new(db.clone(), clock.clone(), &config.cache, &caches)
            .with_availability_cache(availability.clone());
        let idempotency = Idempotency::new(db.clone(), clock.clone(), &config.idempotency);
        let billing_repo = Arc::new(BillingRepo::new(db.clone()));
        let rentals = RentalService::new(db.clone(), billing_repo.clone(), clock.clone(), config.rentals.clone())
            .with_outbox(outbox.clone())
            .with_idempotency(idempotency.clone())
            .with_availability_cache(availability);
        let billing =
            BillingService::new(db.clone(), billing_repo, clock.clone()).with_idempotency(idempotency.clone());
        let analytics = AnalyticsService::new(db.clone(), clock.clone(), &config.cache, &caches);
        let payments = PaymentService::new(db.clone(), clock.clone())
            .with_idempotency(idempotency.clone())
            .with_deposit_config(config.deposits.clone());
        let auth = AuthService::new(db, hasher, users.clone(), &config.auth)?.with_outbox(outbox);
        Ok(Self {
            auth,
            users,
            catalogue,
            rentals,
            billing,
            analytics,
            payments,
            jobs,
            idempotency,
            clock: service_clock,
            caches,
        })
    }
}
