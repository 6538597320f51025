//! The user repository: users with their roles.

mod store;
mod tokens;

pub use store::{RefreshTokenStore, UserStore};
pub use tokens::{NewPasswordReset, NewRefreshToken, RefreshTokenRecord, RefreshTokenRepo};

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use rental_domain::{Email, FullName, Role, UserId};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::analytics::counters::{USERS_ACTIVE, USERS_SUPERUSER};
use crate::entity::{user, user_role};
use crate::query::{
    Batch, Direction, FilterKind, FilterOp, ListColumns, ListQuery, ListSpec, Listing, MAX_ROWS_PER_INSERT, PageSizes,
    SortKind, insert_chunked_by,
};
use crate::{Backend, Database, RepoError, RepoResult, UnitOfWork};

/// A stored user with its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Time-ordered id.
    pub id: UserId,
    /// Lower-cased e-mail address.
    pub email: String,
    /// Display name.
    pub full_name: String,
    /// Argon2 PHC string; `None` for an account that has no password yet.
    pub password_hash: Option<String>,
    /// Whether the user may log in and use tokens.
    pub is_active: bool,
    /// Whether the user has every permission.
    pub is_superuser: bool,
    /// Roles, sorted.
    pub roles: Vec<Role>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A row of a user list: the same shape as [`UserRecord`].
pub type UserListItem = UserRecord;

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUserRecord {
    /// Address, already validated and normalised.
    pub email: Email,
    /// Display name.
    pub full_name: FullName,
    /// Argon2 PHC string, or `None` for an account without a password.
    pub password_hash: Option<String>,
    /// Whether the account starts active.
    pub is_active: bool,
    /// Whether the account has every permission.
    pub is_superuser: bool,
    /// Roles to grant.
    pub roles: Vec<Role>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// New address.
    pub email: Option<Email>,
    /// New name.
    pub full_name: Option<FullName>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Grant or revoke superuser.
    pub is_superuser: Option<bool>,
}

/// Filters of the user list, as the whitelist names them.
#[derive(Debug, Clone, Copy)]
pub struct UserFilter;

impl UserFilter {
    /// `is_active=true|false`
    pub const IS_ACTIVE: &'static str = "is_active";
    /// `is_superuser=true|false`
    pub const IS_SUPERUSER: &'static str = "is_superuser";
    /// `role=admin|staff|customer`
    pub const ROLE: &'static str = "role";
    /// `created_after=<timestamp or date>` (inclusive)
    pub const CREATED_AFTER: &'static str = "created_after";
    /// `created_before=<timestamp or date>` (exclusive)
    pub const CREATED_BEFORE: &'static str = "created_before";
}

static USER_LIST_SPEC: ListSpec = ListSpec {
    resource: "users",
    filters: &[
        (UserFilter::IS_ACTIVE, FilterKind::Bool),
        (UserFilter::IS_SUPERUSER, FilterKind::Bool),
        (UserFilter::ROLE, FilterKind::OneOf(&["admin", "staff", "customer"])),
        (UserFilter::CREATED_AFTER, FilterKind::DateTime),
        (UserFilter::CREATED_BEFORE, FilterKind::DateTime),
    ],
    sorts: &[("created_at", SortKind::DateTime), ("email", SortKind::Text), ("full_name", SortKind::Text)],
    default_sort: ("created_at", Direction::Desc),
    searchable: true,
    page_sizes: PageSizes::DEFAULT,
};

/// The user list's names bound to the `users` columns; `role` is a subquery on `user_roles`, applied by
/// [`UserRepo::list`].
static USER_LIST: ListColumns<user::Entity> = ListColumns {
    spec: &USER_LIST_SPEC,
    key: user::Column::Id,
    sorts: &[
        ("created_at", user::Column::CreatedAt),
        ("email", user::Column::Email),
        ("full_name", user::Column::FullName),
    ],
    filters: &[
        (UserFilter::IS_ACTIVE, user::Column::IsActive, FilterOp::Eq),
        (UserFilter::IS_SUPERUSER, user::Column::IsSuperuser, FilterOp::Eq),
        (UserFilter::CREATED_AFTER, user::Column::CreatedAt, FilterOp::Gte),
        (UserFilter::CREATED_BEFORE, user::Column::CreatedAt, FilterOp::Lt),
    ],
    search: &[user::Column::Email, user::Column::FullName],
};

/// The whitelist of the user list: filters `is_active`, `is_superuser`, `role`, `created_after`,
/// `created_before`; sorts `created_at` (default, newest first), `email`, `full_name`; search `q` in e-mail
/// and name.
pub fn user_list_spec() -> &'static ListSpec {
    &USER_LIST_SPEC
}

/// Users and their roles: the sea-orm [`UserStore`].
#[derive(Debug, Clone)]
pub struct UserRepo {
    db: Database,
}

/// Timestamps are kept to the microsecond, the precision of PostgreSQL, so a value read back equals the one
/// written on both backends.
fn stamp(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn role_of(name: &str) -> Option<Role> {
    name.parse().ok()
}

impl UserRepo {
    /// A repository over `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database this repository works on.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs raw SQL against the pool, for tests and tools that must look beneath the repository.
    ///
    /// # Errors
    /// [`RepoError::Database`] when the statement fails.
    pub async fn execute_raw(&self, sql: &str) -> RepoResult<u64> {
        Ok(self.db.connection().execute_unprepared(sql).await?.rows_affected())
    }
}

impl UserStore for UserRepo {
    #[tracing::instrument(skip_all)]
    async fn create(&self, uow: &UnitOfWork, new: NewUserRecord, at: DateTime<Utc>) -> RepoResult<UserRecord> {
        let (id, at) = (UserId::new(), stamp(at));
        let record = new_record(id, &new, at);
        let (model, roles) = to_models(id, new, at);
        let txn = uow.conn();
        user::Entity::insert(model).exec_without_returning(txn).await?;
        // Counted once the row is in: a failed insert (a taken e-mail) counts nothing, even in a unit that
        // goes on after the error.
        uow.count_user(id.as_uuid(), record.is_active, record.is_superuser, 1);
        if !roles.is_empty() {
            user_role::Entity::insert_many(roles).exec_without_returning(txn).await?;
        }
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(rows = rows.len()))]
    async fn bulk_create(&self, uow: &UnitOfWork, rows: Vec<NewUserRecord>, at: DateTime<Utc>) -> RepoResult<usize> {
        let mut first_index: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            if let Some(earlier) = first_index.insert(row.email.as_str(), index) {
                return Err(RepoError::Conflict {
                    message: format!("e-mail address repeats row {earlier}"),
                    index: Some(index),
                });
            }
        }
        let emails = Batch::of(&rows, |r| r.email.as_str().to_owned());
        let taken: HashSet<String> = emails
            .tuples::<_, String, _>(
                uow.conn(),
                user::Entity::find().select_only().column(user::Column::Email),
                user::Column::Email,
            )
            .await?
            .into_iter()
            .collect();
        if let Some(index) = rows.iter().position(|r| taken.contains(r.email.as_str())) {
            return Err(RepoError::Conflict {
                message: "a user with this e-mail address already exists".into(),
                index: Some(index),
            });
        }
        // A request waits on these statements: small ones (docs/PERFORMANCE.md, bulk creation).
        insert_batch(uow, rows, at, MAX_ROWS_PER_INSERT).await
    }

    #[tracing::instrument(skip_all, fields(rows = rows.len()))]
    async fn bulk_import(&self, uow: &UnitOfWork, rows: Vec<NewUserRecord>, at: DateTime<Utc>) -> RepoResult<usize> {
        // A trusted load: the biggest statements the bind limit allows are the fastest.
        insert_batch(uow, rows, at, usize::MAX).await
    }

    async fn find(&self, id: UserId) -> RepoResult<Option<UserRecord>> {
        find_in(self.db.connection(), id).await
    }

    async fn find_by_email(&self, email: &Email) -> RepoResult<Option<UserRecord>> {
        let conn = self.db.connection();
        let model = user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(conn).await?;
        with_roles_one(conn, model).await
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn update(
        &self,
        uow: &UnitOfWork,
        id: UserId,
        changes: UserChanges,
        at: DateTime<Utc>,
    ) -> RepoResult<UserRecord> {
        // The flags before the change, for the dashboard's counters; the row is locked until the unit ends
        // (SQLite's unit holds the write lock already).
        let before = if changes.is_active.is_some() || changes.is_superuser.is_some() {
            Some(flags_for_change(uow, id).await?.ok_or(RepoError::NotFound)?)
        } else {
            None
        };
        let mut update = user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::val(stamp(at)))
            .filter(user::Column::Id.eq(id.as_uuid()));
        if let Some(email) = changes.email {
            update = update.col_expr(user::Column::Email, Expr::val(email.into_inner()));
        }
        if let Some(name) = changes.full_name {
            update = update.col_expr(user::Column::FullName, Expr::val(name.into_inner()));
        }
        if let Some(hash) = changes.password_hash {
            update = update.col_expr(user::Column::PasswordHash, Expr::val(hash));
        }
        if let Some(active) = changes.is_active {
            update = update.col_expr(user::Column::IsActive, Expr::val(active));
        }
        if let Some(superuser) = changes.is_superuser {
            update = update.col_expr(user::Column::IsSuperuser, Expr::val(superuser));
        }
        if update.exec(uow.conn()).await?.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        if let Some((was_active, was_superuser)) = before {
            let id = id.as_uuid();
            let change = |old: bool, new: Option<bool>| i64::from(new.unwrap_or(old)) - i64::from(old);
            uow.count(USERS_ACTIVE, id, change(was_active, changes.is_active));
            uow.count(USERS_SUPERUSER, id, change(was_superuser, changes.is_superuser));
        }
        find_in(uow.conn(), id).await?.ok_or(RepoError::NotFound)
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn delete(&self, uow: &UnitOfWork, id: UserId) -> RepoResult<()> {
        let (is_active, is_superuser) = flags_for_change(uow, id).await?.ok_or(RepoError::NotFound)?;
        if user::Entity::delete_by_id(id.as_uuid()).exec(uow.conn()).await?.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        uow.count_user(id.as_uuid(), is_active, is_superuser, -1);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn set_roles(
        &self,
        uow: &UnitOfWork,
        id: UserId,
        roles: &[Role],
        at: DateTime<Utc>,
    ) -> RepoResult<UserRecord> {
        let txn = uow.conn();
        let at = stamp(at);
        let touched = user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::val(at))
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(txn)
            .await?;
        if touched.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        user_role::Entity::delete_many().filter(user_role::Column::UserId.eq(id.as_uuid())).exec(txn).await?;
        let unique = unique_roles(roles.to_vec());
        if !unique.is_empty() {
            let rows = unique.iter().map(|role| role_model(id.as_uuid(), *role, at));
            user_role::Entity::insert_many(rows).exec_without_returning(txn).await?;
        }
        find_in(txn, id).await?.ok_or(RepoError::NotFound)
    }

    async fn any_admin(&self) -> RepoResult<bool> {
        let admins = Query::select()
            .column(user_role::Column::UserId)
            .from(user_role::Entity)
            .and_where(user_role::Column::Role.eq(Role::Admin.as_str()))
            .to_owned();
        let found: Option<Uuid> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::IsActive.eq(true))
            .filter(Condition::any().add(user::Column::IsSuperuser.eq(true)).add(user::Column::Id.in_subquery(admins)))
            .limit(1)
            .into_tuple()
            .one(self.db.connection())
            .await?;
        Ok(found.is_some())
    }

    #[tracing::instrument(skip_all)]
    async fn list(&self, query: &ListQuery) -> RepoResult<Listing<UserRecord>> {
        let mut select = user::Entity::find();
        if let Some(role) = query.word_filter(UserFilter::ROLE) {
            let holders = Query::select()
                .column(user_role::Column::UserId)
                .from(user_role::Entity)
                .and_where(user_role::Column::Role.eq(role))
                .to_owned();
            select = select.filter(user::Column::Id.in_subquery(holders));
        }
        let conn = self.db.connection();
        let page = USER_LIST.fetch(conn, query, select).await?;
        let mut roles = roles_of(conn, page.items()).await?;
        Ok(page.map(|m| user_record(m, &mut roles)))
    }
}

/// Inserts `rows` with multi-row INSERTs of at most `max_rows` rows in the caller's unit.
async fn insert_batch(
    uow: &UnitOfWork,
    rows: Vec<NewUserRecord>,
    at: DateTime<Utc>,
    max_rows: usize,
) -> RepoResult<usize> {
    let count = rows.len();
    let created = stamp(at);
    let mut users = Vec::with_capacity(count);
    let mut roles = Vec::with_capacity(count);
    let mut counted = Vec::with_capacity(count);
    for row in rows {
        let id = UserId::new();
        counted.push((id.as_uuid(), row.is_active, row.is_superuser));
        let (model, mut row_roles) = to_models(id, row, created);
        users.push(model);
        roles.append(&mut row_roles);
    }
    insert_chunked_by(uow.conn(), users, max_rows).await?;
    // Counted once the rows are in, as in `create`.
    for (id, is_active, is_superuser) in counted {
        uow.count_user(id, is_active, is_superuser, 1);
    }
    insert_chunked_by(uow.conn(), roles, max_rows).await?;
    Ok(count)
}

/// The user's `(is_active, is_superuser)` read in `uow` before a change to them, the row locked on PostgreSQL
/// so that the change counted is the one made.
async fn flags_for_change(uow: &UnitOfWork, id: UserId) -> RepoResult<Option<(bool, bool)>> {
    let mut select = user::Entity::find_by_id(id.as_uuid())
        .select_only()
        .column(user::Column::IsActive)
        .column(user::Column::IsSuperuser);
    if uow.backend() == Backend::Postgres {
        select = select.lock_exclusive();
    }
    Ok(select.into_tuple().one(uow.conn()).await?)
}

/// A user by id, read on `conn` (the pool, or a unit that has just written it).
async fn find_in(conn: &impl ConnectionTrait, id: UserId) -> RepoResult<Option<UserRecord>> {
    let model = user::Entity::find_by_id(id.as_uuid()).one(conn).await?;
    with_roles_one(conn, model).await
}

async fn with_roles_one(conn: &impl ConnectionTrait, model: Option<user::Model>) -> RepoResult<Option<UserRecord>> {
    match model {
        None => Ok(None),
        Some(model) => {
            let mut roles = roles_of(conn, std::slice::from_ref(&model)).await?;
            Ok(Some(user_record(model, &mut roles)))
        }
    }
}

/// The roles of all `models`, by user, with one statement.
async fn roles_of(
    conn: &impl ConnectionTrait,
    models: &[user::Model],
) -> RepoResult<HashMap<Uuid, Vec<user_role::Model>>> {
    Batch::of(models, |m| m.id).many(conn, user_role::Entity::find(), user_role::Column::UserId).await
}

/// The record of a user as [`to_models`] writes it (no need to read back what was just written).
fn new_record(id: UserId, new: &NewUserRecord, created_at: DateTime<Utc>) -> UserRecord {
    UserRecord {
        id,
        email: new.email.as_str().to_owned(),
        full_name: new.full_name.as_str().to_owned(),
        password_hash: new.password_hash.clone(),
        is_active: new.is_active,
        is_superuser: new.is_superuser,
        roles: unique_roles(new.roles.clone()),
        created_at,
        updated_at: created_at,
    }
}

fn unique_roles(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort();
    roles.dedup();
    roles
}

/// The record of `m` with its roles, taken from `roles` (the batch of its page).
fn user_record(m: user::Model, roles: &mut HashMap<Uuid, Vec<user_role::Model>>) -> UserRecord {
    let mut user_roles: Vec<Role> =
        roles.remove(&m.id).unwrap_or_default().iter().filter_map(|row| role_of(&row.role)).collect();
    user_roles.sort();
    UserRecord {
        id: UserId::from_uuid(m.id),
        email: m.email,
        full_name: m.full_name,
        password_hash: m.password_hash,
        is_active: m.is_active,
        is_superuser: m.is_superuser,
        roles: user_roles,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn role_model(user_id: Uuid, role: Role, created_at: DateTime<Utc>) -> user_role::ActiveModel {
    user_role::ActiveModel { user_id: Set(user_id), role: Set(role.as_str().to_owned()), created_at: Set(created_at) }
}

fn to_models(
    id: UserId,
    new: NewUserRecord,
    created_at: DateTime<Utc>,
) -> (user::ActiveModel, Vec<user_role::ActiveModel>) {
    let id = id.as_uuid();
    let roles = unique_roles(new.roles).into_iter().map(|role| role_model(id, role, created_at)).collect();
    let model = user::ActiveModel {
        id: Set(id),
        email: Set(new.email.into_inner()),
        full_name: Set(new.full_name.into_inner()),
        password_hash: Set(new.password_hash),
        is_active: Set(new.is_active),
        is_superuser: Set(new.is_superuser),
        created_at: Set(created_at),
        updated_at: Set(created_at),
    };
    (model, roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sort_of_the_user_list_has_a_column() {
        assert!(USER_LIST.unbound_sorts().is_empty());
    }
}
