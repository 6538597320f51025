//! The persistence contract of users and their sessions: what the user and auth services rely on, implemented
//! by [`crate::UserRepo`] and [`crate::RefreshTokenRepo`].

use std::future::Future;

use chrono::{DateTime, Utc};
use rental_domain::{Email, Role, UserId};
use uuid::Uuid;

use super::{NewPasswordReset, NewRefreshToken, NewUserRecord, RefreshTokenRecord, UserChanges, UserRecord};
use crate::query::{ListQuery, Listing};
use crate::{RepoResult, UnitOfWork};

/// Users with their roles. Writes take the caller's [`UnitOfWork`], so that a user changes in the same
/// transaction as whatever goes with it (their sessions, a job that e-mails them); reads use the pool.
///
/// The contract every implementation keeps (checked by `rental_repo::conformance` on SQLite and PostgreSQL):
/// e-mail addresses are unique, compared as stored (the domain lower-cases them); a batch is all or nothing and
/// names the first offending row; roles come back sorted and without repeats; nothing a rolled-back unit wrote
/// is ever seen; lists honour their whitelist ([`crate::user_list_spec`]).
pub trait UserStore: Send + Sync {
    /// Inserts one user with its roles, stamped `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] when the e-mail address is taken.
    fn create(
        &self,
        uow: &UnitOfWork,
        new: NewUserRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<UserRecord>> + Send;

    /// Inserts many users with multi-row INSERTs. Conflicting e-mails, within the batch or with stored users,
    /// are found before anything is written and reported with the row's index. Returns how many were inserted.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] with `index` for the first offending row.
    fn bulk_create(
        &self,
        uow: &UnitOfWork,
        rows: Vec<NewUserRecord>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<usize>> + Send;

    /// Inserts many users like [`UserStore::bulk_create`], but leaves duplicate detection to the unique index:
    /// a clash fails the whole unit without naming the row. For trusted loads (seeding, imports from another
    /// system) where the e-mail pre-check would be wasted work.
    ///
    /// # Errors
    /// [`crate::RepoError::Conflict`] without an index when an e-mail exists or repeats.
    fn bulk_import(
        &self,
        uow: &UnitOfWork,
        rows: Vec<NewUserRecord>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<usize>> + Send;

    /// A user by id.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn find(&self, id: UserId) -> impl Future<Output = RepoResult<Option<UserRecord>>> + Send;

    /// A user by (normalised) e-mail address.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn find_by_email(&self, email: &Email) -> impl Future<Output = RepoResult<Option<UserRecord>>> + Send;

    /// Applies `changes`, stamping `updated_at` with `at`, and returns the user as changed.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`] for an unknown id; [`crate::RepoError::Conflict`] when the new e-mail is
    /// taken.
    fn update(
        &self,
        uow: &UnitOfWork,
        id: UserId,
        changes: UserChanges,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<UserRecord>> + Send;

    /// Deletes a user; their roles and refresh tokens go with them.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`] for an unknown id; [`crate::RepoError::Conflict`] while orders refer to
    /// them.
    fn delete(&self, uow: &UnitOfWork, id: UserId) -> impl Future<Output = RepoResult<()>> + Send;

    /// Replaces the roles of a user, stamping `updated_at` with `at`.
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`] for an unknown id.
    fn set_roles(
        &self,
        uow: &UnitOfWork,
        id: UserId,
        roles: &[Role],
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<UserRecord>> + Send;

    /// Whether any active user is a superuser or holds the admin role.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn any_admin(&self) -> impl Future<Output = RepoResult<bool>> + Send;

    /// One page of users matching `query`, with their roles, in at most three statements whatever the page
    /// size (the count unless skipped, the page, the roles of every user on it).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a query fails.
    fn list(&self, query: &ListQuery) -> impl Future<Output = RepoResult<Listing<UserRecord>>> + Send;
}

/// Refresh tokens, stored as digests and grouped in families (one per login session) that rotate on every
/// use. Writes take the caller's [`UnitOfWork`], so that spending a token and issuing its successor, or
/// changing a password and ending every session, happen together or not at all.
///
/// The store also keeps the digests of password-reset tokens.
///
/// The contract (checked by `rental_repo::conformance`): a token is spent at most once, whatever runs
/// concurrently ([`RefreshTokenStore::mark_used`] and [`RefreshTokenStore::spend_reset`] are the arbiters); a
/// revoked token cannot be spent; an expired reset token cannot be spent.
pub trait RefreshTokenStore: Send + Sync {
    /// Stores a token created `at`; returns its id.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the insert fails.
    fn insert(
        &self,
        uow: &UnitOfWork,
        token: NewRefreshToken,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<Uuid>> + Send;

    /// The token with this digest.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    fn find_by_hash(&self, token_hash: &str) -> impl Future<Output = RepoResult<Option<RefreshTokenRecord>>> + Send;

    /// Marks an unused, unrevoked token as used `at`. Returns `false` when another request used it first (or
    /// it was revoked): the conditional update is the arbiter between two racing refreshes.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the update fails.
    fn mark_used(&self, uow: &UnitOfWork, id: Uuid, at: DateTime<Utc>)
    -> impl Future<Output = RepoResult<bool>> + Send;

    /// Revokes every token of a family (logout, or reuse of a spent token); returns how many were revoked.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the update fails.
    fn revoke_family(
        &self,
        uow: &UnitOfWork,
        family_id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Revokes every token of a user (password change, deactivation); returns how many were revoked.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the update fails.
    fn revoke_user(
        &self,
        uow: &UnitOfWork,
        user_id: UserId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Deletes the refresh tokens and password-reset tokens that expired before `before`; returns how many.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the delete fails.
    fn delete_expired(&self, uow: &UnitOfWork, before: DateTime<Utc>) -> impl Future<Output = RepoResult<u64>> + Send;

    /// Stores the digest of a password-reset token of `user_id`, valid until `expires_at`, under `id`. The
    /// caller derives `id` from the job that mails the token, so a repeated run inserts nothing and returns
    /// `false`.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the insert fails.
    fn insert_reset(&self, uow: &UnitOfWork, reset: NewPasswordReset) -> impl Future<Output = RepoResult<bool>> + Send;

    /// Spends the password-reset token with `token_digest` if it is unused and unexpired at `at`, together with
    /// every other open reset token of its user (one reset ends them all). Returns its user, or `None` when
    /// there is no such token.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a statement fails.
    fn spend_reset(
        &self,
        uow: &UnitOfWork,
        token_digest: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<Option<UserId>>> + Send;
}
