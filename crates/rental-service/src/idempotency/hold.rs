//! Keys held across a call to another system (see `rental_repo`'s `IdempotencyRepo::hold`): the payment
//! operations claim their key in a committed unit of their own, call Stripe with a key derived from the
//! record they made, and store the answer with their effect in one unit; a failure before Stripe's outcome is
//! known releases the hold and a crash lets it run out, after which a retry with the key resumes the claim.

use chrono::Duration;
use rental_repo::{Hold, NewIdempotencyRecord, RepoResult, UnitOfWork};

use super::{Idempotency, IdempotencyClaim};
use crate::{ServiceError, ServiceResult};

/// How a held claim starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The first request with the key: make the record, note it with [`Idempotency::note`].
    New,
    /// A retry after the first request failed or crashed without an answer: carry on with the record the first
    /// one noted (`None`: it noted none; make one).
    Resumed(Option<String>),
}

impl Idempotency {
    /// Claims `claim`'s key in `uow`, held for `lease` (longer than the call to the other system can take).
    ///
    /// # Errors
    /// [`ServiceError::IdempotencyKeyInUse`] when the key is taken: answered (replay it), held by a request
    /// still running (409), or used with another request (422); storage errors.
    pub async fn hold(&self, uow: &UnitOfWork, claim: &IdempotencyClaim, lease: Duration) -> ServiceResult<Held> {
        let now = self.clock.now();
        let record = NewIdempotencyRecord {
            scope: claim.scope.clone(),
            key: claim.key().to_owned(),
            fingerprint: claim.fingerprint.clone(),
            created_at: now,
            expires_at: now + self.ttl,
        };
        match self.repo.hold(uow, &record, now + lease).await? {
            Hold::New => Ok(Held::New),
            Hold::Resumed { resource } => Ok(Held::Resumed(resource)),
            Hold::Taken => Err(ServiceError::IdempotencyKeyInUse),
        }
    }

    /// Notes in `uow` (the claim's) the id of our own record the held claim made.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn note(&self, uow: &UnitOfWork, claim: &IdempotencyClaim, resource: &str) -> RepoResult<()> {
        self.repo.set_resource(uow, &claim.scope, claim.key(), resource).await
    }

    /// Ends the hold of `claim` now: the operation failed without knowing the other system's outcome, and the
    /// next request with the key resumes it (sending the other system the same key). A failure to release is
    /// logged: the hold then runs out by itself.
    pub async fn release(&self, claim: &IdempotencyClaim) {
        if let Err(err) = self.repo.release(&claim.scope, claim.key(), self.clock.now()).await {
            tracing::warn!(error = %err, "an idempotency key's hold could not be released; it runs out by itself");
        }
    }

    /// Drops `claim`'s answerless record in `uow`: the other system refused for good, and the next request with
    /// the key starts afresh.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn forget(&self, uow: &UnitOfWork, claim: &IdempotencyClaim) -> RepoResult<()> {
        self.repo.forget(uow, &claim.scope, claim.key()).await
    }
}
