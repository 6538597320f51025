//! Chunked bulk insert: many rows in as few multi-row INSERTs as each backend's bind-parameter limit allows, or in
//! smaller ones where a request waits on them.

use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, Iterable};

use crate::RepoResult;

/// Bind parameters one statement may carry on SQLite (`SQLITE_MAX_VARIABLE_NUMBER` since 3.32).
pub const SQLITE_MAX_BIND_PARAMS: usize = 32_766;
/// Bind parameters one statement may carry on PostgreSQL (the protocol counts them in 16 bits).
pub const POSTGRES_MAX_BIND_PARAMS: usize = 65_535;

/// Most bind parameters one statement may carry on `backend`.
pub fn max_bind_params(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres | DbBackend::MySql => POSTGRES_MAX_BIND_PARAMS,
        _ => SQLITE_MAX_BIND_PARAMS,
    }
}

/// Rows per INSERT for [`insert_chunked_by`] where requests wait on the write: a statement of 8,191 user rows
/// (PostgreSQL's limit for 8 columns) made the server hold its 65,535 values and their SQL at once, and the
/// 10,000-user bulk request took 1.34× as long and 40 MiB more than with 1,000 rows; trusted bulk loads, where
/// nobody waits on one statement, are faster with the biggest statements instead (seeding 1M users: 16.0 s
/// against 27.7 s). docs/PERFORMANCE.md has both runs.
pub const MAX_ROWS_PER_INSERT: usize = 1_000;

/// Rows of entity `E` one multi-row INSERT carries on `backend`: the parameter limit divided by the entity's
/// number of columns (each row binds at most one parameter per column).
pub fn rows_per_insert<E: EntityTrait>(backend: DbBackend) -> usize {
    (max_bind_params(backend) / E::Column::iter().count().max(1)).max(1)
}

/// Inserts `rows` with multi-row INSERTs of [`rows_per_insert`] rows each, in order, on `conn`: a pool, or a
/// transaction the caller commits (all or nothing) or rolls back. Returns the number of statements run.
///
/// ```
/// # mod tag {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
/// #     #[sea_orm(table_name = "tags")]
/// #     pub struct Model { #[sea_orm(primary_key, auto_increment = false)] pub id: i64, pub name: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// use rental_repo::query::insert_chunked;
/// use sea_orm::{ActiveValue::Set, TransactionTrait};
///
/// # async fn load(conn: &sea_orm::DatabaseConnection) -> rental_repo::RepoResult<()> {
/// let rows = (0..100_000).map(|i| tag::ActiveModel { id: Set(i), name: Set(format!("tag {i}")) });
/// let txn = conn.begin().await?;
/// // 2 columns: 16,383 rows per statement on SQLite, 32,767 on PostgreSQL.
/// let statements = insert_chunked(&txn, rows).await?;
/// txn.commit().await?;
/// # let _ = statements;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`crate::RepoError::Conflict`] when a constraint refuses a row (rows of earlier statements stay written
/// unless `conn` is a transaction that is rolled back); [`crate::RepoError::Database`] when a statement fails.
pub async fn insert_chunked<A, C>(conn: &C, rows: impl IntoIterator<Item = A>) -> RepoResult<usize>
where
    A: ActiveModelTrait,
    C: ConnectionTrait,
{
    insert_chunked_by(conn, rows, usize::MAX).await
}

/// Inserts `rows` like [`insert_chunked`], with at most `max_rows` rows per statement (and never more than the
/// bind limit allows). Returns the number of statements run.
///
/// # Errors
/// As [`insert_chunked`].
pub async fn insert_chunked_by<A, C>(conn: &C, rows: impl IntoIterator<Item = A>, max_rows: usize) -> RepoResult<usize>
where
    A: ActiveModelTrait,
    C: ConnectionTrait,
{
    let per_statement = rows_per_insert::<A::Entity>(conn.get_database_backend()).min(max_rows.max(1));
    let mut statements = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        A::Entity::insert_many(chunk).exec_without_returning(conn).await?;
        statements += 1;
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_under_each_backends_limit() {
        // users: 8 columns.
        let sqlite = rows_per_insert::<crate::entity::user::Entity>(DbBackend::Sqlite);
        let postgres = rows_per_insert::<crate::entity::user::Entity>(DbBackend::Postgres);
        assert_eq!((sqlite, postgres), (4_095, 8_191));
        assert!(sqlite * 8 <= SQLITE_MAX_BIND_PARAMS && (sqlite + 1) * 8 > SQLITE_MAX_BIND_PARAMS);
        assert!(postgres * 8 <= POSTGRES_MAX_BIND_PARAMS && (postgres + 1) * 8 > POSTGRES_MAX_BIND_PARAMS);
    }
}
