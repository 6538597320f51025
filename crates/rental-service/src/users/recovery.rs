//! Password recovery: a reset token mailed from the job queue, spent once within an hour, ending every session.
//!
//! The request always does the same work (it enqueues one job) and gets the same answer, whether or not the
//! address belongs to anyone, so neither the answer nor its timing tells. The job finds the user and stores the
//! token's digest under the job's id. The token itself is never stored: it is an HMAC of that id under the
//! service's secret, so a repeated run of the job mails the same token and stores nothing new.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use hmac::{Hmac, Mac};
use rental_domain::{Email, Password};
use rental_repo::{NewPasswordReset, RefreshTokenStore, RepoError, UserChanges, UserStore};
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;

use super::auth::digest;
use crate::jobs::kinds;
use crate::{AuthService, ServiceError, ServiceResult};

/// How long a reset token is accepted.
pub const RESET_TOKEN_TTL_MINUTES: i64 = 60;
/// Longest reset token looked at (ours are 43 characters).
const RESET_TOKEN_MAX: usize = 128;

/// The e-mail a recovery job sends: to whom, and the token to put in its link.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordResetMail {
    /// The user's address.
    pub to: String,
    /// The user's name.
    pub name: String,
    /// The token (goes into the link only).
    pub token: String,
    /// Minutes it is valid.
    pub expires_minutes: i64,
}

impl std::fmt::Debug for PasswordResetMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordResetMail").field("to", &self.to).finish_non_exhaustive()
    }
}

impl<U: UserStore + 'static, T: RefreshTokenStore + 'static> AuthService<U, T> {
    /// Starts a password recovery for `email`: enqueues the recovery job, and nothing else, whether or not the
    /// address belongs to anyone.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a string that is not an e-mail address (which says nothing about users).
    pub async fn request_password_recovery(&self, email: &str) -> ServiceResult<()> {
        let email = Email::parse(email)?;
        let payload = json!({ "email": email.as_str() });
        self.db
            .write(async |uow| self.outbox.enqueue_value(uow, kinds::PASSWORD_RECOVERY, payload, None, None).await)
            .await?;
        Ok(())
    }

    /// The work of recovery job `job_id`: when `email` belongs to an active user, stores the digest of the
    /// job's reset token (once, however often the job runs) and returns the e-mail to send; `None` otherwise.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when storage fails.
    pub async fn prepare_password_reset(&self, email: &str, job_id: Uuid) -> ServiceResult<Option<PasswordResetMail>> {
        let Ok(email) = Email::parse(email) else { return Ok(None) };
        let user = match self.users().find_by_email(&email).await? {
            Some(user) if user.is_active => user,
            _ => return Ok(None),
        };
        let token = self.reset_token(job_id)?;
        let now = self.now();
        let reset = NewPasswordReset {
            id: job_id,
            user_id: user.id,
            token_digest: digest(&token),
            created_at: now,
            expires_at: now + Duration::minutes(RESET_TOKEN_TTL_MINUTES),
        };
        self.db.write(async |uow| self.tokens.insert_reset(uow, reset).await).await?;
        Ok(Some(PasswordResetMail {
            to: user.email,
            name: user.full_name,
            token,
            expires_minutes: RESET_TOKEN_TTL_MINUTES,
        }))
    }

    /// Sets a new password with a reset token: the token is spent (with every other open one of the user), the
    /// password changed and every session ended, in one unit.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for an unacceptable password; [`ServiceError::Unauthorized`] for a token that is
    /// unknown, spent or expired.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> ServiceResult<()> {
        let password = Password::parse_field(new_password, "new_password")?;
        // The token is a credential: one that does not work is a 401, like a wrong password.
        let refused = || ServiceError::Unauthorized("the reset token is invalid, used or expired");
        if token.is_empty() || token.len() > RESET_TOKEN_MAX {
            return Err(refused());
        }
        let hash = self.hasher.hash(password).await?;
        let (now, token_digest) = (self.now(), digest(token));
        let changes = UserChanges { password_hash: Some(hash), ..UserChanges::default() };
        let reset = self
            .db
            .write(async |uow| {
                let Some(user_id) = self.tokens.spend_reset(uow, &token_digest, now).await? else {
                    return Ok(None);
                };
                self.users().update(uow, user_id, changes, now).await?;
                self.tokens.revoke_user(uow, user_id, now).await?;
                Ok::<_, RepoError>(Some(user_id))
            })
            .await?;
        let user_id = reset.ok_or_else(refused)?;
        self.user_service.evict(user_id).await;
        Ok(())
    }

    /// The reset token of job `id`: HMAC-SHA256 of the id under the service's secret, base64url.
    fn reset_token(&self, id: Uuid) -> ServiceResult<String> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.reset_key)
            .map_err(|e| ServiceError::Internal(format!("reset token key: {e}")))?;
        mac.update(b"password-reset:");
        mac.update(id.as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}
