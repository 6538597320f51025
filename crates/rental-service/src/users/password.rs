use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rental_domain::Password;
use tokio::sync::Semaphore;

use crate::{AuthConfig, ServiceError, ServiceResult};

/// Bytes of salt in a new hash (the PHC recommendation).
const SALT_LEN: usize = 16;

/// Requests allowed to wait per hashing permit when `auth.max_waiting_hashes` is unset.
const WAITING_PER_PERMIT: usize = 64;

/// Argon2id hashing and verification, run on tokio's blocking pool so async workers never stall on it, and
/// bounded by a semaphore so a burst of logins cannot take every core.
///
/// Argon2's working memory (`argon2_memory_kib`, 19 MiB by default) comes from a small pool of buffers, at most
/// one per permit, reused while hashes follow each other and given back to the system when the last one ends.
/// Letting argon2 allocate it per hash made the process grow by that much per blocking-pool thread that ever
/// hashed: after the first block was freed, glibc raised its mmap threshold above the block's size, so later
/// blocks came from each thread's malloc arena and stayed there (measured: 45 MiB → 525 MiB after a login storm,
/// never given back). Keeping the pool's buffers for good cost 19 MiB of an idle process instead. Each buffer
/// now reserves more address space than glibc's largest mmap threshold (32 MiB), so whatever the allocator it is
/// its own mapping, returned to the system when dropped; only the blocks argon2 uses are ever touched.
///
/// The queue in front of the permits is bounded too (`max_waiting_hashes`): past it a hash is refused at once
/// with [`ServiceError::Busy`]. actix-web does not drop a handler whose client has gone, so without the bound a
/// storm of logins left a thousand requests queued that went on hashing for twenty seconds after their clients
/// had given up, each holding its request and connection buffers meanwhile.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    queue: Arc<Queue>,
    scratch: Arc<Scratch>,
    /// Hash of a random password with the same parameters: verifying against it when the user is unknown
    /// costs exactly the work of a real check, so timing does not reveal which e-mails exist.
    dummy_hash: Arc<str>,
}

/// Reusable argon2 memory: each hash takes a buffer of the configured cost and gives it back. A stored hash
/// with a higher memory cost than configured is computed in a buffer of its own that is dropped after use.
struct Scratch {
    buffers: Mutex<Vec<Vec<Block>>>,
    keep_blocks: usize,
    /// Hashes asked for and not finished (waiting for a permit or running); the pool empties when it drops to 0.
    demand: AtomicUsize,
    /// Buffers allocated so far (for the tests: reuse is what keeps this low).
    allocated: AtomicUsize,
}

/// Blocks reserved per buffer: 33 MiB of address space, above glibc's largest dynamic mmap threshold
/// (`DEFAULT_MMAP_THRESHOLD_MAX`, 32 MiB on 64-bit), so that glibc always maps such a buffer on its own and
/// unmaps it when it is freed instead of keeping it in an arena.
const MAPPED_BLOCKS: usize = 33 * 1024 * 1024 / Block::SIZE;

/// One hash asked of the [`Scratch`]: counted from the request until its work has run (or was never started).
struct Demand(Arc<Scratch>);

impl Drop for Demand {
    fn drop(&mut self) {
        if self.0.demand.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Nothing waits or runs: give the buffers back to the system.
            self.0.buffers.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }
}

/// `blocks` zeroed blocks in an allocation of at least [`MAPPED_BLOCKS`] (the rest is reserved, never touched).
fn mapped(blocks: usize) -> Vec<Block> {
    let mut buffer = Vec::with_capacity(blocks.max(MAPPED_BLOCKS));
    buffer.resize(blocks, Block::new());
    buffer
}

/// The requests waiting for a permit, and how many may.
#[derive(Debug)]
struct Queue {
    waiting: AtomicUsize,
    limit: usize,
    /// What a refused caller is told: about how long the queue takes to drain.
    retry_after: Duration,
}

/// One place in the [`Queue`], given back when the wait ends (or its future is dropped).
struct Place<'a>(&'a Queue);

impl Queue {
    fn enter(&self) -> Option<Place<'_>> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.limit).then_some(n + 1))
            .ok()
            .map(|_| Place(self))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Scratch {
    fn new(keep_blocks: usize) -> Self {
        Self {
            buffers: Mutex::new(Vec::new()),
            keep_blocks,
            demand: AtomicUsize::new(0),
            allocated: AtomicUsize::new(0),
        }
    }

    /// Counts one more hash in demand until the returned guard is dropped.
    fn demand(scratch: &Arc<Self>) -> Demand {
        scratch.demand.fetch_add(1, Ordering::AcqRel);
        Demand(Arc::clone(scratch))
    }

    fn with_buffer<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        if blocks > self.keep_blocks {
            return work(&mut mapped(blocks));
        }
        let taken = self.buffers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buffer = taken.unwrap_or_else(|| {
            self.allocated.fetch_add(1, Ordering::Relaxed);
            mapped(self.keep_blocks)
        });
        let result = work(&mut buffer[..blocks]);
        if self.demand.load(Ordering::Acquire) > 0 {
            self.buffers.lock().unwrap_or_else(PoisonError::into_inner).push(buffer);
        }
        result
    }

    /// Buffers kept for reuse.
    #[cfg(test)]
    fn pooled(&self) -> usize {
        self.buffers.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("permits", &self.permits.available_permits()).finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with the configured argon2id cost.
    ///
    /// # Errors
    /// [`ServiceError::Config`] when the parameters are out of argon2's range.
    pub fn new(config: &AuthConfig) -> ServiceResult<Self> {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism, None)
            .map_err(|e| ServiceError::Config(format!("argon2 parameters: {e}")))?;
        let scratch = Arc::new(Scratch::new(params.block_count()));
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let permits = config
            .max_concurrent_hashes
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() / 2).unwrap_or(1))
            .max(1);
        let queue = Arc::new(Queue {
            waiting: AtomicUsize::new(0),
            limit: config.max_waiting_hashes.unwrap_or(permits * WAITING_PER_PERMIT),
            retry_after: Duration::from_secs(1),
        });
        let random: [u8; 16] = rand::random();
        let dummy_hash = hash_with(&argon2, &scratch, &random)
            .map_err(|e| ServiceError::Config(format!("argon2 cannot hash: {e}")))?;
        Ok(Self { argon2, permits: Arc::new(Semaphore::new(permits)), queue, scratch, dummy_hash: dummy_hash.into() })
    }

    /// Hashes a new password into a PHC string.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when the worker thread fails.
    pub async fn hash(&self, password: Password) -> ServiceResult<String> {
        let argon2 = self.argon2.clone();
        let scratch = Arc::clone(&self.scratch);
        self.run(move || {
            hash_with(&argon2, &scratch, password.expose().as_bytes())
                .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
        })
        .await?
    }

    /// Checks `password` against `stored`; with no stored hash (unknown user, account without password) the
    /// same work is done against a dummy hash and the answer is `false`.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when the worker thread fails.
    pub async fn verify(&self, stored: Option<String>, password: Password) -> ServiceResult<bool> {
        let dummy = Arc::clone(&self.dummy_hash);
        let scratch = Arc::clone(&self.scratch);
        self.run(move || {
            let password = password.expose().as_bytes();
            let (phc, real) = match &stored {
                Some(hash) => (hash.as_str(), true),
                None => (&*dummy, false),
            };
            let matches = match PasswordHash::new(phc) {
                Ok(parsed) => verify_with(&scratch, password, &parsed),
                Err(_) => {
                    // A corrupt stored hash still costs one real verification.
                    if let Ok(parsed) = PasswordHash::new(&dummy) {
                        verify_with(&scratch, password, &parsed);
                    }
                    false
                }
            };
            matches && real
        })
        .await
    }

    /// Runs `work` on the blocking pool under a permit: at once when one is free, after a wait when the queue
    /// has room, otherwise not at all ([`ServiceError::Busy`]).
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> ServiceResult<T> {
        let closed = || ServiceError::Internal("password hasher closed".into());
        let demand = Scratch::demand(&self.scratch);
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(closed()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let Some(_place) = self.queue.enter() else {
                    return Err(ServiceError::Busy { retry_after: self.queue.retry_after, source: None });
                };
                self.permits.acquire().await.map_err(|_| closed())?
            }
        };
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(demand);
            result
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("hashing thread: {e}")))
    }
}

/// Hashes `password` with a fresh random salt into a PHC string, in a pooled buffer.
fn hash_with(argon2: &Argon2<'_>, scratch: &Scratch, password: &[u8]) -> Result<String, String> {
    let salt_bytes: [u8; SALT_LEN] = rand::random();
    let salt = Salt::new(&salt_bytes).map_err(|e| e.to_string())?;
    let params = argon2.params();
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    scratch
        .with_buffer(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, &salt, &mut out, blocks)
        })
        .map_err(|e| e.to_string())?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| e.to_string())?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches `stored`, computed with the stored hash's own algorithm, version and cost (so
/// hashes made under older settings still verify), compared in constant time.
fn verify_with(scratch: &Scratch, password: &[u8], stored: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else { return false };
    let Ok(version) = stored.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(stored) else { return false };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let blocks = argon2.params().block_count();
    let computed =
        scratch.with_buffer(blocks, |memory| argon2.hash_password_into_with_memory(password, salt, &mut out, memory));
    computed.is_ok() && Output::new(&out).is_ok_and(|output| output == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> AuthConfig {
        AuthConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..AuthConfig::default() }
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_fail() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let hash = hasher.hash(Password::parse("correct horse").unwrap()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify(Some(hash.clone()), Password::unchecked("correct horse")).await.unwrap());
        assert!(!hasher.verify(Some(hash), Password::unchecked("wrong horse")).await.unwrap());
        assert!(!hasher.verify(None, Password::unchecked("correct horse")).await.unwrap());
        assert!(!hasher.verify(Some("garbage".into()), Password::unchecked("x")).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_interoperate_with_argon2s_own_hasher() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        // Ours verify with the stock verifier...
        let ours = hasher.hash(Password::parse("correct horse").unwrap()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse", &parsed).is_err());
        // ...and hashes made elsewhere, with other costs, verify with ours.
        let params = Params::new(2048, 2, 2, Some(24)).unwrap();
        let stock = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(b"battery").unwrap();
        assert!(hasher.verify(Some(stock.to_string()), Password::unchecked("battery")).await.unwrap());
        assert!(!hasher.verify(Some(stock.to_string()), Password::unchecked("staple")).await.unwrap());
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x10, Params::new(1024, 1, 1, None).unwrap());
        let old = argon2i.hash_password(b"battery").unwrap().to_string();
        assert!(hasher.verify(Some(old), Password::unchecked("battery")).await.unwrap());
    }

    #[tokio::test]
    async fn working_memory_is_reused_while_hashes_follow_and_given_back_when_they_stop() {
        let config = AuthConfig { max_concurrent_hashes: Some(2), ..cheap() };
        let hasher = PasswordHasher::new(&config).unwrap();
        let allocated = || hasher.scratch.allocated.load(Ordering::Relaxed);
        assert_eq!((hasher.scratch.pooled(), allocated()), (0, 1), "the dummy hash's buffer was not kept");
        // 16 hashes queued behind the 2 permits, then let go: they share the buffers of the permits.
        let busy = hasher.permits.acquire_many(2).await.unwrap();
        let mut hashes = tokio::task::JoinSet::new();
        for i in 0..16 {
            let hasher = hasher.clone();
            hashes.spawn(async move { hasher.hash(Password::parse(&format!("password {i}")).unwrap()).await });
        }
        until_waiting(&hasher, 16).await;
        drop(busy);
        while let Some(hash) = hashes.join_next().await {
            assert!(hash.unwrap().is_ok());
        }
        assert!((2..=3).contains(&allocated()), "the dummy hash's buffer and at most one per permit: {}", allocated());
        assert_eq!(hasher.scratch.pooled(), 0, "nothing waits: the buffers went back");
        assert!(hasher.scratch.buffers.lock().unwrap().is_empty());
        // Each buffer is its own mapping: more address space than glibc's largest mmap threshold.
        let buffer = mapped(1024);
        assert_eq!(buffer.len(), 1024);
        assert!(buffer.capacity() * Block::SIZE > 32 * 1024 * 1024);
        // A stored hash costlier than configured is verified in a buffer of its own.
        let costly = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(4096, 1, 1, None).unwrap());
        let stored = argon2::password_hash::PasswordHasher::hash_password(&costly, b"pw").unwrap().to_string();
        assert!(hasher.verify(Some(stored), Password::unchecked("pw")).await.unwrap());
        assert_eq!(hasher.scratch.pooled(), 0);
    }

    /// Waits until `n` callers wait for a permit.
    async fn until_waiting(hasher: &PasswordHasher, n: usize) {
        while hasher.queue.waiting.load(Ordering::Acquire) != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn past_the_waiting_bound_hashes_are_refused_at_once_and_places_come_back() {
        let config = AuthConfig { max_concurrent_hashes: Some(1), max_waiting_hashes: Some(2), ..cheap() };
        let hasher = PasswordHasher::new(&config).unwrap();
        // The one permit is taken, as by a hash in progress.
        let busy = hasher.permits.acquire().await.unwrap();
        let spawn = |i: usize| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(Password::parse(&format!("password {i}")).unwrap()).await })
        };
        let (first, second) = (spawn(1), spawn(2));
        until_waiting(&hasher, 2).await;
        let refused = hasher.verify(None, Password::unchecked("x")).await;
        assert!(
            matches!(refused, Err(ServiceError::Busy { retry_after, .. }) if retry_after.as_secs() >= 1),
            "{refused:?}"
        );
        // A caller that gives up while waiting leaves its place.
        second.abort();
        assert!(second.await.unwrap_err().is_cancelled());
        until_waiting(&hasher, 1).await;
        let third = spawn(3);
        until_waiting(&hasher, 2).await;
        drop(busy);
        assert!(first.await.unwrap().is_ok());
        assert!(third.await.unwrap().is_ok());
        assert_eq!(hasher.queue.waiting.load(Ordering::Acquire), 0);
        // With a permit free nothing waits, so nothing is refused.
        assert!(hasher.hash(Password::parse("password 4").unwrap()).await.is_ok());
    }

    #[test]
    fn out_of_range_parameters_are_a_config_error() {
        let config = AuthConfig { argon2_memory_kib: 1, ..AuthConfig::default() };
        assert!(matches!(PasswordHasher::new(&config), Err(ServiceError::Config(_))));
    }
}
