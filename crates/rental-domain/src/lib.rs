//! Plain types and rules of the rental domain.
//!
//! Everything here is pure: no I/O, no async runtime, no database and no HTTP. Values are built through
//! validating constructors (`parse`), so a value of a domain type is always valid. This crate must not depend
//! on tokio, sea-orm or actix; a test in `xtask` enforces it.

pub mod availability;
pub mod billing;
pub mod catalogue;
mod error;
mod money;
mod order;
mod period;
pub mod pricing;
mod user;

pub use billing::{ChargeKind, InvoiceStatus, PaymentMethod};
pub use catalogue::{CategoryName, UnitCondition};
pub use error::{Collector, DomainError, FieldError};
pub use money::{Currency, Money};
pub use order::{OrderStatus, QUOTE_START_GRACE, check_quote_not_started};
pub use period::{MAX_RENTAL_DAYS, RentalPeriod, started_days};
pub use user::{EMAIL_MAX_LEN, FULL_NAME_MAX_LEN, PASSWORD_MAX_LEN, PASSWORD_MIN_LEN};
pub use user::{Email, FullName, Password, Role, UserId};
