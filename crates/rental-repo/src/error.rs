use sea_orm::{DbErr, SqlErr};

/// Result of a repository operation.
pub type RepoResult<T> = Result<T, RepoError>;

/// What can go wrong in the persistence layer.
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
    /// The database lock could not be had within the backoff policy.
    #[error("could not acquire the database lock `{name}` after {tries} tries")]
    LockTimeout {
        /// What the lock protects.
        name: String,
        /// How many times it was tried.
        tries: u32,
    },
    /// Not enough stock is free for the lines listed (with the nearest free periods).
    #[error("not enough stock for {} line(s)", .0.len())]
    Unavailable(Vec<crate::orders::Shortage>),
    /// The change breaks a domain rule (an illegal lifecycle transition, a unit that is not free).
    #[error(transparent)]
    Domain(rental_domain::DomainError),
    /// The database refused or failed the operation.
    #[error("database error")]
    Database(#[source] DbErr),
    /// The configuration cannot be used (bad URL, unwritable data directory).
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl RepoError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidQuery { field: field.into(), message: message.into() }
    }
}

impl From<DbErr> for RepoError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => {
                Self::Conflict { message: conflict_message(&detail), index: None }
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                Self::Conflict { message: "a referenced row does not exist or is still referenced".into(), index: None }
            }
            // SQLite reports ON DELETE RESTRICT as a trigger constraint (extended code 1811), which sea-orm
            // does not classify; its message is the foreign-key one.
            _ if err.to_string().contains("FOREIGN KEY constraint failed") => {
                Self::Conflict { message: "a referenced row does not exist or is still referenced".into(), index: None }
            }
            _ => match err {
                DbErr::RecordNotFound(_) => Self::NotFound,
                other => Self::Database(other),
            },
        }
    }
}

/// Turns a driver's constraint message into one a client may see, without table internals.
fn conflict_message(detail: &str) -> String {
    if detail.contains("email") {
        "a user with this e-mail address already exists".into()
    } else if detail.contains("sku") {
        "a product with this SKU already exists".into()
    } else if detail.contains("serial_number") {
        "a unit with this serial number already exists".into()
    } else if detail.contains("categories") {
        "a category with this name already exists".into()
    } else if detail.contains("locations") {
        "a location with this name already exists".into()
    } else {
        "the record clashes with an existing one".into()
    }
}
