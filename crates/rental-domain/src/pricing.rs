//! Rental pricing.
//!
//! The rule: a period is charged by its started days (see [`crate::RentalPeriod::charged_days`]), and the
//! price is the cheapest way to cover at least that many days with day (1), week (7) and month (30) rates.
//! Covering more days than rented is allowed when it is cheaper (6 days may cost one week). The result is
//! exact: a dynamic programme over the day count, not a greedy guess.

use serde::{Deserialize, Serialize};

use crate::{Currency, DomainError, Money};

/// Days in a charged week.
pub const WEEK_DAYS: i64 = 7;
/// Days in a charged month.
pub const MONTH_DAYS: i64 = 30;

/// The rates of a product. Week and month rates are optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCard {
    /// Price of one day.
    pub per_day: Money,
    /// Price of seven days.
    pub per_week: Option<Money>,
    /// Price of thirty days.
    pub per_month: Option<Money>,
}

/// How a price was made up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBreakdown {
    /// Months charged.
    pub months: i64,
    /// Weeks charged.
    pub weeks: i64,
    /// Days charged.
    pub days: i64,
    /// Total for one unit.
    pub total: Money,
}

impl RateCard {
    /// Checks that every rate is non-negative and in the day rate's currency.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] naming the rate at fault.
    pub fn new(per_day: Money, per_week: Option<Money>, per_month: Option<Money>) -> Result<Self, DomainError> {
        let mut errors = Vec::new();
        for (field, rate) in
            [("price_per_day", Some(per_day)), ("price_per_week", per_week), ("price_per_month", per_month)]
        {
            if let Some(rate) = rate {
                if rate.amount_minor < 0 {
                    errors.push(crate::FieldError::new(field, "must not be negative"));
                }
                if rate.currency != per_day.currency {
                    errors.push(crate::FieldError::new(field, "must be in the currency of the day rate"));
                }
            }
        }
        if errors.is_empty() { Ok(Self { per_day, per_week, per_month }) } else { Err(DomainError::Invalid(errors)) }
    }

    /// The cheapest price of `days` charged days for one unit.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] when `days` is not positive or the price overflows.
    pub fn price(&self, days: i64) -> Result<PriceBreakdown, DomainError> {
        if days <= 0 {
            return Err(DomainError::field("days", "must be at least 1"));
        }
        let days_usize = usize::try_from(days).map_err(|_| DomainError::field("days", "is too large"))?;
        // best[d] = cheapest (cost, months, weeks, days) covering at least d days.
        let mut best: Vec<(i64, i64, i64, i64)> = Vec::with_capacity(days_usize + 1);
        best.push((0, 0, 0, 0));
        let options =
            [(1, Some(self.per_day)), (WEEK_DAYS as usize, self.per_week), (MONTH_DAYS as usize, self.per_month)];
        for d in 1..=days_usize {
            let mut choice: Option<(i64, i64, i64, i64)> = None;
            for (span, rate) in options {
                let Some(rate) = rate else { continue };
                let (cost, m, w, dd) = best[d.saturating_sub(span)];
                let Some(cost) = cost.checked_add(rate.amount_minor) else { continue };
                let candidate = match span {
                    1 => (cost, m, w, dd + 1),
                    7 => (cost, m, w + 1, dd),
                    _ => (cost, m + 1, w, dd),
                };
                if choice.is_none_or(|c| candidate.0 < c.0) {
                    choice = Some(candidate);
                }
            }
            best.push(choice.ok_or_else(|| DomainError::field("price", "is too large"))?);
        }
        let (total, months, weeks, day_count) = best[days_usize];
        Ok(PriceBreakdown { months, weeks, days: day_count, total: Money::new(total, self.per_day.currency) })
    }
}

/// A product's rental terms, copied into each order line when it is priced so that later changes to the
/// product never alter an order: its rates, the deposit held per item, the late fee per item and started day,
/// and the buffer kept free after each rental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductTerms {
    /// Day, week and month rates.
    pub rates: RateCard,
    /// Deposit held per item (refundable, not taxed, not invoiced).
    pub deposit_per_unit: Money,
    /// Late fee per item and started day late (see [`crate::billing::late_fee`]).
    pub late_fee_per_day: Money,
    /// Minutes the stock stays held after each rental.
    pub buffer_minutes: i32,
}

/// One order line priced by [`ProductTerms::price`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricedLine {
    /// Started days charged.
    pub charged_days: i64,
    /// The cheapest cover of those days, for one item.
    pub cover: PriceBreakdown,
    /// Items.
    pub quantity: i64,
    /// `cover.total × quantity`.
    pub total: Money,
    /// Deposit held for the line's items.
    pub deposit: Money,
}

impl ProductTerms {
    /// The currency of every amount.
    pub fn currency(&self) -> Currency {
        self.rates.per_day.currency
    }

    /// Prices `quantity` items for `charged_days` started days: the cheapest cover per item, times the quantity,
    /// with the deposit of the items.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] when the days or quantity are not positive or an amount overflows.
    pub fn price(&self, charged_days: i64, quantity: i64) -> Result<PricedLine, DomainError> {
        if quantity < 1 {
            return Err(DomainError::field("quantity", "must be at least 1"));
        }
        let cover = self.rates.price(charged_days)?;
        Ok(PricedLine {
            charged_days,
            cover,
            quantity,
            total: cover.total.checked_mul(quantity)?,
            deposit: self.deposit_per_unit.checked_mul(quantity)?,
        })
    }
}

/// What an order costs, from its priced lines: their sum, the tax on it, the total, and the deposit held
/// (which is neither taxed nor invoiced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTotals {
    /// Sum of the lines.
    pub subtotal: Money,
    /// Tax on the subtotal, rounded half away from zero.
    pub tax: Money,
    /// Subtotal plus tax.
    pub total: Money,
    /// Deposit of every line's items.
    pub deposit: Money,
}

impl OrderTotals {
    /// The totals of `lines` in `currency` with tax at `tax_rate_bp` basis points.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] when a line is in another currency or an amount overflows.
    pub fn of<'a>(
        currency: Currency,
        lines: impl IntoIterator<Item = &'a PricedLine>,
        tax_rate_bp: u32,
    ) -> Result<Self, DomainError> {
        let (mut subtotal, mut deposit) = (Money::zero(currency), Money::zero(currency));
        for line in lines {
            subtotal = subtotal.checked_add(line.total)?;
            deposit = deposit.checked_add(line.deposit)?;
        }
        let tax = crate::billing::tax(subtotal, tax_rate_bp)?;
        Ok(Self { subtotal, tax, total: subtotal.checked_add(tax)?, deposit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn card() -> RateCard {
        // 10/day, 50/week, 150/month.
        RateCard::new(eur(1_000), Some(eur(5_000)), Some(eur(15_000))).unwrap()
    }

    #[test]
    fn the_cheapest_combination_wins() {
        let p = card().price(3).unwrap();
        assert_eq!((p.total.amount_minor, p.days, p.weeks), (3_000, 3, 0));
        let p = card().price(6).unwrap();
        assert_eq!((p.total.amount_minor, p.weeks, p.days), (5_000, 1, 0), "a week beats six days");
        let p = card().price(9).unwrap();
        assert_eq!((p.total.amount_minor, p.weeks, p.days), (7_000, 1, 2));
        let p = card().price(25).unwrap();
        assert_eq!((p.total.amount_minor, p.months), (15_000, 1), "a month beats 3 weeks and 4 days");
        let p = card().price(37).unwrap();
        assert_eq!((p.total.amount_minor, p.months, p.weeks), (20_000, 1, 1));
    }

    #[test]
    fn the_result_is_never_worse_than_any_simple_plan() {
        let card = card();
        for days in 1..=120 {
            let best = card.price(days).unwrap().total.amount_minor;
            assert!(best <= days * 1_000, "{days} days: never above the day rate");
            let weeks_only = ((days + 6) / 7) * 5_000;
            assert!(best <= weeks_only, "{days} days");
            let greedy = (days / 30) * 15_000 + ((days % 30) / 7) * 5_000 + (days % 30 % 7) * 1_000;
            assert!(best <= greedy, "{days} days");
        }
    }

    #[test]
    fn day_rate_only_and_bad_input() {
        let day_only = RateCard::new(eur(700), None, None).unwrap();
        assert_eq!(day_only.price(10).unwrap().total.amount_minor, 7_000);
        assert!(day_only.price(0).is_err());
        assert!(RateCard::new(eur(-1), None, None).is_err());
        let usd = Money::new(1, Currency::parse("USD").unwrap());
        assert!(RateCard::new(eur(100), Some(usd), None).is_err());
    }

    #[test]
    fn a_line_is_priced_per_item_and_an_order_totals_its_lines_with_tax() {
        let terms =
            ProductTerms { rates: card(), deposit_per_unit: eur(2_000), late_fee_per_day: eur(250), buffer_minutes: 0 };
        let line = terms.price(9, 3).unwrap();
        assert_eq!((line.cover.weeks, line.cover.days, line.cover.total), (1, 2, eur(7_000)));
        assert_eq!((line.total, line.deposit), (eur(21_000), eur(6_000)));
        assert!(terms.price(9, 0).is_err());
        let other = terms.price(1, 1).unwrap();
        let totals = OrderTotals::of(terms.currency(), [&line, &other], 1_900).unwrap();
        assert_eq!(totals.subtotal, eur(22_000));
        assert_eq!((totals.tax, totals.total, totals.deposit), (eur(4_180), eur(26_180), eur(8_000)));
        let foreign_money = Money::new(1, Currency::parse("USD").unwrap());
        let foreign = PricedLine { total: foreign_money, ..other };
        assert!(OrderTotals::of(terms.currency(), [&line, &foreign], 0).is_err());
    }
}
