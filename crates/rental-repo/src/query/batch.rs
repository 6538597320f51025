//! Batch loading of relations: the related rows of a whole page in one statement, grouped by key, instead of
//! one statement per row (N+1).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use sea_orm::sea_query::ValueType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, IdenStatic, ModelTrait, QueryFilter, Select,
    TryGetableMany, Value,
};

use crate::RepoResult;

/// Keys per statement. Far below the bind-parameter limits (SQLite's 32,766): PostgreSQL plans a long `IN` list
/// by its estimated share of the table, and on 1,000,000 users 10,000 e-mails in one list became a parallel
/// sequential scan (146 ms warm, 1.7 s cold) where ten lists of 1,000 took index probes (20 ms in all;
/// `EXPLAIN ANALYZE`, docs/PERFORMANCE.md). A page is far smaller, so it always costs one statement per
/// relation.
pub const KEYS_PER_STATEMENT: usize = 1_000;

/// The distinct keys of a page of rows (ids of the parents, or the foreign keys they point with), and the
/// statements that load the related rows of all of them at once.
///
/// The `select` given to each loader may order, filter or pick columns, but must not carry a LIMIT or OFFSET:
/// it applies to the whole batch, not to each key.
///
/// ```
/// # mod author {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
/// #     #[sea_orm(table_name = "authors")]
/// #     pub struct Model { #[sea_orm(primary_key)] pub id: i64, pub name: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// # mod book {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
/// #     #[sea_orm(table_name = "books")]
/// #     pub struct Model { #[sea_orm(primary_key)] pub id: i64, pub author_id: i64, pub title: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// use rental_repo::query::Batch;
/// use sea_orm::{EntityTrait, QueryOrder};
///
/// # async fn page(conn: &sea_orm::DatabaseConnection, authors: Vec<author::Model>) -> rental_repo::RepoResult<()> {
/// // The books of every author of the page: one statement, grouped by author.
/// let mut books = Batch::of(&authors, |a| a.id)
///     .many(conn, book::Entity::find().order_by_asc(book::Column::Title), book::Column::AuthorId)
///     .await?;
/// for author in &authors {
///     let titles: Vec<String> = books.remove(&author.id).unwrap_or_default().into_iter().map(|b| b.title).collect();
///     println!("{}: {titles:?}", author.name);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<K> {
    keys: Vec<K>,
}

impl<K> Batch<K>
where
    K: ValueType + Into<Value> + Eq + Hash + Clone,
{
    /// The distinct `keys`, in order of first appearance.
    pub fn new(keys: impl IntoIterator<Item = K>) -> Self {
        let mut seen = HashSet::new();
        Self { keys: keys.into_iter().filter(|k| seen.insert(k.clone())).collect() }
    }

    /// The distinct keys of `rows`.
    pub fn of<T>(rows: &[T], key: impl Fn(&T) -> K) -> Self {
        Self::new(rows.iter().map(key))
    }

    /// The keys, without repeats.
    pub fn keys(&self) -> &[K] {
        &self.keys
    }

    /// Whether there is nothing to load.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The rows of `select` whose `column` holds one of the keys (the children of the parents of the page),
    /// grouped by that column, in the order of `select` within each group. One statement per
    /// [`KEYS_PER_STATEMENT`] keys; none for an empty batch.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    pub async fn many<E, C>(
        &self,
        conn: &C,
        select: Select<E>,
        column: E::Column,
    ) -> RepoResult<HashMap<K, Vec<E::Model>>>
    where
        E: EntityTrait,
        E::Model: FromQueryResult + ModelTrait<Entity = E> + Send + Sync,
        C: ConnectionTrait,
    {
        let mut grouped: HashMap<K, Vec<E::Model>> = HashMap::with_capacity(self.keys.len());
        for chunk in self.keys.chunks(KEYS_PER_STATEMENT) {
            let rows = select.clone().filter(column.is_in(chunk.iter().cloned())).all(conn).await?;
            for row in rows {
                grouped.entry(key_of::<K, E>(&row, column)?).or_default().push(row);
            }
        }
        Ok(grouped)
    }

    /// The rows of `select` whose unique `column` holds one of the keys (the row each parent points to, such as
    /// the category of every product of a page), by key. One statement per [`KEYS_PER_STATEMENT`] keys; none
    /// for an empty batch.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails.
    pub async fn one<E, C>(&self, conn: &C, select: Select<E>, column: E::Column) -> RepoResult<HashMap<K, E::Model>>
    where
        E: EntityTrait,
        E::Model: FromQueryResult + ModelTrait<Entity = E> + Send + Sync,
        C: ConnectionTrait,
    {
        let mut found = HashMap::with_capacity(self.keys.len());
        for chunk in self.keys.chunks(KEYS_PER_STATEMENT) {
            let rows = select.clone().filter(column.is_in(chunk.iter().cloned())).all(conn).await?;
            for row in rows {
                found.insert(key_of::<K, E>(&row, column)?, row);
            }
        }
        Ok(found)
    }

    /// The tuples `select` gives for the rows whose `column` holds one of the keys, for shapes that are not
    /// models: an aggregate per parent (a count and a sum of its children by correlated subqueries), or a few
    /// columns. The caller keys them (put the key first in the tuple). One statement per
    /// [`KEYS_PER_STATEMENT`] keys; none for an empty batch.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the statement fails or a row does not fit `T`.
    pub async fn tuples<E, T, C>(&self, conn: &C, select: Select<E>, column: E::Column) -> RepoResult<Vec<T>>
    where
        E: EntityTrait,
        T: TryGetableMany,
        C: ConnectionTrait,
    {
        let mut rows = Vec::with_capacity(self.keys.len());
        for chunk in self.keys.chunks(KEYS_PER_STATEMENT) {
            let part: Vec<T> =
                select.clone().filter(column.is_in(chunk.iter().cloned())).into_tuple().all(conn).await?;
            rows.extend(part);
        }
        Ok(rows)
    }
}

fn key_of<K, E>(row: &E::Model, column: E::Column) -> RepoResult<K>
where
    K: ValueType,
    E: EntityTrait,
    E::Model: ModelTrait<Entity = E>,
{
    <K as ValueType>::try_from(row.get(column))
        .map_err(|_| DbErr::Type(format!("column `{}` does not hold the batch's key type", column.as_str())).into())
}
