//! Idempotency records: the stored outcome of a mutating request made with an `Idempotency-Key`.
//!
//! A record is claimed at the start of the unit of work that carries the request's effect and completed with
//! the response before that unit commits, so it exists if and only if the effect committed. The primary key
//! `(scope, key)` arbitrates concurrent duplicates: on PostgreSQL a second claim waits on the first's
//! uncommitted row and then finds it taken (or free, when the first rolled back); on SQLite the units are
//! serialised by the write lock, so the second claim simply sees the committed row. An expired record does not
//! block a claim: the claim takes it over.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait};

use crate::entity::idempotency_key;
use crate::{Database, RepoResult, UnitOfWork};

mod hold;

pub use hold::Hold;

/// A claim of an idempotency key, written at the start of the effect's unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdempotencyRecord {
    /// Whose key, and for which operation: the caller (or `anonymous`), the method and the route pattern.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// Digest of the request (method, path, body) the key was first used with.
    pub fingerprint: String,
    /// When it was claimed.
    pub created_at: DateTime<Utc>,
    /// From when it no longer counts.
    pub expires_at: DateTime<Utc>,
}

/// A stored idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Digest of the request the key was first used with.
    pub fingerprint: String,
    /// The response's status, once the effect committed with it.
    pub response_status: Option<u16>,
    /// The response's body (JSON text).
    pub response_body: Option<String>,
    /// When it was claimed.
    pub created_at: DateTime<Utc>,
    /// From when it no longer counts.
    pub expires_at: DateTime<Utc>,
    /// Until when a record without an answer belongs to the request holding it across a call to another
    /// system (see [`IdempotencyRepo::hold`]); `None` for records claimed in the effect's unit of work.
    pub held_until: Option<DateTime<Utc>>,
}

/// The idempotency records on the sea-orm pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IdempotencyRepo {
    db: Database,
}

fn stamp(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

impl IdempotencyRepo {
    /// The records of `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The record of `key` in `scope` that has not expired at `now`, read outside any unit of work.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    pub async fn find(&self, scope: &str, key: &str, now: DateTime<Utc>) -> RepoResult<Option<IdempotencyRecord>> {
        let row = idempotency_key::Entity::find_by_id((scope.to_owned(), key.to_owned()))
            .filter(idempotency_key::Column::ExpiresAt.gt(stamp(now)))
            .one(self.db.connection())
            .await?;
        Ok(row.map(|r| IdempotencyRecord {
            fingerprint: r.fingerprint,
            response_status: r.response_status.and_then(|s| u16::try_from(s).ok()),
            response_body: r.response_body,
            created_at: r.created_at,
            expires_at: r.expires_at,
            held_until: r.held_until,
        }))
    }

    /// Claims `record.key` in `uow`: inserts the record, or takes over an expired one. `false` when a record
    /// that has not expired holds the key (committed by another unit; on PostgreSQL this waits for a unit that
    /// holds the key uncommitted to end first).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    pub async fn claim(&self, uow: &UnitOfWork, record: &NewIdempotencyRecord) -> RepoResult<bool> {
        use idempotency_key::Column;
        let row = idempotency_key::ActiveModel {
            scope: Set(record.scope.clone()),
            idem_key: Set(record.key.clone()),
            fingerprint: Set(record.fingerprint.clone()),
            response_status: Set(None),
            response_body: Set(None),
            created_at: Set(stamp(record.created_at)),
            expires_at: Set(stamp(record.expires_at)),
            held_until: Set(None),
            resource: Set(None),
        };
        let excluded = Alias::new("excluded");
        let upsert = idempotency_key::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([Column::Scope, Column::IdemKey])
                    .update_columns([
                        Column::Fingerprint,
                        Column::ResponseStatus,
                        Column::ResponseBody,
                        Column::CreatedAt,
                        Column::ExpiresAt,
                        Column::HeldUntil,
                        Column::Resource,
                    ])
                    .action_and_where(
                        Expr::col((idempotency_key::Entity, Column::ExpiresAt))
                            .lte(Expr::col((excluded, Column::CreatedAt))),
                    )
                    .to_owned(),
            )
            .into_query();
        Ok(uow.conn().execute(&upsert).await?.rows_affected() == 1)
    }

    /// Stores the response of the claimed `key` in `uow`, the unit that claimed it: `status` and `body` as
    /// JSON text (the same text `serde_json` gives the HTTP answer).
    ///
    /// # Errors
    /// [`crate::RepoError::NotFound`] when `uow` did not claim the key; [`crate::RepoError::Database`] when the
    /// statement fails or `body` cannot be serialised.
    pub async fn complete<T: serde::Serialize + ?Sized>(
        &self,
        uow: &UnitOfWork,
        scope: &str,
        key: &str,
        status: u16,
        body: &T,
    ) -> RepoResult<()> {
        use idempotency_key::Column;
        let body = serde_json::to_string(body)
            .map_err(|err| sea_orm::DbErr::Custom(format!("the response cannot be stored: {err}")))?;
        let status =
            i16::try_from(status).map_err(|_| sea_orm::DbErr::Custom(format!("status {status} cannot be stored")))?;
        let updated = idempotency_key::Entity::update_many()
            .col_expr(Column::ResponseStatus, Expr::value(status))
            .col_expr(Column::ResponseBody, Expr::value(body))
            .filter(Column::Scope.eq(scope))
            .filter(Column::IdemKey.eq(key))
            .exec(uow.conn())
            .await?;
        if updated.rows_affected == 1 { Ok(()) } else { Err(crate::RepoError::NotFound) }
    }

    /// Deletes up to `limit` records that expired before `now`; the number deleted.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    pub async fn purge_expired(&self, now: DateTime<Utc>, limit: u64) -> RepoResult<u64> {
        use idempotency_key::Column;
        // Delete by key in batches so that a large backlog never holds one long write lock.
        let keys: Vec<(String, String)> = idempotency_key::Entity::find()
            .select_only()
            .column(Column::Scope)
            .column(Column::IdemKey)
            .filter(Column::ExpiresAt.lte(stamp(now)))
            .limit(limit)
            .into_tuple()
            .all(self.db.connection())
            .await?;
        let mut deleted = 0;
        for chunk in keys.chunks(500) {
            let mut any = sea_orm::Condition::any();
            for (scope, key) in chunk {
                any = any.add(Column::Scope.eq(scope.as_str()).and(Column::IdemKey.eq(key.as_str())));
            }
            let result = idempotency_key::Entity::delete_many()
                .filter(any)
                .filter(Column::ExpiresAt.lte(stamp(now)))
                .exec(self.db.connection())
                .await?;
            deleted += result.rows_affected;
        }
        Ok(deleted)
    }
}
