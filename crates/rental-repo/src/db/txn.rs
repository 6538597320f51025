//! Ending the self-contained transactions of the user, catalogue and import repositories (the order and
//! billing repositories write in the caller's [`crate::UnitOfWork`]).

use sea_orm::DatabaseTransaction;

use crate::RepoResult;

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
