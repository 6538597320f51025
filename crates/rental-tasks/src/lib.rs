//! Background work for the rental backend.
//!
//! - [`Worker`]: claims due jobs from the durable queue (`rental_repo::JobRepo`) in batches, runs their
//!   [`JobHandler`]s concurrently under leases kept alive by a heartbeat, retries failures with exponential
//!   backoff and full jitter ([`RetryPolicy`]), dead-letters what keeps failing, rescues jobs whose worker died,
//!   and shuts down gracefully.
//! - [`Scheduler`]: periodic jobs from cron expressions, each slot enqueued exactly once across instances.
//! - [`app`]: the handlers of the rental backend's own jobs (e-mails, settlement, recovery, clean-ups,
//!   reminders, the daily report).
//! - [`mail`]: the [`rental_service::Mailer`] port over SMTP (lettre) or `.eml` files, and the message
//!   templates (text and HTML parts).
//!
//! Library crates hold no global state and read no environment: everything comes in through config structs.

pub mod app;
mod handler;
pub mod mail;
mod retry;
mod scheduler;
mod worker;

pub use handler::{JobContext, JobError, JobFuture, JobHandler, Registry};
pub use retry::RetryPolicy;
pub use scheduler::{Missed, ScheduleConfig, ScheduleError, Scheduler, SchedulerConfig};
pub use worker::{Worker, WorkerConfig, WorkerSnapshot, WorkerStats};
