//! Catalogue values: names, slugs, SKUs, serial numbers, unit conditions and the limits that go with them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Longest category, location or product name, in characters.
pub const CATALOGUE_NAME_MAX_LEN: usize = 100;
/// Longest product name, in characters.
pub const PRODUCT_NAME_MAX_LEN: usize = 200;
/// Longest description, in characters.
pub const DESCRIPTION_MAX_LEN: usize = 2_000;
/// Longest SKU or serial number, in characters.
pub const CODE_MAX_LEN: usize = 64;
/// Largest buffer between two rentals of a product: one week, in minutes.
pub const BUFFER_MINUTES_MAX: i32 = 10_080;

/// A trimmed, non-empty display text of at most `max` characters without control characters.
///
/// # Errors
/// [`DomainError::Invalid`] on `field`.
pub fn display_text(field: &str, raw: &str, max: usize) -> Result<String, DomainError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(DomainError::field(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(DomainError::field(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::field(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// An optional description: trimmed, at most [`DESCRIPTION_MAX_LEN`] characters; blank means none.
///
/// # Errors
/// [`DomainError::Invalid`] on `field`.
pub fn description(field: &str, raw: &str) -> Result<Option<String>, DomainError> {
    let value = raw.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > DESCRIPTION_MAX_LEN {
        return Err(DomainError::field(field, format!("must be at most {DESCRIPTION_MAX_LEN} characters")));
    }
    Ok(Some(value.to_owned()))
}

/// A category name with its slug: the lower-cased name with every run of other characters than letters and
/// digits turned into one `-` (`"Power Tools "` → `power-tools`). Slugs are unique, so `Power tools` and
/// `power-tools` are the same category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryName {
    name: String,
    slug: String,
}

impl CategoryName {
    /// Validates a name and derives its slug.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on the field `name`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = display_text("name", raw, CATALOGUE_NAME_MAX_LEN)?;
        let slug = slugify(&name);
        if slug.is_empty() {
            return Err(DomainError::field("name", "must contain a letter or a digit"));
        }
        Ok(Self { name, slug })
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The slug.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// Consumes the value: `(name, slug)`.
    pub fn into_parts(self) -> (String, String) {
        (self.name, self.slug)
    }
}

/// The slug of a text: lower-case letters and digits, other runs become one `-`, none at either end.
pub fn slugify(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if gap && !slug.is_empty() {
                slug.push('-');
            }
            gap = false;
            slug.push(c);
        } else {
            gap = true;
        }
    }
    slug
}

/// A stock-keeping unit or serial number: 1–64 characters of letters, digits, `-`, `_`, `.` and `/`, kept as
/// given (upper-cased letters are not folded: `AB-1` and `ab-1` are different codes).
///
/// # Errors
/// [`DomainError::Invalid`] on `field`.
pub fn code(field: &str, raw: &str) -> Result<String, DomainError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(DomainError::field(field, "must not be empty"));
    }
    if value.chars().count() > CODE_MAX_LEN {
        return Err(DomainError::field(field, format!("must be at most {CODE_MAX_LEN} characters")));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')) {
        return Err(DomainError::field(field, "may hold only letters, digits, '-', '_', '.' and '/'"));
    }
    Ok(value.to_owned())
}

/// The buffer kept free after a rental of a product, in minutes (0 to one week).
///
/// # Errors
/// [`DomainError::Invalid`] on the field `buffer_minutes`.
pub fn buffer_minutes(minutes: i64) -> Result<i32, DomainError> {
    match i32::try_from(minutes) {
        Ok(m) if (0..=BUFFER_MINUTES_MAX).contains(&m) => Ok(m),
        _ => Err(DomainError::field("buffer_minutes", format!("must be from 0 to {BUFFER_MINUTES_MAX}"))),
    }
}

/// A bulk stock quantity: 0 or more.
///
/// # Errors
/// [`DomainError::Invalid`] on the field `quantity`.
pub fn quantity(value: i64) -> Result<i32, DomainError> {
    match i32::try_from(value) {
        Ok(q) if q >= 0 => Ok(q),
        _ => Err(DomainError::field("quantity", "must be a whole number from 0 to 2147483647")),
    }
}

/// The state of an individually tracked unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitCondition {
    /// Never rented.
    New,
    /// Normal wear.
    Good,
    /// Usable, visibly worn.
    Fair,
    /// Needs repair; not rentable.
    Damaged,
}

impl UnitCondition {
    /// Every condition, in order.
    pub const ALL: [Self; 4] = [Self::New, Self::Good, Self::Fair, Self::Damaged];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Good => "good",
            Self::Fair => "fair",
            Self::Damaged => "damaged",
        }
    }
}

impl FromStr for UnitCondition {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| DomainError::field("condition", "must be one of new, good, fair, damaged"))
    }
}

impl fmt::Display for UnitCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_fold_case_and_separators() {
        assert_eq!(CategoryName::parse("  Power   Tools! ").unwrap().slug(), "power-tools");
        assert_eq!(CategoryName::parse("power-tools").unwrap().slug(), "power-tools");
        assert_eq!(CategoryName::parse("Über Bühne").unwrap().slug(), "über-bühne");
        assert!(CategoryName::parse("!!!").is_err());
        assert!(CategoryName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn codes_buffers_and_quantities_are_bounded() {
        assert_eq!(code("sku", " AB-1/2 ").unwrap(), "AB-1/2");
        assert!(code("sku", "a b").is_err());
        assert!(code("sku", "").is_err());
        assert_eq!(buffer_minutes(10_080).unwrap(), 10_080);
        assert!(buffer_minutes(10_081).is_err());
        assert!(buffer_minutes(-1).is_err());
        assert_eq!(quantity(0).unwrap(), 0);
        assert!(quantity(-1).is_err());
        assert_eq!("fair".parse::<UnitCondition>().unwrap(), UnitCondition::Fair);
        assert!("broken".parse::<UnitCondition>().is_err());
    }
}
