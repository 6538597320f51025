use std::fmt;

use sea_orm::sqlx;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, SqlErr};

/// Result of a repository operation.
pub type RepoResult<T> = Result<T, RepoError>;

/// What can go wrong in the persistence layer.
///
/// No variant carries a sea-orm or sqlx type: the database's own error travels as an opaque [`DatabaseError`]
/// that the cause chain ([`std::error::Error::source`]) still reaches, so callers can match on what happened
/// without depending on the driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// A unique, foreign-key or exclusion constraint refused the write.
    #[error("conflict: {message}")]
    Conflict {
        /// What clashed, in words a client may see (`email already registered`).
        message: String,
        /// For a batch, the index of the offending row.
        index: Option<usize>,
    },
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A list query names a field, sort or value the resource does not accept.
    #[error("invalid query parameter `{field}`: {message}")]
    InvalidQuery {
        /// The parameter at fault.
        field: String,
        /// Why it was refused.
        message: String,
    },
    /// The advisory lock could not be had within the backoff policy.
    #[error("could not acquire the database lock `{name}` after {tries} tries")]
    LockTimeout {
        /// What the lock protects.
        name: String,
        /// How many times it was tried.
        tries: u32,
    },
    /// The database was too busy to do the work now; trying again later may succeed. Raised for a lock that
    /// could not be had in time (PostgreSQL `55P03`, SQLite `SQLITE_BUSY` "database is locked"), a
    /// serialization failure or deadlock that chose this transaction (`40001`, `40P01`) and a pool with no
    /// connection free within its acquire timeout.
    #[error("the database is busy")]
    Busy(#[source] DatabaseError),
    /// The database cannot be reached: the connection broke or was refused, or the server is shutting down or
    /// starting (PostgreSQL class `08`, `57P01`–`57P03`). The same operation will succeed once it is back.
    #[error("the database is unavailable")]
    Unavailable(#[source] DatabaseError),
    /// Not enough stock is free for the lines listed (with the nearest free periods).
    #[error("not enough stock for {} line(s)", .0.len())]
    InsufficientStock(Vec<crate::orders::Shortage>),
    /// The change breaks a domain rule (an illegal lifecycle transition, a unit that is not free).
    #[error(transparent)]
    Domain(rental_domain::DomainError),
    /// The database refused or failed the operation for a reason the caller cannot fix, or returned a value
    /// that cannot be read as its domain type (a stored currency code that is not one: corrupt data).
    #[error("database error")]
    Database(#[source] DatabaseError),
    /// The configuration cannot be used (bad URL, unwritable data directory).
    #[error("invalid database configuration: {0}")]
    Config(String),
}

/// The database driver's error, kept opaque: it is there for the log (through `source()`), not for matching.
pub struct DatabaseError(Box<DbErr>);

impl fmt::Debug for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for DatabaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl RepoError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidQuery { field: field.into(), message: message.into() }
    }

    /// Whether trying the same operation again later may succeed: the database or a lock was busy.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy(_) | Self::LockTimeout { .. })
    }

    /// Whether the database could not be reached at all (see [`RepoError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The message given for a foreign-key violation: which side is missing is not told by every backend.
const REFERENCE_CONFLICT: &str = "a referenced row does not exist or is still referenced";

impl From<DbErr> for RepoError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => {
                Self::Conflict { message: unique_violation_message(&err, &detail).into(), index: None }
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                Self::Conflict { message: REFERENCE_CONFLICT.into(), index: None }
            }
            // SQLite reports ON DELETE RESTRICT as a trigger constraint (extended code 1811), which sea-orm
            // does not classify; its message is the foreign-key one.
            _ if err.to_string().contains("FOREIGN KEY constraint failed") => {
                Self::Conflict { message: REFERENCE_CONFLICT.into(), index: None }
            }
            _ if is_busy(&err) => Self::Busy(DatabaseError(Box::new(err))),
            _ if is_unavailable(&err) => Self::Unavailable(DatabaseError(Box::new(err))),
            _ => match err {
                DbErr::RecordNotFound(_) => Self::NotFound,
                other => Self::Database(DatabaseError(Box::new(other))),
            },
        }
    }
}

/// The unique constraints a client can run into, by the name PostgreSQL reports (the index names of the
/// migrations) and by the `table.column` SQLite reports ("UNIQUE constraint failed: users.email"), with the
/// message the client sees. A constraint missing here gets [`GENERIC_UNIQUE`]: add it when a route can hit it.
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str)] = &[
    ("uq_users_email", "users.email", "a user with this e-mail address already exists"),
    ("uq_products_sku", "products.sku", "a product with this SKU already exists"),
    ("uq_units_serial_number", "units.serial_number", "a unit with this serial number already exists"),
    ("uq_categories_slug", "categories.slug", "a category with this name already exists"),
    ("uq_locations_name", "locations.name", "a location with this name already exists"),
    ("uq_jobs_dedupe", "jobs.kind, jobs.dedupe_key", "a job of this kind with this dedupe key exists"),
];

/// The message for a unique violation whose constraint is not in [`UNIQUE_CONSTRAINTS`].
const GENERIC_UNIQUE: &str = "the record clashes with an existing one";

/// The client message for a unique violation: looked up by the constraint's name (PostgreSQL) or by the
/// `table.column` list of SQLite's message (`detail`).
fn unique_violation_message(err: &DbErr, detail: &str) -> &'static str {
    let by_name = database_error(err)
        .and_then(|db| db.constraint())
        .and_then(|name| UNIQUE_CONSTRAINTS.iter().find(|(constraint, _, _)| *constraint == name));
    let by_columns = || {
        let columns = detail.rsplit_once("UNIQUE constraint failed: ")?.1.trim();
        UNIQUE_CONSTRAINTS.iter().find(|(_, cols, _)| *cols == columns)
    };
    by_name.or_else(by_columns).map_or(GENERIC_UNIQUE, |(_, _, message)| message)
}

/// The driver's database error inside `err`, if the database answered with one.
fn database_error(err: &DbErr) -> Option<&(dyn sqlx::error::DatabaseError + 'static)> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e.as_database_error(),
        _ => None,
    }
}

/// Whether `err` says the database was busy rather than that the statement was wrong: see [`RepoError::Busy`].
fn is_busy(err: &DbErr) -> bool {
    if let DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) = err {
        return true;
    }
    if let DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e)) = err
        && matches!(**e, sqlx::Error::PoolTimedOut)
    {
        return true;
    }
    let Some(db) = database_error(err) else { return false };
    let code = db.code().unwrap_or_default();
    if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        // lock_not_available, serialization_failure, deadlock_detected.
        matches!(&*code, "55P03" | "40001" | "40P01")
    } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // The primary code is the low byte of the extended one: SQLITE_BUSY (5) and its extended codes
        // (BUSY_RECOVERY 261, BUSY_SNAPSHOT 517, BUSY_TIMEOUT 773), and SQLITE_LOCKED (6) and its own.
        code.parse::<u32>().is_ok_and(|extended| matches!(extended & 0xff, 5 | 6))
    } else {
        false
    }
}

/// Whether `err` says the database could not be reached rather than that it refused the statement: see
/// [`RepoError::Unavailable`].
fn is_unavailable(err: &DbErr) -> bool {
    let sqlx_error = match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match &**sqlx_error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => {
            // connection_exception (08xxx), admin_shutdown, crash_shutdown, cannot_connect_now.
            let code = db.code().unwrap_or_default();
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn every_unique_constraint_has_a_distinct_name_and_columns() {
        for (i, (name, columns, _)) in UNIQUE_CONSTRAINTS.iter().enumerate() {
            for (other_name, other_columns, _) in &UNIQUE_CONSTRAINTS[i + 1..] {
                assert_ne!(name, other_name);
                assert_ne!(columns, other_columns);
            }
        }
    }

    #[test]
    fn a_pool_timeout_is_busy_and_other_errors_are_not() {
        assert!(RepoError::from(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)).is_busy());
        assert!(!RepoError::from(DbErr::Custom("boom".into())).is_busy());
        assert!(matches!(RepoError::from(DbErr::RecordNotFound("x".into())), RepoError::NotFound));
    }

    #[test]
    fn a_broken_connection_is_unavailable_and_a_bad_statement_is_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let broken = DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(io))));
        assert!(RepoError::from(broken).is_unavailable());
        assert!(RepoError::from(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)).is_unavailable());
        let closed = DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolClosed)));
        assert!(RepoError::from(closed).is_unavailable());
        let wrong = DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::RowNotFound)));
        assert!(!RepoError::from(wrong).is_unavailable());
        assert!(!RepoError::from(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)).is_unavailable());
    }
}
