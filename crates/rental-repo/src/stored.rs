//! Stored columns read back as domain values, once, where an entity becomes a record.
//!
//! The entities keep their column types (a currency as its `CHAR(3)` code, amounts as `i64` minor units); the
//! records this crate hands out carry [`Currency`], [`Money`](rental_domain::Money) and [`ProductTerms`]. A
//! stored value the domain refuses was not written through this crate's records, so it is corrupt data and
//! not the caller's mistake: it becomes [`RepoError::Database`] (the service answers 500 and logs which column
//! held what), never a validation error for the client and never a panic.

use rental_domain::pricing::{ProductTerms, RateCard};
use rental_domain::{Currency, Money};
use sea_orm::DbErr;

use crate::entity::product;
use crate::{RepoError, RepoResult};

/// The error for a stored value that cannot be read as its domain type.
pub(crate) fn corrupt(what: String) -> RepoError {
    RepoError::from(DbErr::Type(what))
}

/// The currency stored in `table.currency`.
///
/// # Errors
/// [`RepoError::Database`] when `code` is not a currency code.
pub(crate) fn currency(table: &str, code: &str) -> RepoResult<Currency> {
    Currency::parse(code).map_err(|_| corrupt(format!("`{table}.currency` holds {code:?}, not a currency code")))
}

/// The terms stored in a row of `table` (products and order lines keep the same columns): its currency, the
/// day, week and month rates, the deposit and late fee per item, and the buffer.
///
/// # Errors
/// [`RepoError::Database`] when the currency is not one or the rates do not make a rate card.
pub(crate) fn terms(
    table: &str,
    code: &str,
    (per_day, per_week, per_month): (i64, Option<i64>, Option<i64>),
    deposit_per_unit: i64,
    late_fee_per_day: i64,
    buffer_minutes: i32,
) -> RepoResult<ProductTerms> {
    let currency = currency(table, code)?;
    let money = |amount: i64| Money::new(amount, currency);
    let rates = RateCard::new(money(per_day), per_week.map(money), per_month.map(money))
        .map_err(|e| corrupt(format!("the rates stored in `{table}` are not a rate card: {e}")))?;
    Ok(ProductTerms {
        rates,
        deposit_per_unit: money(deposit_per_unit),
        late_fee_per_day: money(late_fee_per_day),
        buffer_minutes,
    })
}

/// A product's terms from its stored columns, as the domain prices them.
///
/// # Errors
/// [`RepoError::Database`] when its currency or rates are unusable.
pub(crate) fn product_terms(p: &product::Model) -> RepoResult<ProductTerms> {
    terms(
        "products",
        &p.currency,
        (p.price_per_day_minor, p.price_per_week_minor, p.price_per_month_minor),
        p.deposit_minor,
        p.late_fee_per_day_minor,
        p.buffer_minutes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_code_that_is_not_a_currency_is_a_database_error_naming_the_column() {
        assert_eq!(currency("invoices", "eur").unwrap().as_str(), "EUR");
        let err = currency("invoices", "E1R").unwrap_err();
        assert!(
            matches!(&err, RepoError::Database(cause) if cause.to_string().contains("invoices.currency")),
            "{err:?}"
        );
    }

    #[test]
    fn stored_rates_that_are_not_a_rate_card_are_a_database_error() {
        let eur = Money::new(100, Currency::parse("EUR").unwrap());
        let read = terms("products", "EUR", (100, Some(500), None), 0, 20, 30).unwrap();
        assert_eq!((read.rates.per_day, read.late_fee_per_day.amount_minor, read.buffer_minutes), (eur, 20, 30));
        let err = terms("products", "EUR", (-1, None, None), 0, 0, 0).unwrap_err();
        assert!(matches!(err, RepoError::Database(_)), "{err:?}");
    }
}
