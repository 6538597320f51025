use serde::Serialize;

/// One invalid field of an input, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the client sent it (`email`, `users[3].email`).
    pub field: String,
    /// Why the value was rejected.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }

    /// Prefixes the field name, e.g. `email` becomes `users[3].email`.
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// A rule of the domain was broken by an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// One or more fields are invalid; every bad field is listed.
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// An order was asked to move to a status its current status does not lead to.
    #[error("cannot go from {from} to {to}; allowed: {}", if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") })]
    IllegalTransition {
        /// Current status.
        from: &'static str,
        /// Requested status.
        to: &'static str,
        /// Statuses the current one leads to.
        allowed: Vec<&'static str>,
    },
}

impl DomainError {
    /// An error about a single field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// The invalid fields.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Self::Invalid(fields) => fields,
            Self::IllegalTransition { .. } => &[],
        }
    }
}

/// Collects field errors so that a whole input is checked before reporting, instead of stopping at the first.
#[derive(Debug, Default)]
pub struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    /// Keeps the value of a successful parse, or remembers why it failed.
    pub fn take<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(DomainError::Invalid(mut fields)) => {
                self.errors.append(&mut fields);
                None
            }
            Err(other) => {
                self.errors.push(FieldError::new("input", other.to_string()));
                None
            }
        }
    }

    /// `Ok(())` when nothing failed, otherwise every collected error.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] listing every field that failed.
    pub fn finish(self) -> Result<(), DomainError> {
        if self.errors.is_empty() { Ok(()) } else { Err(DomainError::Invalid(self.errors)) }
    }
}
