//! Money: integer minor units with a currency, never a float.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Validates a code (`EUR`, `usd` is accepted and upper-cased).
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on the field `currency`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let upper = raw.trim().to_ascii_uppercase();
        match upper.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(DomainError::field("currency", "must be a three-letter ISO 4217 code such as EUR")),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point (ISO 4217 minor unit): 0 for JPY and KRW, 3 for BHD, KWD, OMR, JOD,
    /// TND, 2 otherwise.
    pub fn minor_digits(&self) -> u32 {
        match self.as_str() {
            "JPY" | "KRW" | "CLP" | "ISK" | "VND" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
            _ => 2,
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in minor units (cents) of one currency. Arithmetic is checked: overflow and mixing
/// currencies are errors, not wrong numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units; may be negative for credits and refunds.
    pub amount_minor: i64,
    /// Currency.
    pub currency: Currency,
}

fn overflow() -> DomainError {
    DomainError::field("amount", "is too large")
}

impl Money {
    /// An amount in minor units.
    pub const fn new(amount_minor: i64, currency: Currency) -> Self {
        Self { amount_minor, currency }
    }

    /// Zero of a currency.
    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// A price: a non-negative amount.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on `field` when negative.
    pub fn price(amount_minor: i64, currency: Currency, field: &str) -> Result<Self, DomainError> {
        if amount_minor < 0 {
            return Err(DomainError::field(field, "must not be negative"));
        }
        Ok(Self::new(amount_minor, currency))
    }

    /// The sum of two amounts of the same currency.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on mixed currencies or overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, DomainError> {
        self.same_currency(other)?;
        self.amount_minor.checked_add(other.amount_minor).map(|a| Money::new(a, self.currency)).ok_or_else(overflow)
    }

    /// The amount times a whole number (quantity, days).
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on overflow.
    pub fn checked_mul(self, factor: i64) -> Result<Money, DomainError> {
        self.amount_minor.checked_mul(factor).map(|a| Money::new(a, self.currency)).ok_or_else(overflow)
    }

    /// `rate_basis_points / 10,000` of the amount, rounded half away from zero to a whole minor unit (the
    /// usual rule for VAT): 19 % is 1,900 basis points.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on overflow.
    pub fn percentage(self, rate_basis_points: u32) -> Result<Money, DomainError> {
        let product = i128::from(self.amount_minor) * i128::from(rate_basis_points);
        let half = 5_000i128;
        let rounded = if product >= 0 { (product + half) / 10_000 } else { (product - half) / 10_000 };
        i64::try_from(rounded).map(|a| Money::new(a, self.currency)).map_err(|_| overflow())
    }

    fn same_currency(self, other: Money) -> Result<(), DomainError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(DomainError::field("currency", format!("cannot combine {} with {}", self.currency, other.currency)))
        }
    }
}

impl fmt::Display for Money {
    /// `12.34 EUR`, `-0.05 EUR`, `1200 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        if digits == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let scale = 10u64.pow(digits);
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        write!(f, "{sign}{}.{:0width$} {}", abs / scale, abs % scale, self.currency, width = digits as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("eur").unwrap()
    }

    #[test]
    fn currencies_are_validated_and_upper_cased() {
        assert_eq!(eur().as_str(), "EUR");
        for bad in ["", "EU", "EURO", "E1R", "€€€"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&eur()).unwrap(), "\"EUR\"");
        assert!(serde_json::from_str::<Currency>("\"nope\"").is_err());
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::new(1_050, eur());
        assert_eq!(a.checked_add(Money::new(5, eur())).unwrap().amount_minor, 1_055);
        assert!(a.checked_add(Money::new(5, Currency::parse("USD").unwrap())).is_err());
        assert!(Money::new(i64::MAX, eur()).checked_add(Money::new(1, eur())).is_err());
        assert!(Money::new(i64::MAX / 2, eur()).checked_mul(3).is_err());
        assert!(Money::price(-1, eur(), "price_per_day").is_err());
    }

    #[test]
    fn percentages_round_half_away_from_zero() {
        assert_eq!(Money::new(1_000, eur()).percentage(1_900).unwrap().amount_minor, 190);
        assert_eq!(Money::new(5, eur()).percentage(5_000).unwrap().amount_minor, 3, "2.5 rounds up");
        assert_eq!(Money::new(-5, eur()).percentage(5_000).unwrap().amount_minor, -3, "-2.5 rounds down");
        assert_eq!(Money::new(1, eur()).percentage(4_999).unwrap().amount_minor, 0);
    }

    #[test]
    fn display_uses_the_minor_unit() {
        assert_eq!(Money::new(1_234, eur()).to_string(), "12.34 EUR");
        assert_eq!(Money::new(-5, eur()).to_string(), "-0.05 EUR");
        assert_eq!(Money::new(1_200, Currency::parse("JPY").unwrap()).to_string(), "1200 JPY");
        assert_eq!(Money::new(1_234, Currency::parse("KWD").unwrap()).to_string(), "1.234 KWD");
    }
}
