//! Stripe for the rental backend: [`StripeGateway`], the [`rental_service::PaymentGateway`] port on
//! async-stripe 1.0 (payment intents, manual-capture deposits, checkout sessions, customers, refunds), built
//! from a [`StripeConfig`].
//!
//! Every mutating call carries the idempotency key the service derived from its own record, and every call is
//! bounded in time (see [`gateway`]). It depends on the service layer for the port and on nothing of HTTP:
//! the binary wires it in.

mod config;
mod error;
pub mod gateway;
pub mod webhook;

/// The Stripe API version of the pinned async-stripe release: the version every request names
/// (`Stripe-Version`), and the one the webhook endpoint must be set to so that events parse as this crate reads
/// them.
pub const API_VERSION: &str = "2026-09-30.endive";

pub use config::{STRIPE_API_BASE, StripeConfig};
pub use error::{PaymentError, PaymentResult};
pub use gateway::{REFERENCE_KEY, StripeGateway};
pub use webhook::{EventEffect, HANDLED_EVENTS, StripeEvent, WebhookError, WebhookVerifier};
