//! The unit of work: one database transaction that several repositories write in, committed or rolled back as
//! one, with the actions that must run only once it has committed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sea_orm::{DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait};

use crate::analytics::counters::{self, Deltas};
use crate::{Backend, Database, RepoError, RepoResult};

/// Work to run after a commit. It runs only if the transaction committed, in the order it was registered.
type AfterCommit = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An open write transaction, opaque to callers: a service begins one with [`Database::begin`], hands it to
/// the write methods of several repositories, registers what must happen after the commit
/// ([`UnitOfWork::after_commit`]) and ends it with [`UnitOfWork::finish`] (or [`UnitOfWork::commit`] /
/// [`UnitOfWork::rollback`]). Either every repository's writes land or none does.
///
/// On SQLite the transaction begins `IMMEDIATE`: it holds the database's single write lock from its first
/// statement, so a check and the write that depends on it cannot race. On PostgreSQL it is an ordinary
/// transaction and repositories lock the rows they check (`SELECT … FOR NO KEY UPDATE`).
///
/// Dropping an unfinished unit rolls it back, but only when the pool next uses the connection, holding its
/// locks until then: finish it explicitly.
pub struct UnitOfWork {
    txn: DatabaseTransaction,
    backend: Backend,
    /// Behind a mutex so that a unit is `Sync` and repositories can share it by reference across awaits.
    after_commit: Mutex<Vec<AfterCommit>>,
    /// The dashboard counters' deltas of the unit's writes, written just before the commit
    /// ([`crate::analytics::counters`]).
    deltas: Mutex<Deltas>,
}

impl fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("backend", &self.backend)
            .field("after_commit", &self.actions().len())
            .field("counter_deltas", &self.deltas().len())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Begins a unit of work: a write transaction (`IMMEDIATE` on SQLite). The caller counts as
    /// waiting in [`PoolStats::waiting`](crate::PoolStats::waiting) until the transaction has begun,
    /// and the wait is timed into the pool's acquire figures.
    ///
    /// # Errors
    /// [`RepoError::Database`] when no connection can be had or the transaction cannot begin.
    pub async fn begin(&self) -> RepoResult<UnitOfWork> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let waiting = self.acquire_stats().wait();
        let txn = self.connection().begin_with_options(options).await;
        drop(waiting);
        let txn = txn?;
        Ok(UnitOfWork {
            txn,
            backend: self.backend(),
            after_commit: Mutex::new(Vec::new()),
            deltas: Mutex::new(Deltas::new()),
        })
    }

    /// Runs `work` in a new unit of work and ends it by the outcome ([`UnitOfWork::finish`]): commits when
    /// `work` succeeds, rolls back at once when it fails. For the common case of a unit that is begun, written
    /// in and ended in one place.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the unit cannot begin or commit; otherwise the error of `work`.
    pub async fn write<T, E: From<RepoError>>(
        &self,
        work: impl AsyncFnOnce(&UnitOfWork) -> Result<T, E>,
    ) -> Result<T, E> {
        let uow = self.begin().await?;
        let result = work(&uow).await;
        uow.finish(result).await
    }
}

impl UnitOfWork {
    /// The transaction, for the repositories' statements.
    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Which database the transaction runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Registers `action` to run once the transaction has committed (after-commit work such as numbering
    /// invoices, recording usage, waking workers). It never runs if the unit rolls back. Actions run in the
    /// order they were registered; they cannot fail the unit, which has committed already, so they log their
    /// own failures and leave the work for a later attempt.
    pub fn after_commit(&self, action: impl Future<Output = ()> + Send + 'static) {
        self.actions().push(Box::pin(action));
    }

    fn actions(&self) -> MutexGuard<'_, Vec<AfterCommit>> {
        // A panic while pushing cannot leave the list half-changed, so a poisoned lock is still good.
        self.after_commit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn deltas(&self) -> MutexGuard<'_, Deltas> {
        // As for the actions: an entry is added whole or not at all.
        self.deltas.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the counters' deltas noted by the unit's writes, then commits, then runs the after-commit
    /// actions.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the counters' statement or the commit fails; nothing was written then
    /// and no action runs.
    pub async fn commit(self) -> RepoResult<()> {
        let Self { txn, backend, after_commit, deltas } = self;
        let deltas = deltas.into_inner().unwrap_or_else(PoisonError::into_inner);
        if let Err(err) = counters::flush(&txn, backend, &deltas).await {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            return Err(err);
        }
        txn.commit().await.map_err(RepoError::from)?;
        let actions = after_commit.into_inner().unwrap_or_else(PoisonError::into_inner);
        for action in actions {
            action.await;
        }
        Ok(())
    }

    /// Rolls back at once (releasing the locks now, not when the pool next uses the connection) and drops the
    /// after-commit actions.
    pub async fn rollback(self) {
        if let Err(err) = self.txn.rollback().await {
            tracing::warn!(error = %err, "rollback failed");
        }
    }

    /// Ends the unit by the outcome of the work done in it: commits when `result` is `Ok` (then returns it, or
    /// the commit's error), rolls back when it is an error (then returns that error).
    ///
    /// # Errors
    /// The work's own error, or the commit's.
    pub async fn finish<T, E: From<RepoError>>(self, result: Result<T, E>) -> Result<T, E> {
        match result {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(err) => {
                self.rollback().await;
                Err(err)
            }
        }
    }
}
