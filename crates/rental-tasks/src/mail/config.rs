//! The `[mail]` section of the configuration and its start-up validation.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use rental_service::Secret;
use serde::{Deserialize, Serialize};

/// The prefix every key in a [`MailConfigError`] starts with: the section this config sits in.
const SECTION: &str = "mail";

/// How messages leave: over SMTP when `smtp` is set, otherwise as `.eml` files in `outbox_dir` (development,
/// tests, or a machine that is not allowed to send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The sender, an address with an optional display name: `Rental <noreply@example.com>` or
    /// `noreply@example.com`. The default, at `localhost`, is only accepted for the outbox and a relay on this
    /// machine. Gmail rewrites it to the authenticated account unless it is one of that
    /// account's verified "send mail as" addresses.
    pub from: String,
    /// Where messages are written when no SMTP server is configured; created at start-up.
    pub outbox_dir: PathBuf,
    /// The SMTP server; `None` writes messages to `outbox_dir` instead.
    pub smtp: Option<SmtpConfig>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self { from: "Rental <noreply@localhost>".into(), outbox_dir: PathBuf::from("data/outbox"), smtp: None }
    }
}

/// An SMTP server to submit messages to.
///
/// Gmail: `host = "smtp.gmail.com"`, `tls = "starttls"` (port 587), `username` the account's address and
/// `password` an app password (the 16 letters, without the spaces Google shows between groups of four); set
/// the password through `RENTAL__MAIL__SMTP__PASSWORD` rather than a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name of the server; also the name its TLS certificate must carry.
    pub host: String,
    /// Port; by default 587 for `starttls`, 465 for `implicit` and 25 for `none`.
    pub port: Option<u16>,
    /// How the connection is encrypted.
    pub tls: SmtpTls,
    /// User name for `AUTH`; with `password`, both or neither.
    pub username: Option<String>,
    /// Password for `AUTH`; never printed (`Debug` and serialisation show `<redacted>`).
    pub password: Option<Secret>,
    /// Bound on connecting and on each whole send, in seconds.
    pub timeout_secs: u64,
    /// Most connections kept open for reuse.
    pub pool_max_size: u32,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: None,
            tls: SmtpTls::default(),
            username: None,
            password: None,
            timeout_secs: 10,
            pool_max_size: 4,
        }
    }
}

/// How an SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with `STARTTLS`, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Implicit,
    /// No encryption: only for a server on a loopback address (a local relay, tests).
    None,
}

impl SmtpTls {
    /// The port this mode is normally served on.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Starttls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        }
    }
}

/// A `[mail]` setting that cannot work, found at start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailConfigError {
    /// A key has a value that cannot work.
    #[error("{key}: {reason}")]
    Invalid {
        /// The full key, e.g. `mail.smtp.host`.
        key: String,
        /// What is wrong with it, meant for the operator.
        reason: String,
    },
    /// The outbox directory cannot be created.
    #[error("mail.outbox_dir: cannot create {}", path.display())]
    Outbox {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl MailConfigError {
    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        Self::Invalid { key: format!("{SECTION}.{key}"), reason: reason.into() }
    }

    /// The configuration key at fault, e.g. `mail.smtp.port`.
    pub fn key(&self) -> &str {
        match self {
            MailConfigError::Invalid { key, .. } => key,
            MailConfigError::Outbox { .. } => "mail.outbox_dir",
        }
    }
}

/// The SMTP settings after validation: what the transport is built from.
#[derive(Debug, Clone)]
pub(crate) struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// lettre's `Credentials` print nothing in `Debug`.
    pub credentials: Option<Credentials>,
    pub timeout: Duration,
    pub pool_max_size: u32,
}

impl MailConfig {
    /// The sender as a mailbox.
    ///
    /// # Errors
    /// [`MailConfigError::Invalid`] naming `mail.from`.
    pub(crate) fn sender(&self) -> Result<Mailbox, MailConfigError> {
        let from = self.from.trim();
        if from.is_empty() {
            return Err(MailConfigError::invalid("from", "must be set, e.g. \"Rental <noreply@example.com>\""));
        }
        from.parse::<Mailbox>()
            .map_err(|err| MailConfigError::invalid("from", format!("{from:?} is not an e-mail address ({err})")))
    }

    /// The sender and the SMTP settings, checked together: a sender at `localhost` (the default) only makes
    /// sense for a server on this machine, and anywhere else would be refused or marked as spam.
    ///
    /// # Errors
    /// [`MailConfigError::Invalid`] naming the first key at fault, `mail.smtp` when there is no SMTP section.
    pub(crate) fn smtp_settings(&self) -> Result<(Mailbox, SmtpSettings), MailConfigError> {
        let from = self.sender()?;
        let Some(smtp) = &self.smtp else {
            return Err(MailConfigError::invalid("smtp", "must be set"));
        };
        let settings = smtp.settings()?;
        if is_loopback(from.email.domain()) && !is_loopback(&settings.host) {
            return Err(MailConfigError::invalid(
                "from",
                format!(
                    "{} is a local address, which {} would refuse or mark as spam; set an address of your domain",
                    from.email, settings.host
                ),
            ));
        }
        Ok((from, settings))
    }

    /// Checks the outbox directory's setting (used when no SMTP server is configured).
    ///
    /// # Errors
    /// [`MailConfigError::Invalid`] naming `mail.outbox_dir`.
    pub(crate) fn outbox(&self) -> Result<PathBuf, MailConfigError> {
        if self.outbox_dir.as_os_str().is_empty() {
            return Err(MailConfigError::invalid("outbox_dir", "must be set when mail.smtp is not"));
        }
        Ok(self.outbox_dir.clone())
    }
}

impl SmtpConfig {
    /// Validates every key and resolves the defaults that depend on others (the port).
    ///
    /// # Errors
    /// [`MailConfigError::Invalid`] naming the first key at fault.
    pub(crate) fn settings(&self) -> Result<SmtpSettings, MailConfigError> {
        let host = self.host.trim();
        if host.is_empty() {
            return Err(MailConfigError::invalid("smtp.host", "must be set, e.g. \"smtp.gmail.com\""));
        }
        if host.contains("://") || host.contains(char::is_whitespace) || host.contains(['/', '@']) {
            return Err(MailConfigError::invalid(
                "smtp.host",
                format!("{host:?} is not a host name; give the name alone and the port in mail.smtp.port"),
            ));
        }
        // A bracketed IPv6 literal is how people write one next to a port; lettre wants it bare.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);

        let port = self.port.unwrap_or(self.tls.default_port());
        if port == 0 {
            return Err(MailConfigError::invalid("smtp.port", "must be between 1 and 65535"));
        }
        // The two mismatches that otherwise end in a timeout with no useful error: each side waits for the
        // other to speak first (or sends a TLS hello to a server expecting EHLO).
        match (self.tls, port) {
            (SmtpTls::Starttls, 465) => {
                return Err(MailConfigError::invalid(
                    "smtp.port",
                    "465 is the implicit-TLS port; set mail.smtp.tls = \"implicit\" or use port 587",
                ));
            }
            (SmtpTls::Implicit, 587 | 25) => {
                return Err(MailConfigError::invalid(
                    "smtp.port",
                    format!("{port} is a STARTTLS port; set mail.smtp.tls = \"starttls\" or use port 465"),
                ));
            }
            _ => {}
        }

        let tls = match self.tls {
            SmtpTls::None if !is_loopback(host) => {
                return Err(MailConfigError::invalid(
                    "smtp.tls",
                    format!(
                        "\"none\" sends mail and passwords in clear and is only allowed for a server on a \
                         loopback address (localhost, 127.0.0.0/8, ::1), not {host:?}; use \"starttls\" or \
                         \"implicit\""
                    ),
                ));
            }
            SmtpTls::None => Tls::None,
            mode @ (SmtpTls::Starttls | SmtpTls::Implicit) => {
                let parameters = TlsParameters::new(host.to_owned()).map_err(|err| {
                    MailConfigError::invalid(
                        "smtp.tls",
                        format!("cannot set up {} TLS for {host:?}: {err}", mode.as_str()),
                    )
                })?;
                if mode == SmtpTls::Starttls { Tls::Required(parameters) } else { Tls::Wrapper(parameters) }
            }
        };

        let username = self.username.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let password = self.password.as_ref().filter(|p| !p.is_empty());
        let credentials = match (username, password) {
            (Some(username), Some(password)) => {
                Some(Credentials::new(username.to_owned(), password.expose().to_owned()))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(MailConfigError::invalid(
                    "smtp.password",
                    "must be set with mail.smtp.username (both or neither)",
                ));
            }
            (None, Some(_)) => {
                return Err(MailConfigError::invalid(
                    "smtp.username",
                    "must be set with mail.smtp.password (both or neither)",
                ));
            }
        };

        if self.timeout_secs == 0 {
            return Err(MailConfigError::invalid("smtp.timeout_secs", "must be at least 1"));
        }
        if self.pool_max_size == 0 {
            return Err(MailConfigError::invalid("smtp.pool_max_size", "must be at least 1"));
        }

        Ok(SmtpSettings {
            host: host.to_owned(),
            port,
            tls,
            credentials,
            timeout: Duration::from_secs(self.timeout_secs),
            pool_max_size: self.pool_max_size,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn gmail() -> SmtpConfig {
        SmtpConfig {
            host: "smtp.gmail.com".into(),
            username: Some("rental@gmail.com".into()),
            password: Some(Secret::new("abcdefghijklmnop")),
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn the_default_sender_parses() {
        let sender = MailConfig::default().sender().unwrap();
        assert_eq!(sender.email.to_string(), "noreply@localhost");
        assert_eq!(sender.name.as_deref(), Some("Rental"));
    }

    #[test]
    fn gmail_takes_starttls_on_587_with_credentials() {
        let settings = gmail().settings().unwrap();
        assert_eq!(settings.port, 587);
        assert!(matches!(settings.tls, Tls::Required(_)));
        assert_eq!(settings.credentials, Some(Credentials::new("rental@gmail.com".into(), "abcdefghijklmnop".into())));
        assert!(!format!("{settings:?}").contains("abcdefghijklmnop"));
        assert_eq!(settings.timeout, Duration::from_secs(10));
        assert_eq!(settings.pool_max_size, 4);
    }

    #[test]
    fn the_port_defaults_by_tls_mode() {
        let implicit = SmtpConfig { tls: SmtpTls::Implicit, ..gmail() }.settings().unwrap();
        assert_eq!(implicit.port, 465);
        assert!(matches!(implicit.tls, Tls::Wrapper(_)));
        let plain = SmtpConfig { host: "127.0.0.1".into(), tls: SmtpTls::None, ..gmail() }.settings().unwrap();
        assert_eq!(plain.port, 25);
        assert!(matches!(plain.tls, Tls::None));
    }

    #[test]
    fn the_password_never_prints() {
        let config = MailConfig { smtp: Some(gmail()), ..MailConfig::default() };
        assert!(!format!("{config:?}").contains("abcdefghijklmnop"));
        let json = serde_json::to_string(&config).unwrap();
        assert!(!json.contains("abcdefghijklmnop"), "{json}");
        assert!(json.contains("<redacted>"), "{json}");
    }

    #[test]
    fn the_section_deserialises_with_defaults_and_rejects_unknown_keys() {
        let config: MailConfig = serde_json::from_value(serde_json::json!({
            "from": "Desk <desk@example.com>",
            "smtp": { "host": "smtp.gmail.com", "tls": "implicit", "password": "x", "username": "u" }
        }))
        .unwrap();
        let smtp = config.smtp.unwrap();
        assert_eq!(smtp.tls, SmtpTls::Implicit);
        assert_eq!(smtp.timeout_secs, 10);
        assert_eq!(config.outbox_dir, PathBuf::from("data/outbox"));
        let unknown = serde_json::from_value::<MailConfig>(serde_json::json!({ "smtp": { "hots": "x" } }));
        assert!(unknown.unwrap_err().to_string().contains("hots"));
        let mode = serde_json::from_value::<MailConfig>(serde_json::json!({ "smtp": { "tls": "ssl" } }));
        assert!(mode.unwrap_err().to_string().contains("starttls"));
    }
}
