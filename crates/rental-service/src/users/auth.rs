//! Login, tokens, registration and password changes.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rental_domain::{Collector, Email, FullName, Password, Role, UserId};
use rental_repo::{
    Database, NewRefreshToken, NewUserRecord, RefreshTokenRecord, RefreshTokenRepo, RefreshTokenStore, RepoError,
    UnitOfWork, UserChanges, UserRecord, UserRepo, UserStore,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    AuthConfig, JobsConfig, Outbox, PasswordHasher, Principal, ServiceError, ServiceResult, UserService, UserView,
};

/// The one answer to a failed login, whether the address is unknown or the password wrong.
const BAD_CREDENTIALS: &str = "invalid e-mail or password";
/// Longest password looked at during login; longer input is refused after the same work as a wrong one.
const LOGIN_PASSWORD_MAX: usize = 1024;

/// Tokens handed out at login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPair {
    /// Short-lived JWT for the `Authorization: Bearer` header.
    pub access_token: String,
    /// Opaque token that buys the next pair once.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// A self-service sign-up, as received.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Address.
    pub email: String,
    /// Name.
    pub full_name: String,
    /// Password.
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    sid: Uuid,
    iss: String,
    iat: i64,
    exp: i64,
}

/// Authentication, over a [`UserStore`] and a [`RefreshTokenStore`] (the sea-orm repositories unless others are
/// given). Cheap to clone.
pub struct AuthService<U = UserRepo, T = RefreshTokenRepo> {
    pub(super) db: Database,
    pub(super) tokens: Arc<T>,
    pub(super) hasher: PasswordHasher,
    pub(super) user_service: UserService<U>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// Enqueues the e-mails (welcome, password reset) in the unit of the change they belong to.
    pub(super) outbox: Outbox,
    /// Key of the HMAC that derives a password-reset token from its id (the JWT secret).
    pub(super) reset_key: Arc<[u8]>,
}

impl<U, T> Clone for AuthService<U, T> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            tokens: self.tokens.clone(),
            hasher: self.hasher.clone(),
            user_service: self.user_service.clone(),
            encoding: self.encoding.clone(),
            decoding: self.decoding.clone(),
            validation: self.validation.clone(),
            issuer: self.issuer.clone(),
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            outbox: self.outbox.clone(),
            reset_key: self.reset_key.clone(),
        }
    }
}

impl<U, T> std::fmt::Debug for AuthService<U, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// Seconds an access token is still accepted after its expiry, for clocks a little apart.
const LEEWAY_SECS: i64 = 5;

/// Shortest JWT secret accepted: HS256 wants at least 256 bits of key.
pub const MIN_SECRET_LEN: usize = 32;

/// What spending a refresh token came to; the unit commits in every case, so that a revocation sticks.
enum Rotation {
    Issued(TokenPair),
    Refused(&'static str),
}

impl AuthService {
    /// Builds the service over `db`'s refresh-token repository and `user_service`'s users (and clock).
    ///
    /// # Errors
    /// [`ServiceError::Config`] when the JWT secret is shorter than 32 bytes.
    pub fn new(
        db: Database,
        hasher: PasswordHasher,
        user_service: UserService,
        config: &AuthConfig,
    ) -> ServiceResult<Self> {
        Self::with_store(db.clone(), Arc::new(RefreshTokenRepo::new(db)), hasher, user_service, config)
    }
}

impl<U: UserStore + 'static, T: RefreshTokenStore + 'static> AuthService<U, T> {
    /// Builds the service over another implementation of the token store; `db` gives the units of work.
    ///
    /// # Errors
    /// [`ServiceError::Config`] when the JWT secret is shorter than 32 bytes.
    pub fn with_store(
        db: Database,
        tokens: Arc<T>,
        hasher: PasswordHasher,
        user_service: UserService<U>,
        config: &AuthConfig,
    ) -> ServiceResult<Self> {
        let secret = config.jwt_secret.expose().as_bytes();
        if secret.len() < MIN_SECRET_LEN {
            return Err(ServiceError::Config(format!("auth.jwt_secret must be at least {MIN_SECRET_LEN} bytes")));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS.unsigned_abs();
        // Expiry is judged by the service's clock (`authenticate`), not by the library's reading of the system's.
        validation.validate_exp = false;
        let seconds = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        let outbox = Outbox::over(db.clone(), user_service.clock.clone(), JobsConfig::default());
        Ok(Self {
            tokens,
            hasher,
            user_service,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            access_ttl: seconds(config.access_token_ttl_secs),
            refresh_ttl: seconds(config.refresh_token_ttl_secs),
            outbox,
            reset_key: Arc::from(secret),
            db,
        })
    }

    /// The same service enqueueing its e-mails through `outbox` (the services share one queue).
    #[must_use]
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }

    /// Exchanges an e-mail and password for tokens. An unknown address and a wrong password give the same
    /// error after the same argon2 work.
    ///
    /// # Errors
    /// [`ServiceError::Unauthorized`] for bad credentials; [`ServiceError::Forbidden`] for a deactivated account
    /// (told only to someone who knows its password).
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, email: &str, password: &str) -> ServiceResult<TokenPair> {
        let user = match Email::parse(email) {
            Ok(email) => self.users().find_by_email(&email).await?,
            Err(_) => None,
        };
        let too_long = password.len() > LOGIN_PASSWORD_MAX;
        let candidate = if too_long { "" } else { password };
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let matches = self.hasher.verify(stored, Password::unchecked(candidate)).await?;
        let user = match user {
            Some(user) if matches && !too_long => user,
            _ => return Err(ServiceError::Unauthorized(BAD_CREDENTIALS)),
        };
        if !user.is_active {
            return Err(ServiceError::Forbidden("this account is deactivated"));
        }
        self.db.write(async |uow| self.issue(uow, &user, Uuid::now_v7()).await).await
    }

    /// Rotates a refresh token: the token is spent and a new pair of the same session returned. Presenting a
    /// token that was already spent revokes the whole session, since one of its holders must be a thief.
    ///
    /// # Errors
    /// [`ServiceError::Unauthorized`] for an unknown, expired, revoked or reused token, or a user who is gone
    /// or deactivated.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> ServiceResult<TokenPair> {
        let Some(stored) = self.tokens.find_by_hash(&digest(refresh_token)).await? else {
            return Err(ServiceError::Unauthorized("invalid refresh token"));
        };
        if stored.revoked_at.is_some() {
            return Err(ServiceError::Unauthorized("refresh token revoked"));
        }
        // Spending the token and issuing its successor (or revoking the session) are one unit: a failure
        // cannot leave a spent token without a successor.
        match self.db.write(async |uow| self.rotate(uow, &stored).await).await? {
            Rotation::Issued(pair) => Ok(pair),
            Rotation::Refused(reason) => Err(ServiceError::Unauthorized(reason)),
        }
    }

    async fn rotate(&self, uow: &UnitOfWork, stored: &RefreshTokenRecord) -> ServiceResult<Rotation> {
        let now = self.now();
        if stored.used_at.is_some() || !self.tokens.mark_used(uow, stored.id, now).await? {
            self.tokens.revoke_family(uow, stored.family_id, now).await?;
            tracing::warn!(user_id = %stored.user_id, "refresh token reused; session revoked");
            return Ok(Rotation::Refused("refresh token already used; the session has been revoked"));
        }
        if stored.expires_at <= now {
            return Ok(Rotation::Refused("refresh token expired"));
        }
        match self.users().find(stored.user_id).await? {
            Some(user) if user.is_active => Ok(Rotation::Issued(self.issue(uow, &user, stored.family_id).await?)),
            _ => {
                self.tokens.revoke_family(uow, stored.family_id, now).await?;
                Ok(Rotation::Refused("the account is deactivated or gone"))
            }
        }
    }

    /// Ends the session of a refresh token. Unknown tokens are accepted silently: logging out twice is fine.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when storage fails.
    pub async fn logout(&self, refresh_token: &str) -> ServiceResult<()> {
        if let Some(stored) = self.tokens.find_by_hash(&digest(refresh_token)).await? {
            let now = self.now();
            self.db.write(async |uow| self.tokens.revoke_family(uow, stored.family_id, now).await).await?;
        }
        Ok(())
    }

    /// Creates a customer account.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] listing every bad field; [`ServiceError::Conflict`] when the address is taken.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, registration: Registration) -> ServiceResult<UserView> {
        let mut errors = Collector::default();
        let email = errors.take(Email::parse(&registration.email));
        let full_name = errors.take(FullName::parse(&registration.full_name));
        let password = errors.take(Password::parse(&registration.password));
        errors.finish()?;
        let (Some(email), Some(full_name), Some(password)) = (email, full_name, password) else {
            return Err(ServiceError::Internal("validated values missing".into()));
        };
        let record = NewUserRecord {
            email,
            full_name,
            password_hash: Some(self.hasher.hash(password).await?),
            is_active: true,
            is_superuser: false,
            roles: vec![Role::Customer],
        };
        let now = self.now();
        // The account and its welcome e-mail land together.
        let user = self
            .db
            .write(async |uow| {
                let user = self.users().create(uow, record, now).await?;
                let context = json!({ "name": user.full_name });
                self.outbox.mail(uow, "welcome", &user.email, context, None).await?;
                Ok::<_, RepoError>(user)
            })
            .await?;
        self.user_service.evict_lists().await;
        Ok(user.into())
    }

    /// Checks an access token and the account behind it. A deactivated or deleted account is refused even
    /// with a token issued before.
    ///
    /// # Errors
    /// [`ServiceError::Unauthorized`] for a malformed, forged or expired token or an unusable account.
    pub async fn authenticate(&self, access_token: &str) -> ServiceResult<Principal> {
        let claims = jsonwebtoken::decode::<Claims>(access_token, &self.decoding, &self.validation)
            .map_err(|_| ServiceError::Unauthorized("invalid access token"))?
            .claims;
        if claims.exp.saturating_add(LEEWAY_SECS) < self.now().timestamp() {
            return Err(ServiceError::Unauthorized("access token expired"));
        }
        let user_id = UserId::from_uuid(claims.sub);
        match &*self.user_service.cached(user_id).await? {
            Some(user) if user.is_active => Ok(Principal {
                user_id,
                roles: user.roles.clone(),
                is_superuser: user.is_superuser,
                session_id: claims.sid,
            }),
            Some(_) => Err(ServiceError::Unauthorized("this account is deactivated")),
            None => Err(ServiceError::Unauthorized("the account no longer exists")),
        }
    }

    /// Changes the caller's password after checking the current one, and ends all their sessions.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a new password that breaks the rules; [`ServiceError::Forbidden`] for a
    /// wrong current password: the request is valid, but the caller failed to prove they may make it (and a 401
    /// would tell clients that their access token is bad).
    #[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
    pub async fn change_password(&self, principal: &Principal, current: &str, new: &str) -> ServiceResult<()> {
        let new = Password::parse_field(new, "new_password")?;
        let user = self.users().find(principal.user_id).await?.ok_or(ServiceError::Unauthorized("account gone"))?;
        if !self.hasher.verify(user.password_hash.clone(), Password::unchecked(current)).await? {
            return Err(ServiceError::Forbidden("current_password is not your current password"));
        }
        let hash = self.hasher.hash(new).await?;
        let (now, changes) = (self.now(), UserChanges { password_hash: Some(hash), ..UserChanges::default() });
        // The new password and the end of every session land together.
        self.db
            .write(async |uow| {
                self.users().update(uow, user.id, changes, now).await?;
                self.tokens.revoke_user(uow, user.id, now).await
            })
            .await?;
        self.user_service.evict(user.id).await;
        Ok(())
    }

    /// Deletes refresh tokens that expired before now (periodic clean-up).
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when storage fails.
    pub async fn purge_expired_tokens(&self) -> ServiceResult<u64> {
        let now = self.now();
        Ok(self.db.write(async |uow| self.tokens.delete_expired(uow, now).await).await?)
    }

    pub(super) fn users(&self) -> &U {
        &self.user_service.repo
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.user_service.clock.now()
    }

    async fn issue(&self, uow: &UnitOfWork, user: &UserRecord, family_id: Uuid) -> ServiceResult<TokenPair> {
        let now = self.now();
        let claims = Claims {
            sub: user.id.as_uuid(),
            sid: family_id,
            iss: self.issuer.clone(),
            iat: now.timestamp(),
            exp: (now + self.access_ttl).timestamp(),
        };
        let access_token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ServiceError::Internal(format!("signing token: {e}")))?;
        let secret: [u8; 32] = rand::random();
        let refresh_token = URL_SAFE_NO_PAD.encode(secret);
        let token = NewRefreshToken {
            user_id: user.id,
            family_id,
            token_hash: digest(&refresh_token),
            expires_at: now + self.refresh_ttl,
        };
        self.tokens.insert(uow, token, now).await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: "bearer",
            expires_in: u64::try_from(self.access_ttl.num_seconds()).unwrap_or(0),
        })
    }
}

/// Hex SHA-256 of a refresh token: what is stored instead of the token.
pub(super) fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
