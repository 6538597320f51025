//! Transaction helpers shared by the repositories.

use sea_orm::{DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait};

use crate::{Database, RepoResult};

/// A write transaction that may lock stock: `IMMEDIATE` on SQLite (the write lock is taken before the first
/// read), a plain one on PostgreSQL (rows are locked explicitly).
pub(crate) async fn begin_write(db: &Database) -> RepoResult<DatabaseTransaction> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    Ok(db.connection().begin_with_options(options).await?)
}

/// Commits when the work succeeded and rolls back, explicitly and at once, when it failed: a transaction left
/// to its destructor would hold its locks until the pool gets round to the connection.
pub(crate) async fn finish<T>(txn: DatabaseTransaction, result: RepoResult<T>) -> RepoResult<T> {
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}
