//! [`SmtpMailer`]: the [`Mailer`] over an SMTP server (lettre's pooled async transport).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rental_service::{MailMessage, Mailer, PortError, PortFuture};

use super::config::{MailConfig, MailConfigError};
use super::message;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Sends messages to an SMTP server, reusing up to `pool_max_size` open connections.
///
/// Every send, connecting included, is bounded by `timeout_secs`. lettre bounds only the connect itself, so
/// a server that stops answering in the middle of a conversation is cut off by this bound. A send cut off
/// this way leaves its connection in the middle of a transaction, and lettre would put it back in the pool,
/// where the next send could read the late replies of the abandoned one; so a timeout discards the whole pool
/// and the next send starts a new one.
///
/// Errors: a permanent reply (5xx: unknown recipient, refused sender, failed authentication) or an address
/// that does not parse is [`PortError::Rejected`] with the server's message; a transient reply (4xx), a
/// refused or reset connection, a TLS failure and anything else is [`PortError::Unavailable`]; exceeding the
/// bound is [`PortError::Timeout`].
pub struct SmtpMailer {
    from: Mailbox,
    builder: AsyncSmtpTransportBuilder,
    timeout: Duration,
    endpoint: String,
    /// Built on the first send (lettre's pool spawns a task, which needs the runtime) and again after a
    /// timeout discarded it.
    current: Mutex<Current>,
}

/// The pool in use; the generation tells a timed-out send whether the pool it used is still this one.
#[derive(Default)]
struct Current {
    generation: u64,
    transport: Option<Transport>,
}

impl SmtpMailer {
    /// A mailer for `config.smtp`, sending as `config.from`. Connects on the first send.
    ///
    /// # Errors
    /// [`MailConfigError`] naming the first key at fault, `mail.smtp` when there is no SMTP section.
    pub fn new(config: &MailConfig) -> Result<Self, MailConfigError> {
        let (from, settings) = config.smtp_settings()?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
            .port(settings.port)
            .tls(settings.tls)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(settings.pool_max_size));
        if let Some(credentials) = settings.credentials {
            builder = builder.credentials(credentials);
        }
        Ok(Self {
            from,
            builder,
            timeout: settings.timeout,
            endpoint: format!("{}:{}", settings.host, settings.port),
            current: Mutex::new(Current::default()),
        })
    }

    fn transport(&self) -> (u64, Transport) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let transport = current.transport.get_or_insert_with(|| self.builder.clone().build()).clone();
        (current.generation, transport)
    }

    fn discard(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.generation == generation {
            // The pool closes its idle connections once the sends still holding it have finished.
            current.generation += 1;
            current.transport = None;
        }
    }

    async fn deliver(&self, message: &MailMessage) -> Result<(), PortError> {
        let outgoing = message::build(&self.from, message)?;
        let (generation, transport) = self.transport();
        match tokio::time::timeout(self.timeout, transport.send(outgoing.message)).await {
            Ok(Ok(_response)) => {
                tracing::debug!(message_id = %outgoing.message_id, server = %self.endpoint, "mail sent");
                Ok(())
            }
            Ok(Err(err)) => Err(port_error(&err, self.timeout)),
            Err(_elapsed) => {
                self.discard(generation);
                Err(PortError::Timeout(self.timeout))
            }
        }
    }

    async fn test_connection(&self) -> Result<(), PortError> {
        let (generation, transport) = self.transport();
        match tokio::time::timeout(self.timeout, transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(PortError::Unavailable(format!("{} did not answer NOOP", self.endpoint))),
            Ok(Err(err)) => Err(port_error(&err, self.timeout)),
            Err(_elapsed) => {
                self.discard(generation);
                Err(PortError::Timeout(self.timeout))
            }
        }
    }
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .field("server", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, message: &'a MailMessage) -> PortFuture<'a, ()> {
        Box::pin(self.deliver(message))
    }

    /// Connects (through the pool, bounded by `timeout_secs`) and asks the server for a NOOP.
    fn check(&self) -> PortFuture<'_, ()> {
        Box::pin(self.test_connection())
    }
}

/// Whether a retry may help, from lettre's classification of the failure.
fn port_error(err: &lettre::transport::smtp::Error, bound: Duration) -> PortError {
    if err.is_permanent() {
        // lettre's message carries the code and every line of the server's reply.
        PortError::Rejected(err.to_string())
    } else if err.is_timeout() {
        PortError::Timeout(bound)
    } else {
        PortError::Unavailable(error_chain(err))
    }
}

/// The error with its causes, for the job's record of why it will be retried.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // lettre's Display already ends with its direct cause.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
