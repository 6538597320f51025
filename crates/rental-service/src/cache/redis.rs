//! The shared cache tier on Redis (the `redis` feature): values under `{prefix}:c:{namespace}:{generation}:{key}`
//! with their TTL, namespace generations under `{prefix}:g:{namespace}`, invalidations published on the
//! channel `{prefix}:cache-events`.
//!
//! Commands go through a connection manager that reconnects by itself; the subscription runs on its own
//! connection in a background task that resubscribes with backoff after a loss, reporting
//! [`CacheEvent::Down`] and then [`CacheEvent::Resync`] so that the caches drop what they may have missed.
//! An instance ignores its own messages (each carries the sender's random id).
//!
//! A subscription can also hang without closing (a half-open TCP connection, a frozen proxy): each instance
//! publishes a heartbeat on the channel every `heartbeat`, which comes back to its own subscription, and a
//! subscription that hears nothing at all for three heartbeats is treated as lost (Down, then resubscribe).

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::broadcast;

use crate::ports::{CacheBackend, CacheEvent, PortError, PortFuture};

/// Longest wait between two attempts to subscribe again.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(2);

/// A [`CacheBackend`] on Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisCacheBackend {
    connection: ConnectionManager,
    prefix: String,
    channel: String,
    origin: u64,
    events: broadcast::Sender<CacheEvent>,
}

impl fmt::Debug for RedisCacheBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheBackend").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn unavailable(err: redis::RedisError) -> PortError {
    PortError::Unavailable(format!("redis: {:?}", err.kind()))
}

impl RedisCacheBackend {
    /// A backend on the Redis at `url` (`redis://` or `rediss://`), its keys under `prefix`. Does not wait for
    /// Redis: when it cannot be reached, calls fail (and the caches run on their own) until it can, and the
    /// subscription task (started on the current tokio runtime) keeps trying. `connect_timeout` bounds each
    /// connection attempt.
    ///
    /// # Errors
    /// [`PortError::Rejected`] when the URL cannot be used.
    /// Every `heartbeat` the backend publishes a heartbeat; three heartbeats of silence on the subscription
    /// count as a lost subscription.
    pub fn new(url: &str, prefix: &str, connect_timeout: Duration, heartbeat: Duration) -> Result<Self, PortError> {
        let client =
            redis::Client::open(url).map_err(|e| PortError::Rejected(format!("bad Redis URL: {:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| PortError::Rejected(format!("Redis connection: {:?}", e.kind())))?;
        let (events, _) = broadcast::channel(1024);
        let backend = Self {
            connection,
            prefix: prefix.to_owned(),
            channel: format!("{prefix}:cache-events"),
            origin: rand::random(),
            events,
        };
        let heartbeat = heartbeat.max(Duration::from_millis(10));
        tokio::spawn(subscribe_forever(
            client,
            backend.channel.clone(),
            backend.origin,
            backend.events.clone(),
            connect_timeout,
            heartbeat.saturating_mul(3),
        ));
        tokio::spawn(beat_forever(backend.clone(), heartbeat));
        Ok(backend)
    }

    fn value_key(&self, key: &str) -> String {
        format!("{}:c:{key}", self.prefix)
    }

    fn generation_key(&self, namespace: &str) -> String {
        format!("{}:g:{namespace}", self.prefix)
    }

    fn encode(&self, event: &CacheEvent) -> Option<String> {
        match event {
            CacheEvent::Invalidate { namespace, key } => Some(format!("{:x}\ti\t{namespace}\t{key}", self.origin)),
            CacheEvent::Clear { namespace, generation } => {
                Some(format!("{:x}\tc\t{namespace}\t{generation}", self.origin))
            }
            _ => None,
        }
    }
}

/// Publishes a heartbeat every `interval` (each bounded by `interval`; a failed one is simply skipped: the
/// silence it leaves is what the subscription detects). Ends when nobody listens to the events any more.
async fn beat_forever(backend: RedisCacheBackend, interval: Duration) {
    let message = format!("{:x}\th\t-\t-", backend.origin);
    loop {
        tokio::time::sleep(interval).await;
        if backend.events.receiver_count() == 0 {
            return;
        }
        let mut connection = backend.connection.clone();
        let beat = connection.publish::<_, _, ()>(&backend.channel, &message);
        let _ = tokio::time::timeout(interval, beat).await;
    }
}

/// The event in `message` unless it came from `origin` (this instance) or cannot be read.
fn decode(message: &str, origin: u64) -> Option<CacheEvent> {
    let mut parts = message.splitn(4, '\t');
    let (sender, kind, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if u64::from_str_radix(sender, 16).ok()? == origin {
        return None;
    }
    match kind {
        "i" => Some(CacheEvent::Invalidate { namespace: namespace.to_owned(), key: rest.to_owned() }),
        "c" => Some(CacheEvent::Clear { namespace: namespace.to_owned(), generation: rest.parse().ok()? }),
        _ => None,
    }
}

/// Keeps a subscription to `channel` open and forwards its events; reports each loss and each recovery.
/// Ends when nobody listens any more.
async fn subscribe_forever(
    client: redis::Client,
    channel: String,
    origin: u64,
    events: broadcast::Sender<CacheEvent>,
    connect_timeout: Duration,
    silence: Duration,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        let subscribed = tokio::time::timeout(connect_timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => {
                delay = Duration::from_millis(50);
                let _ = events.send(CacheEvent::Resync);
                let mut messages = pubsub.into_on_message();
                // Any message, this instance's own heartbeats included, proves the subscription alive.
                while let Ok(Some(message)) = tokio::time::timeout(silence, messages.next()).await {
                    let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else { continue };
                    if let Some(event) = decode(text, origin) {
                        let _ = events.send(event);
                    }
                }
                let _ = events.send(CacheEvent::Down);
            }
            Ok(Err(_)) | Err(_) => {
                let _ = events.send(CacheEvent::Down);
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
    }
}

impl CacheBackend for RedisCacheBackend {
    fn get<'a>(&'a self, key: &'a str) -> PortFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            connection.get::<_, Option<Vec<u8>>>(self.value_key(key)).await.map_err(unavailable)
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            redis::cmd("SET")
                .arg(self.value_key(key))
                .arg(value)
                .arg("PX")
                .arg(millis)
                .query_async::<()>(&mut connection)
                .await
                .map_err(unavailable)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            connection.del::<_, ()>(self.value_key(key)).await.map_err(unavailable)
        })
    }

    fn publish<'a>(&'a self, event: &'a CacheEvent) -> PortFuture<'a, ()> {
        Box::pin(async move {
            let Some(message) = self.encode(event) else { return Ok(()) };
            let mut connection = self.connection.clone();
            connection.publish::<_, _, ()>(&self.channel, message).await.map_err(unavailable)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.events.subscribe()
    }

    fn generation<'a>(&'a self, namespace: &'a str) -> PortFuture<'a, u64> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let generation: Option<u64> = connection.get(self.generation_key(namespace)).await.map_err(unavailable)?;
            Ok(generation.unwrap_or(0))
        })
    }

    fn bump_generation<'a>(&'a self, namespace: &'a str) -> PortFuture<'a, u64> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            connection.incr(self.generation_key(namespace), 1_u64).await.map_err(unavailable)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_an_instance_ignores_its_own() {
        let text = "ff\ti\tusers\tsome\tkey";
        assert_eq!(
            decode(text, 1),
            Some(CacheEvent::Invalidate { namespace: "users".into(), key: "some\tkey".into() })
        );
        assert_eq!(decode(text, 0xff), None);
        assert_eq!(
            decode("a\tc\tdashboard\t7", 1),
            Some(CacheEvent::Clear { namespace: "dashboard".into(), generation: 7 })
        );
        assert_eq!(decode("a\tc\tdashboard\tseven", 1), None);
        assert_eq!(decode("garbage", 1), None);
        assert_eq!(decode("a\th\t-\t-", 1), None, "heartbeats carry no event");
    }
}
