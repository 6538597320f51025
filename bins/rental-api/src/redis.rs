//! The optional Redis connection, set up once and shared: today by the rate limiter, later by the caches.
//!
//! `[redis] url` unset means no Redis. When it is set but Redis cannot be reached at start-up, one warning is
//! logged and the instance runs without it (each user of the connection has its in-process fallback); a bad
//! URL is a configuration error.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rental_service::Secret;
use serde::{Deserialize, Serialize};

/// Redis settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host[:port][/db]` or `rediss://` for TLS; empty: no Redis. Redacted when printed.
    pub url: Secret,
    /// Prefix of every key this application writes.
    pub key_prefix: String,
    /// Bound on connecting, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Bound on each command, in milliseconds: a slow Redis must not slow every request down.
    pub response_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: Secret::default(), key_prefix: "rental".into(), connect_timeout_ms: 1000, response_timeout_ms: 250 }
    }
}

impl RedisConfig {
    /// Checks the URL and bounds, naming the key at fault.
    ///
    /// # Errors
    /// The message of the first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        if !self.url.is_empty() {
            ::redis::Client::open(self.url.expose())
                .map_err(|e| format!("redis.url is not a usable Redis URL ({:?})", e.kind()))?;
        }
        if self.connect_timeout_ms == 0 || self.response_timeout_ms == 0 {
            return Err("redis.connect_timeout_ms and redis.response_timeout_ms must be positive".into());
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            return Err("redis.key_prefix must be a non-empty word".into());
        }
        Ok(())
    }
}

/// A connection to Redis that reconnects by itself; cheap to clone.
#[derive(Clone)]
pub struct SharedRedis {
    connection: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRedis").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The URL cannot be used (a configuration error).
    #[error("redis.url is not a usable Redis URL")]
    Url(#[source] ::redis::RedisError),
    /// Redis did not answer.
    #[error("cannot reach Redis")]
    Unreachable(#[source] ::redis::RedisError),
}

impl SharedRedis {
    /// Connects to the Redis of `config`; `Ok(None)` when none is configured.
    ///
    /// # Errors
    /// [`RedisSetupError`] when the URL is bad or Redis does not answer a `PING`.
    pub async fn connect(config: &RedisConfig) -> Result<Option<Self>, RedisSetupError> {
        if config.url.is_empty() {
            return Ok(None);
        }
        let client = ::redis::Client::open(config.url.expose()).map_err(RedisSetupError::Url)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_number_of_retries(1);
        let mut connection =
            ConnectionManager::new_with_config(client, manager).await.map_err(RedisSetupError::Unreachable)?;
        let _: String =
            ::redis::cmd("PING").query_async(&mut connection).await.map_err(RedisSetupError::Unreachable)?;
        Ok(Some(Self { connection, prefix: config.key_prefix.clone() }))
    }

    /// Connects like [`Self::connect`], but runs without Redis after one warning when it cannot be reached.
    ///
    /// # Errors
    /// [`RedisSetupError::Url`] only: a bad URL is a configuration error, not an outage.
    pub async fn connect_or_warn(config: &RedisConfig) -> Result<Option<Self>, RedisSetupError> {
        match Self::connect(config).await {
            Err(RedisSetupError::Unreachable(err)) => {
                tracing::warn!(error = %err, "Redis is configured but cannot be reached: running without it (rate limits per instance)");
                Ok(None)
            }
            other => other,
        }
    }

    /// A handle on the connection for one command or pipeline.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The prefix of this application's keys.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}
