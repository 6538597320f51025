//! Refresh tokens: stored as SHA-256 digests, grouped in families that rotate on every use.

use chrono::{DateTime, SubsecRound, Utc};
use rental_domain::UserId;
use sea_orm::sea_query::{Expr, OnConflict, SimpleExpr};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};
use uuid::Uuid;

use super::RefreshTokenStore;
use crate::entity::{password_reset, refresh_token};
use crate::{Database, RepoResult, UnitOfWork};

/// A refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Owner.
    pub user_id: UserId,
    /// Login session the token belongs to; every rotation stays in the family.
    pub family_id: Uuid,
    /// Hex SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Row id.
    pub id: Uuid,
    /// Owner.
    pub user_id: UserId,
    /// Login session.
    pub family_id: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new one.
    pub used_at: Option<DateTime<Utc>>,
    /// When its family was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A password-reset token to store (its digest only).
#[derive(Debug, Clone)]
pub struct NewPasswordReset {
    /// Row id, derived from the job that mails the token.
    pub id: Uuid,
    /// Whose password it resets.
    pub user_id: UserId,
    /// Hex SHA-256 of the token.
    pub token_digest: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Refresh tokens and password-reset tokens: the sea-orm [`RefreshTokenStore`].
#[derive(Debug, Clone)]
pub struct RefreshTokenRepo {
    db: Database,
}

impl RefreshTokenRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl RefreshTokenStore for RefreshTokenRepo {
    async fn insert(&self, uow: &UnitOfWork, token: NewRefreshToken, at: DateTime<Utc>) -> RepoResult<Uuid> {
        let id = Uuid::now_v7();
        let model = refresh_token::ActiveModel {
            id: Set(id),
            user_id: Set(token.user_id.as_uuid()),
            family_id: Set(token.family_id),
            token_hash: Set(token.token_hash),
            created_at: Set(at.trunc_subsecs(6)),
            expires_at: Set(token.expires_at.trunc_subsecs(6)),
            used_at: Set(None),
            revoked_at: Set(None),
        };
        refresh_token::Entity::insert(model).exec_without_returning(uow.conn()).await?;
        Ok(id)
    }

    async fn find_by_hash(&self, token_hash: &str) -> RepoResult<Option<RefreshTokenRecord>> {
        let model = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(token_hash))
            .one(self.db.connection())
            .await?;
        Ok(model.map(|m| RefreshTokenRecord {
            id: m.id,
            user_id: UserId::from_uuid(m.user_id),
            family_id: m.family_id,
            expires_at: m.expires_at,
            used_at: m.used_at,
            revoked_at: m.revoked_at,
        }))
    }

    async fn mark_used(&self, uow: &UnitOfWork, id: Uuid, at: DateTime<Utc>) -> RepoResult<bool> {
        let result = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::val(at.trunc_subsecs(6)))
            .filter(refresh_token::Column::Id.eq(id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(uow.conn())
            .await?;
        Ok(result.rows_affected == 1)
    }

    async fn revoke_family(&self, uow: &UnitOfWork, family_id: Uuid, at: DateTime<Utc>) -> RepoResult<u64> {
        revoke(uow, refresh_token::Column::FamilyId.eq(family_id), at).await
    }

    async fn revoke_user(&self, uow: &UnitOfWork, user_id: UserId, at: DateTime<Utc>) -> RepoResult<u64> {
        revoke(uow, refresh_token::Column::UserId.eq(user_id.as_uuid()), at).await
    }

    async fn delete_expired(&self, uow: &UnitOfWork, before: DateTime<Utc>) -> RepoResult<u64> {
        let tokens = refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::ExpiresAt.lt(before))
            .exec(uow.conn())
            .await?;
        let resets = password_reset::Entity::delete_many()
            .filter(password_reset::Column::ExpiresAt.lt(before))
            .exec(uow.conn())
            .await?;
        Ok(tokens.rows_affected + resets.rows_affected)
    }

    async fn insert_reset(&self, uow: &UnitOfWork, reset: NewPasswordReset) -> RepoResult<bool> {
        let row = password_reset::ActiveModel {
            id: Set(reset.id),
            user_id: Set(reset.user_id.as_uuid()),
            token_digest: Set(reset.token_digest),
            created_at: Set(reset.created_at.trunc_subsecs(6)),
            expires_at: Set(reset.expires_at.trunc_subsecs(6)),
            used_at: Set(None),
        };
        let insert = password_reset::Entity::insert(row).on_conflict(OnConflict::new().do_nothing().to_owned());
        Ok(uow.conn().execute(&insert.into_query()).await?.rows_affected() == 1)
    }

    async fn spend_reset(&self, uow: &UnitOfWork, token_digest: &str, at: DateTime<Utc>) -> RepoResult<Option<UserId>> {
        let at = at.trunc_subsecs(6);
        let spent = password_reset::Entity::update_many()
            .col_expr(password_reset::Column::UsedAt, Expr::val(at))
            .filter(password_reset::Column::TokenDigest.eq(token_digest))
            .filter(password_reset::Column::UsedAt.is_null())
            .filter(password_reset::Column::ExpiresAt.gt(at))
            .exec_with_returning(uow.conn())
            .await?;
        let Some(row) = spent.into_iter().next() else {
            return Ok(None);
        };
        password_reset::Entity::update_many()
            .col_expr(password_reset::Column::UsedAt, Expr::val(at))
            .filter(password_reset::Column::UserId.eq(row.user_id))
            .filter(password_reset::Column::UsedAt.is_null())
            .exec(uow.conn())
            .await?;
        Ok(Some(UserId::from_uuid(row.user_id)))
    }
}

/// Revokes the unrevoked tokens that `which` selects.
async fn revoke(uow: &UnitOfWork, which: SimpleExpr, at: DateTime<Utc>) -> RepoResult<u64> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::val(at.trunc_subsecs(6)))
        .filter(which)
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(uow.conn())
        .await?;
    Ok(result.rows_affected)
}
