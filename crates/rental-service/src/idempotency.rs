//! Idempotent mutating operations: the same `Idempotency-Key` and request within the key's lifetime (24 hours
//! by default) gets the first request's answer again, and its effect happens once.
//!
//! How a caller (the HTTP layer) uses it:
//!
//! 1. build an [`IdempotencyClaim`] from the key, the caller, the operation and the request's bytes;
//! 2. [`Idempotency::lookup`]: a committed record of the same request is the answer to replay; a record of
//!    another request is [`ServiceError::IdempotencyMismatch`];
//! 3. otherwise run the operation on the service made for the claim (for example
//!    [`RentalService::idempotent`](crate::RentalService::idempotent)): the service claims the key at the start
//!    of the effect's unit of work ([`Idempotency::claim`]) and stores the answer it is about to return in the
//!    same unit ([`Idempotency::complete`]). The record therefore exists if and only if the effect committed: a
//!    failed effect rolls the claim back with everything else, and the key can be used again.
//! 4. when the claim finds the key taken (a concurrent duplicate committed first; on PostgreSQL the claim
//!    waits for that unit to end), the operation fails with [`ServiceError::IdempotencyKeyInUse`] having done
//!    nothing; look up again and replay.

use std::sync::Arc;

use chrono::Duration;
use rental_repo::{Database, IdempotencyRepo, NewIdempotencyRecord, RepoResult, UnitOfWork};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Clock, Principal, ServiceError, ServiceResult};

mod hold;

pub use hold::Held;

/// Most characters of an idempotency key.
pub const MAX_KEY_LEN: usize = 255;

/// Records purged by one statement batch of [`Idempotency::purge_expired`].
const PURGE_BATCH: u64 = 5_000;

/// How idempotency keys behave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// How long a key's record answers replays (seconds); after that the key counts as new. Default 86,400
    /// (24 hours).
    pub ttl_secs: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self { ttl_secs: 86_400 }
    }
}

/// A valid idempotency key: 1 to 255 printable ASCII characters (space to `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks `key`.
    ///
    /// # Errors
    /// Why the key is not valid, for the client.
    pub fn parse(key: &str) -> Result<Self, &'static str> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err("must be 1 to 255 characters long");
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err("must be printable ASCII");
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One request's claim of an idempotency key: whose key it is and for which operation (the scope), and a digest
/// of the request that a later use of the key must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    scope: String,
    key: IdempotencyKey,
    fingerprint: String,
    status: u16,
}

impl IdempotencyClaim {
    /// A claim of `key` by `caller` (`None`: anonymous) for the operation `method route` (the route's pattern,
    /// such as `/api/v1/rentals/{id}/cancel`), made with a request to `path` (the actual path and query) with
    /// `body`. `status` is the status the operation answers with when it succeeds, stored with the answer.
    pub fn new(
        caller: Option<&Principal>,
        key: IdempotencyKey,
        method: &str,
        route: &str,
        path: &str,
        body: &[u8],
        status: u16,
    ) -> Self {
        let owner = caller.map_or_else(|| "anonymous".to_owned(), |p| p.user_id.as_uuid().to_string());
        let mut digest = Sha256::new();
        for part in [method.as_bytes(), path.as_bytes()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.update(body);
        Self { scope: format!("{owner} {method} {route}"), key, fingerprint: hex::encode(digest.finalize()), status }
    }

    /// The key.
    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// The status stored with a successful answer.
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// A stored answer, to be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// Its status.
    pub status: u16,
    /// Its body, JSON text.
    pub body: String,
}

/// Idempotency records: look-ups before an operation, claims and answers inside its unit of work, the purge.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Idempotency {
    repo: IdempotencyRepo,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

impl Idempotency {
    /// The records of `db`, judged by `clock`.
    pub fn new(db: Database, clock: Arc<dyn Clock>, config: &IdempotencyConfig) -> Self {
        // Bounded so that the arithmetic on instants cannot overflow; settings refuse more than a year anyway.
        let ttl = Duration::seconds(i64::try_from(config.ttl_secs.min(3_650 * 86_400)).unwrap_or(86_400));
        Self { repo: IdempotencyRepo::new(db), clock, ttl }
    }

    /// The answer stored for `claim`'s key, when the key was used, within its lifetime, by a request whose
    /// effect committed.
    ///
    /// # Errors
    /// [`ServiceError::IdempotencyMismatch`] when the key was used with another request (method, path or body);
    /// [`ServiceError::IdempotencyKeyInUse`] when its record holds no answer; storage errors.
    pub async fn lookup(&self, claim: &IdempotencyClaim) -> ServiceResult<Option<StoredResponse>> {
        let now = self.clock.now();
        let Some(record) = self.repo.find(&claim.scope, claim.key(), now).await? else {
            return Ok(None);
        };
        if record.fingerprint != claim.fingerprint {
            return Err(ServiceError::IdempotencyMismatch);
        }
        match (record.response_status, record.response_body) {
            (Some(status), Some(body)) => Ok(Some(StoredResponse { status, body })),
            // A hold that ended without an answer: the next request with the key resumes it.
            _ if record.held_until.is_some_and(|held| held <= now) => Ok(None),
            _ => Err(ServiceError::IdempotencyKeyInUse),
        }
    }

    /// Claims `claim`'s key in `uow`, the unit of work of the operation's effect.
    ///
    /// # Errors
    /// [`ServiceError::IdempotencyKeyInUse`] when a record that has not expired holds the key (look it up
    /// again: it is the answer); storage errors.
    pub async fn claim(&self, uow: &UnitOfWork, claim: &IdempotencyClaim) -> ServiceResult<()> {
        let now = self.clock.now();
        let record = NewIdempotencyRecord {
            scope: claim.scope.clone(),
            key: claim.key().to_owned(),
            fingerprint: claim.fingerprint.clone(),
            created_at: now,
            expires_at: now + self.ttl,
        };
        if self.repo.claim(uow, &record).await? { Ok(()) } else { Err(ServiceError::IdempotencyKeyInUse) }
    }

    /// Stores `answer` as the answer to `claim` in `uow`, the unit that claimed it.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn complete<T: Serialize + ?Sized>(
        &self,
        uow: &UnitOfWork,
        claim: &IdempotencyClaim,
        answer: &T,
    ) -> RepoResult<()> {
        self.repo.complete(uow, &claim.scope, claim.key(), claim.status, answer).await
    }

    /// Begins a unit of work on `db` and claims `claim`'s key in it, if there is a claim: the first step of an
    /// idempotent operation. The unit is rolled back when the claim fails.
    ///
    /// # Errors
    /// As [`Idempotency::claim`], and when the unit cannot begin.
    pub async fn begin(&self, db: &Database, claim: Option<&IdempotencyClaim>) -> ServiceResult<UnitOfWork> {
        let uow = db.begin().await?;
        if let Some(claim) = claim
            && let Err(err) = self.claim(&uow, claim).await
        {
            uow.rollback().await;
            return Err(err);
        }
        Ok(uow)
    }

    /// Stores the answer in `result` for `claim` in `uow`, when there is a claim and the operation succeeded:
    /// the last step of an idempotent operation before its unit ends.
    ///
    /// # Errors
    /// `result`'s error, or the storage error of the answer.
    pub async fn completed<T: Serialize>(
        &self,
        uow: &UnitOfWork,
        claim: Option<&IdempotencyClaim>,
        result: RepoResult<T>,
    ) -> RepoResult<T> {
        if let (Some(claim), Ok(answer)) = (claim, &result) {
            self.complete(uow, claim, answer).await?;
        }
        result
    }

    /// Deletes every record that has expired; the number deleted. The scheduled purge job runs it; expired
    /// records are ignored by look-ups and taken over by claims meanwhile.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn purge_expired(&self) -> ServiceResult<u64> {
        let now = self.clock.now();
        let mut purged = 0;
        loop {
            let batch = self.repo.purge_expired(now, PURGE_BATCH).await?;
            purged += batch;
            if batch < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_of_1_to_255_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("order 42 ~!").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("é").is_err());
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body_and_the_scope_the_caller() {
        let key = || IdempotencyKey::parse("k").unwrap_or_else(|_| unreachable!());
        let a = IdempotencyClaim::new(None, key(), "POST", "/r", "/r", b"{}", 201);
        let same = IdempotencyClaim::new(None, key(), "POST", "/r", "/r", b"{}", 201);
        assert_eq!(a, same);
        let body = IdempotencyClaim::new(None, key(), "POST", "/r", "/r", b"{ }", 201);
        assert_ne!(a.fingerprint, body.fingerprint);
        let path = IdempotencyClaim::new(None, key(), "POST", "/r", "/r?x", b"{}", 201);
        assert_ne!(a.fingerprint, path.fingerprint);
        // The lengths are hashed too: moving a byte from the path to the body changes the digest.
        let shifted = IdempotencyClaim::new(None, key(), "POST", "/r", "/", b"r{}", 201);
        assert_ne!(a.fingerprint, shifted.fingerprint);
        let user = Principal::system();
        let b = IdempotencyClaim::new(Some(&user), key(), "POST", "/r", "/r", b"{}", 201);
        assert_ne!(a.scope, b.scope);
        assert_eq!(a.fingerprint, b.fingerprint);
    }
}
