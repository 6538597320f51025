//! Background work for the rental backend.
//!
//! - `mail`: the [`rental_service::Mailer`] port over SMTP (lettre) or `.eml` files, and the message
//!   templates (text and HTML parts).
//!
//! Library crates hold no global state and read no environment: everything comes in through config structs.

pub mod mail;
