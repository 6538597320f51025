//! Idempotency keys held across a call to another system. An operation that calls Stripe cannot keep a
//! transaction open around the call, so it claims its key in a unit of work of its own, committed, as a record
//! without an answer that is *held* until an instant (`held_until`): a duplicate meanwhile finds the key taken.
//! The operation then calls the other system and stores the answer with its own effect in one unit of work.
//! When it fails before knowing the other system's outcome it releases the hold at once; when it crashes the
//! hold runs out. Either way the next request with the key takes the claim over ([`Hold::Resumed`]) with the
//! id of our own record the first one made (`resource`), from which the key sent to the other system is
//! derived: the other system then answers the first call's result instead of doing the work again.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait};

use super::{IdempotencyRepo, NewIdempotencyRecord, stamp};
use crate::entity::idempotency_key::{self, Column};
use crate::{Backend, RepoResult, UnitOfWork};

/// What [`IdempotencyRepo::hold`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The key was free (or its record had expired): this request now holds it, with no resource yet.
    New,
    /// An earlier request with the key and the same fingerprint held it and its hold ended without an answer:
    /// this request takes the claim over, with the resource that one noted (if it got that far).
    Resumed {
        /// The id of our own record the earlier request made.
        resource: Option<String>,
    },
    /// Another record holds the key: answered, held by a request still running, or made with another request.
    Taken,
}

impl IdempotencyRepo {
    /// Claims `record.key` in `uow`, held until `until`: inserts the record, takes over an expired one, or
    /// resumes an answerless one of the same request whose hold has ended. The new statement path is one
    /// `INSERT … ON CONFLICT DO NOTHING`; the record is read (locked, on PostgreSQL) only when the key is taken.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a statement fails.
    pub async fn hold(
        &self,
        uow: &UnitOfWork,
        record: &NewIdempotencyRecord,
        until: DateTime<Utc>,
    ) -> RepoResult<Hold> {
        let row = idempotency_key::ActiveModel {
            scope: Set(record.scope.clone()),
            idem_key: Set(record.key.clone()),
            fingerprint: Set(record.fingerprint.clone()),
            response_status: Set(None),
            response_body: Set(None),
            created_at: Set(stamp(record.created_at)),
            expires_at: Set(stamp(record.expires_at)),
            held_until: Set(Some(stamp(until))),
            resource: Set(None),
        };
        let insert = idempotency_key::Entity::insert(row)
            .on_conflict(OnConflict::columns([Column::Scope, Column::IdemKey]).do_nothing().to_owned())
            .into_query();
        if uow.conn().execute(&insert).await?.rows_affected() == 1 {
            return Ok(Hold::New);
        }
        let mut select = idempotency_key::Entity::find_by_id((record.scope.clone(), record.key.clone()));
        if uow.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        // Gone since the insert found it (purged): taken for this attempt; the caller's retry finds it free.
        let Some(current) = select.one(uow.conn()).await? else { return Ok(Hold::Taken) };
        let now = stamp(record.created_at);
        let by_key = |update: sea_orm::UpdateMany<idempotency_key::Entity>| {
            update.filter(Column::Scope.eq(record.scope.as_str())).filter(Column::IdemKey.eq(record.key.as_str()))
        };
        if current.expires_at <= now {
            by_key(idempotency_key::Entity::update_many())
                .col_expr(Column::Fingerprint, Expr::value(record.fingerprint.clone()))
                .col_expr(Column::ResponseStatus, Expr::value(Option::<i16>::None))
                .col_expr(Column::ResponseBody, Expr::value(Option::<String>::None))
                .col_expr(Column::CreatedAt, Expr::value(now))
                .col_expr(Column::ExpiresAt, Expr::value(stamp(record.expires_at)))
                .col_expr(Column::HeldUntil, Expr::value(Some(stamp(until))))
                .col_expr(Column::Resource, Expr::value(Option::<String>::None))
                .exec(uow.conn())
                .await?;
            return Ok(Hold::New);
        }
        let ended = current.held_until.is_some_and(|held| held <= now);
        if current.fingerprint != record.fingerprint || current.response_status.is_some() || !ended {
            return Ok(Hold::Taken);
        }
        by_key(idempotency_key::Entity::update_many())
            .col_expr(Column::HeldUntil, Expr::value(Some(stamp(until))))
            .exec(uow.conn())
            .await?;
        Ok(Hold::Resumed { resource: current.resource })
    }

    /// Notes `resource`, the id of our own record a held claim made, in `uow` (the claim's unit).
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    pub async fn set_resource(&self, uow: &UnitOfWork, scope: &str, key: &str, resource: &str) -> RepoResult<()> {
        idempotency_key::Entity::update_many()
            .col_expr(Column::Resource, Expr::value(resource))
            .filter(Column::Scope.eq(scope))
            .filter(Column::IdemKey.eq(key))
            .exec(uow.conn())
            .await?;
        Ok(())
    }

    /// Ends the hold of an answerless record at `now`, outside any unit: the next request with the key resumes
    /// the claim at once.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    pub async fn release(&self, scope: &str, key: &str, now: DateTime<Utc>) -> RepoResult<()> {
        idempotency_key::Entity::update_many()
            .col_expr(Column::HeldUntil, Expr::value(Some(stamp(now))))
            .filter(Column::Scope.eq(scope))
            .filter(Column::IdemKey.eq(key))
            .filter(Column::ResponseStatus.is_null())
            .exec(self.db.connection())
            .await?;
        Ok(())
    }

    /// Deletes an answerless record, in `uow`: the next request with the key starts afresh.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    pub async fn forget(&self, uow: &UnitOfWork, scope: &str, key: &str) -> RepoResult<()> {
        idempotency_key::Entity::delete_many()
            .filter(Column::Scope.eq(scope))
            .filter(Column::IdemKey.eq(key))
            .filter(Column::ResponseStatus.is_null())
            .exec(uow.conn())
            .await?;
        Ok(())
    }
}
