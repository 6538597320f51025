//! E-mail: the [`Mailer`] port over SMTP or `.eml` files, and the message templates.
//!
//! [`build`] turns the `[mail]` section ([`MailConfig`]) into the mailer the workers send with, validating
//! it at start-up: with `mail.smtp` set, an [`SmtpMailer`] (lettre's pooled async transport, STARTTLS,
//! implicit TLS, or no TLS for a loopback relay); without it, a [`FileMailer`] writing each message as
//! `<Message-ID>.eml` in `mail.outbox_dir`.
//!
//! ```toml
//! [mail]
//! from = "Rental <rental@gmail.com>"
//!
//! [mail.smtp]
//! host = "smtp.gmail.com"    # STARTTLS on 587 by default
//! username = "rental@gmail.com"
//! # password: an app password, from RENTAL__MAIL__SMTP__PASSWORD
//! ```
//!
//! Both mailers send the same MIME message: `multipart/alternative` with a text and an HTML part when the
//! [`MailMessage`](rental_service::MailMessage) has HTML, a single text part otherwise, and the message's
//! `Message-ID` (a repeat of a job carries the same id). Failures say whether a retry may help: see
//! [`SmtpMailer`].
//!
//! # Templates
//!
//! [`Templates`] renders a subject, a text part and an HTML part (values escaped) per kind of message;
//! [`Templates::compose`] makes the [`MailMessage`](rental_service::MailMessage). Every field below is
//! required (a missing one is an error, not a blank). Dates and amounts arrive formatted, as the recipient
//! should read them; amounts that carry no `currency` field include their currency (`"12.00 EUR"`).
//!
//! | kind | context fields |
//! |---|---|
//! | `welcome` | `name`, `login_url` |
//! | `order_confirmation` | `name`, `order_id`, `lines`: [{`product`, `quantity`, `starts_at`, `ends_at`, `total`}], `total`, `currency` |
//! | `pickup_reminder` | `name`, `order_id`, `starts_at` |
//! | `return_reminder` | `name`, `order_id`, `ends_at` |
//! | `overdue_notice` | `name`, `order_id`, `ends_at`, `late_fee` (so far, with currency) |
//! | `invoice` | `name`, `number`, `total` (with currency), `due_on` |
//! | `password_reset` | `name`, `reset_url`, `expires_minutes` |
//! | `daily_report` | `date`, `orders_created`, `revenue` (with currency), `overdue`, `dead_jobs` (a number) |

mod config;
mod file;
mod message;
mod smtp;
mod templates;
mod tracked;

use std::sync::Arc;

use rental_service::Mailer;

pub use config::{MailConfig, MailConfigError, SmtpConfig, SmtpTls};
pub use file::FileMailer;
pub use smtp::SmtpMailer;
pub use templates::{Rendered, TemplateError, Templates};
pub use tracked::{MailStats, MailStatsSnapshot, TrackedMailer};

/// The mailer `config` asks for: [`SmtpMailer`] when `mail.smtp` is set, [`FileMailer`] otherwise. Call it at
/// start-up; nothing connects until the first send.
///
/// # Errors
/// [`MailConfigError`] naming the key at fault (`mail.from`, `mail.smtp.host`, `mail.smtp.port`,
/// `mail.smtp.tls`, `mail.smtp.username`, `mail.smtp.password`, …), or the outbox directory that cannot be
/// created.
pub fn build(config: &MailConfig) -> Result<Arc<dyn Mailer>, MailConfigError> {
    Ok(match &config.smtp {
        Some(_) => Arc::new(SmtpMailer::new(config)?),
        None => Arc::new(FileMailer::new(config)?),
    })
}

/// [`build`], wrapped in a [`TrackedMailer`] whose [`MailStats`] (sends, failures, when each last happened)
/// are returned beside it for monitoring.
///
/// # Errors
/// As [`build`].
pub fn build_tracked(config: &MailConfig) -> Result<(Arc<dyn Mailer>, Arc<MailStats>), MailConfigError> {
    let transport = match &config.smtp {
        Some(smtp) => format!("smtp {}", smtp.host),
        None => format!("file outbox {}", config.outbox_dir.display()),
    };
    let stats = Arc::new(MailStats::new(transport));
    let mailer: Arc<dyn Mailer> = Arc::new(TrackedMailer::new(build(config)?, stats.clone()));
    Ok((mailer, stats))
}
