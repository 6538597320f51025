//! Chunked bulk insert: many rows in multi-row INSERTs of at most 1,000 rows, under each backend's bind-parameter
//! limit.

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

/// Most rows one multi-row INSERT carries, whatever the bind limit would allow: a statement of 8,191 user rows
/// (PostgreSQL's limit for 8 columns) made the server hold its 65,535 values and their SQL at once and
/// PostgreSQL parse one huge statement; 1,000 rows keep both small at a per-statement cost that no longer
/// shows (docs/PERFORMANCE.md, bulk creation).
pub const MAX_ROWS_PER_INSERT: usize = 1_000;

/// Rows of entity `E` one multi-row INSERT carries on `backend`: the parameter limit divided by the entity's
/// number of columns (each row binds at most one parameter per column), at most [`MAX_ROWS_PER_INSERT`].
pub fn rows_per_insert<E: EntityTrait>(backend: DbBackend) -> usize {
    (max_bind_params(backend) / E::Column::iter().count().max(1)).clamp(1, MAX_ROWS_PER_INSERT)
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
    let per_statement = rows_per_insert::<A::Entity>(conn.get_database_backend());
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
        // users: 8 columns, far under the limits: the row cap decides.
        let sqlite = rows_per_insert::<crate::entity::user::Entity>(DbBackend::Sqlite);
        let postgres = rows_per_insert::<crate::entity::user::Entity>(DbBackend::Postgres);
        assert_eq!((sqlite, postgres), (MAX_ROWS_PER_INSERT, MAX_ROWS_PER_INSERT));
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            for entity_columns in [1, 8, 33, 40, 65, 5_000, 70_000] {
                let rows = (max_bind_params(backend) / entity_columns).clamp(1, MAX_ROWS_PER_INSERT);
                assert!(rows == 1 || rows * entity_columns <= max_bind_params(backend), "{entity_columns}");
            }
        }
    }
}
