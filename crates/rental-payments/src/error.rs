//! [`PaymentError`]: what can go wrong in building the payment side.

/// Result of this crate's fallible functions.
pub type PaymentResult<T> = Result<T, PaymentError>;

/// What can go wrong in building the payment side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// No secret key: payments are switched off.
    #[error("stripe is not configured (no stripe.secret_key)")]
    NotConfigured,
    /// A key or URL in the configuration cannot be used.
    #[error("invalid stripe configuration: {0}")]
    Config(String),
}
