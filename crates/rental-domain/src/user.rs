use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

/// Identifier of a user: a UUIDv7, so ids sort by creation time and index pages stay dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID (read from storage or a token).
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| DomainError::field("id", "is not a valid UUID"))
    }
}

/// Longest e-mail address accepted (RFC 5321 path limit).
pub const EMAIL_MAX_LEN: usize = 254;

/// An e-mail address, normalised to lower case so that uniqueness is case-insensitive on every database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates and normalises an address: trimmed, lower-cased, one `@` with a non-empty local part and a
    /// domain that has a dot, no whitespace, at most 254 characters.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on the field `email` when the address is not acceptable.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let value = raw.trim().to_lowercase();
        let invalid = |why: &str| Err(DomainError::field("email", why));
        if value.is_empty() {
            return invalid("must not be empty");
        }
        if value.chars().count() > EMAIL_MAX_LEN {
            return invalid("must be at most 254 characters");
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("must not contain spaces or control characters");
        }
        let Some((local, domain)) = value.split_once('@') else {
            return invalid("must contain an @");
        };
        if local.is_empty() || domain.contains('@') {
            return invalid("must have exactly one @ with a name before it");
        }
        let labels_ok = domain.split('.').all(|label| !label.is_empty());
        if !domain.contains('.') || !labels_ok {
            return invalid("must have a domain such as example.com");
        }
        Ok(Self(value))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the value.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest full name accepted, in characters.
pub const FULL_NAME_MAX_LEN: usize = 200;

/// A person's name as they want it shown: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct FullName(String);

impl FullName {
    /// Validates a name.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on the field `full_name`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(DomainError::field("full_name", "must not be empty"));
        }
        if value.chars().count() > FULL_NAME_MAX_LEN {
            return Err(DomainError::field("full_name", "must be at most 200 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::field("full_name", "must not contain control characters"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the value.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Shortest password accepted, in characters.
pub const PASSWORD_MIN_LEN: usize = 8;
/// Longest password accepted, in characters; bounds the hashing work an attacker can ask for.
pub const PASSWORD_MAX_LEN: usize = 128;

/// A plain-text password on its way to the hasher. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Validates the length of a new password (8 to 128 characters).
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on the field `password`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::parse_field(raw, "password")
    }

    /// Like [`Password::parse`], reporting errors under another field name (`new_password`).
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on `field`.
    pub fn parse_field(raw: &str, field: &str) -> Result<Self, DomainError> {
        let len = raw.chars().count();
        if len < PASSWORD_MIN_LEN {
            return Err(DomainError::field(field, "must be at least 8 characters"));
        }
        if len > PASSWORD_MAX_LEN {
            return Err(DomainError::field(field, "must be at most 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a password given at login without the rules for new passwords: an old password may predate them,
    /// and the answer must not reveal which rule failed. Over-long input is still cut off by the caller.
    pub fn unchecked(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The secret, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a user may do. `Admin` manages users; `Staff` runs the rental desk; `Customer` rents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control, including user administration.
    Admin,
    /// Works the counter: catalogue, orders.
    Staff,
    /// Rents equipment.
    Customer,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Staff, Role::Customer];

    /// The role's stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Customer => "customer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DomainError::field("role", "must be one of admin, staff, customer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_to_lower_case() {
        let email = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn bad_emails_are_rejected() {
        for raw in ["", "alice", "@example.com", "alice@", "alice@example", "a b@example.com", "a@b@c.com", "a@.com"] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn full_name_is_trimmed_and_bounded() {
        assert_eq!(FullName::parse("  Ada Lovelace ").unwrap().as_str(), "Ada Lovelace");
        assert!(FullName::parse("   ").is_err());
        assert!(FullName::parse(&"x".repeat(201)).is_err());
        assert!(FullName::parse("bad\u{0}name").is_err());
    }

    #[test]
    fn password_length_rules_and_redacted_debug() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let password = Password::parse("correct horse").unwrap();
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
        let err = Password::parse_field("short", "new_password").unwrap_err();
        assert_eq!(err.fields()[0].field, "new_password");
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{}\"", role.as_str()));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn user_ids_are_time_ordered() {
        let first = UserId::new();
        let second = UserId::new();
        assert!(first < second);
        assert_eq!(first.to_string().parse::<UserId>().unwrap(), first);
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
