use rental_domain::DomainError;
use rental_repo::RepoError;

/// Result of a service operation.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// What a service operation can fail with. Each variant maps to one kind of answer for the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Input broke a domain rule; lists every bad field.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// A list query parameter is unknown or out of range.
    #[error("invalid query parameter `{field}`: {message}")]
    InvalidQuery {
        /// The parameter.
        field: String,
        /// Why.
        message: String,
    },
    /// Missing, wrong, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The thing does not exist (or the caller may not know it does).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change clashes with stored data.
    #[error("{message}")]
    Conflict {
        /// What clashed.
        message: String,
        /// For a batch, the index of the offending row.
        index: Option<usize>,
    },
    /// Not enough stock is free: the lines that failed, with the nearest free periods.
    #[error("not enough stock is free for {} line(s)", .0.len())]
    Unavailable(Vec<crate::orders::ShortageView>),
    /// The configuration cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The persistence layer failed.
    #[error("storage failure")]
    Repo(#[source] RepoError),
    /// The persistence layer failed while filling a cache entry that other requests were waiting for too.
    #[error("storage failure")]
    SharedRepo(#[source] std::sync::Arc<RepoError>),
    /// Something that should not happen did (a worker thread died).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<RepoError> for ServiceError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::Conflict { message, index } => Self::Conflict { message, index },
            RepoError::InvalidQuery { field, message } => Self::InvalidQuery { field, message },
            RepoError::NotFound => Self::NotFound("record"),
            RepoError::Domain(domain) => Self::Invalid(domain),
            RepoError::Unavailable(short) => Self::Unavailable(crate::orders::shortage_views(&short)),
            other => Self::Repo(other),
        }
    }
}
