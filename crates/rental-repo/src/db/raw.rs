//! Hand-written SQL for the few statements the query builder cannot express portably (time arithmetic, window
//! functions, `UPDATE .. FROM` over a derived table): SQL text plus its values, with the backend's placeholder
//! syntax (numbered for PostgreSQL, positional for SQLite).

use sea_orm::{DbBackend, Statement, Value};

use crate::Backend;

/// A statement under construction.
pub(crate) struct RawSql {
    backend: Backend,
    sql: String,
    values: Vec<Value>,
}

impl RawSql {
    pub(crate) fn new(backend: Backend) -> Self {
        Self { backend, sql: String::with_capacity(512), values: Vec::new() }
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            Backend::Postgres => {
                let n = self.values.len();
                self.sql.push('$');
                self.sql.push_str(&n.to_string());
            }
            Backend::Sqlite => self.sql.push('?'),
        }
        self
    }

    pub(crate) fn statement(self) -> Statement {
        let backend = match self.backend {
            Backend::Postgres => DbBackend::Postgres,
            Backend::Sqlite => DbBackend::Sqlite,
        };
        Statement::from_sql_and_values(backend, self.sql, self.values)
    }
}
