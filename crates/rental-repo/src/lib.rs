//! Persistence for the rental backend.
//!
//! One sea-orm implementation serves SQLite (the embedded default) and PostgreSQL. This crate owns the
//! connection pool and its statistics, migrations under an advisory lock, the query optimizer used by every
//! list (offset and keyset pagination, filter and sort whitelists, batch loading of relations) and the
//! repositories. sea-orm entities stay private; callers see plain records and [`RepoError`].
//!
//! It depends on `rental-domain` and `rental-migrations` only; it knows nothing of HTTP.

mod analytics;
mod billing;
mod catalogue;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod db;
mod entity;
mod error;
mod idempotency;
mod import;
mod jobs;
mod orders;
mod payments;
pub mod query;
mod stored;
mod users;

pub use analytics::usage::UsageRecorder;
pub use analytics::{
    AnalyticsRepo, AnalyticsStore, DashboardCounters, DashboardRecord, ExportCursor, InvoiceExportRecord,
    OrderExportRecord, PopularProductRecord, RevenueDayRecord, UtilizationRecord,
};
pub use billing::{
    BillingRepo, BillingStore, InvoiceLineRecord, InvoiceRecord, NewInvoiceRecord, NewPaymentRecord, PaymentRecord,
    invoice_list_spec,
};
pub use catalogue::{
    AVAILABILITY_WINDOW_MAX_DAYS, CatalogueRepo, CatalogueStore, CategoryChanges, CategoryRecord, LocationRecord,
    LocationStock, NewCategoryRecord, NewLocationRecord, NewProductRecord, NewUnitRecord, ProductChanges,
    ProductDetail, ProductFilter, ProductListItem, ProductRecord, StockLevelRecord, StockSummary, UnitRecord,
    parse_product_query, product_list_spec,
};
pub use config::DatabaseConfig;
pub use db::lock::BackoffPolicy;
pub use db::probe::{Availability, Probe, ProbeSettings};
pub use db::uow::UnitOfWork;
pub use db::{Backend, Database, PoolStats, StatementStats};
pub use error::{DatabaseError, RepoError, RepoResult};
pub use idempotency::{Hold, IdempotencyRecord, IdempotencyRepo, NewIdempotencyRecord};
pub use import::{
    ImportProduct, ImportedCharge, ImportedIds, ImportedInvoice, ImportedLine, ImportedOrder, OrderImporter,
};
pub use jobs::{
    ClaimedJob, JOBS_CHANNEL, JobCountRecord, JobFilter, JobRecord, JobRepo, JobState, JobStore, NewJob, job_list_spec,
};
pub use orders::{
    AssignedUnitRecord, LineTerms, LineUnits, MaintenanceRecord, NewMaintenanceRecord, NewOrderLineRecord,
    NewOrderRecord, OrderChange, OrderCustomerRecord, OrderDetail, OrderEventRecord, OrderFilter, OrderLineRecord,
    OrderProductRecord, OrderRecord, OrderRepo, OrderStore, ProductTermsRecord, ReturnedLine, SUGGESTION_HORIZON_DAYS,
    Shortage, StockHolds, Transitioned, UnitReturn, order_list_spec,
};
pub use payments::{
    DEPOSIT_STATUSES, DepositKey, DepositOrder, DepositRecord, NewStripePayment, NewWebhookEvent, PAYMENT_STATUSES,
    PaymentFacts, PaymentKey, PaymentRepo, PaymentStore, RefundRecord, StripePaymentRecord, WebhookEventRecord,
    payment_list_spec,
};
pub use users::{
    NewPasswordReset, NewRefreshToken, NewUserRecord, RefreshTokenRecord, RefreshTokenRepo, RefreshTokenStore,
    UserChanges, UserFilter, UserListItem, UserRecord, UserRepo, UserStore, user_list_spec,
};
