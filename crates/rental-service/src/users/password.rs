use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use rental_domain::Password;
use tokio::sync::Semaphore;

use crate::{AuthConfig, ServiceError, ServiceResult};

/// Argon2id hashing and verification, run on tokio's blocking pool so async workers never stall on it, and
/// bounded by a semaphore so a burst of logins cannot take every core.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// Hash of a random password with the same parameters: verifying against it when the user is unknown
    /// costs exactly the work of a real check, so timing does not reveal which e-mails exist.
    dummy_hash: Arc<str>,
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
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let permits = config
            .max_concurrent_hashes
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() / 2).unwrap_or(1))
            .max(1);
        let random: [u8; 16] = rand::random();
        let dummy_hash = argon2
            .hash_password(&random)
            .map_err(|e| ServiceError::Config(format!("argon2 cannot hash: {e}")))?
            .to_string();
        Ok(Self { argon2, permits: Arc::new(Semaphore::new(permits)), dummy_hash: dummy_hash.into() })
    }

    /// Hashes a new password into a PHC string.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when the worker thread fails.
    pub async fn hash(&self, password: Password) -> ServiceResult<String> {
        let argon2 = self.argon2.clone();
        self.run(move || {
            argon2
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
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
        let argon2 = self.argon2.clone();
        let dummy = Arc::clone(&self.dummy_hash);
        self.run(move || {
            let (phc, real) = match &stored {
                Some(hash) => (hash.as_str(), true),
                None => (&*dummy, false),
            };
            let matches = match PasswordHash::new(phc) {
                Ok(parsed) => argon2.verify_password(password.expose().as_bytes(), &parsed).is_ok(),
                Err(_) => {
                    // A corrupt stored hash still costs one real verification.
                    if let Ok(parsed) = PasswordHash::new(&dummy) {
                        let _ = argon2.verify_password(password.expose().as_bytes(), &parsed);
                    }
                    false
                }
            };
            matches && real
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> ServiceResult<T> {
        let _permit =
            self.permits.acquire().await.map_err(|_| ServiceError::Internal("password hasher closed".into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| ServiceError::Internal(format!("hashing thread: {e}")))
    }
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

    #[test]
    fn out_of_range_parameters_are_a_config_error() {
        let config = AuthConfig { argon2_memory_kib: 1, ..AuthConfig::default() };
        assert!(matches!(PasswordHasher::new(&config), Err(ServiceError::Config(_))));
    }
}
