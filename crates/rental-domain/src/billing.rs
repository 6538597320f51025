//! Billing rules: invoice statuses, payment methods, the kinds of charge on an invoice, and the late fee.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::{Currency, DomainError, Money, started_days};

/// Where an invoice is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    /// A quote's invoice: no number, nothing due.
    Draft,
    /// Issued (numbered) and not fully paid.
    Open,
    /// Fully paid.
    Paid,
    /// The order was cancelled.
    Void,
}

impl InvoiceStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [InvoiceStatus; 4] = [Self::Draft, Self::Open, Self::Paid, Self::Void];

    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Void => "void",
        }
    }

    /// Whether the invoice has been issued, and so has or is waiting for a number.
    pub const fn is_issued(self) -> bool {
        matches!(self, Self::Open | Self::Paid)
    }

    /// Whether a payment of `amount` may be recorded against an invoice in this status that has `due` left
    /// to pay in `currency`: only open invoices take payments, in their own currency, up to what is due.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] naming the field at fault.
    pub fn accept_payment(self, amount: Money, due: Money) -> Result<(), DomainError> {
        if self != Self::Open {
            return Err(DomainError::field("invoice", format!("is {self}; only open invoices take payments")));
        }
        if amount.currency != due.currency {
            return Err(DomainError::field("currency", format!("must be the invoice's currency {}", due.currency)));
        }
        if amount.amount_minor <= 0 {
            return Err(DomainError::field("amount_minor", "must be positive"));
        }
        if amount.amount_minor > due.amount_minor {
            return Err(DomainError::field("amount_minor", format!("exceeds the amount due ({})", due.amount_minor)));
        }
        Ok(())
    }

    /// The status after a payment leaves `paid` of `total` paid.
    pub const fn after_payment(self, paid: i64, total: i64) -> Self {
        match self {
            Self::Open if paid >= total => Self::Paid,
            other => other,
        }
    }

    /// The status after charges raise the total to `total` with `paid` paid: a paid invoice that now has
    /// something due reopens.
    pub const fn after_charges(self, paid: i64, total: i64) -> Self {
        match self {
            Self::Paid if total > paid => Self::Open,
            other => other,
        }
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvoiceStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| DomainError::field("status", "must be draft, open, paid or void"))
    }
}

/// How a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentMethod {
    /// Cash at the desk.
    Cash,
    /// Card at the desk.
    Card,
    /// Bank transfer.
    BankTransfer,
    /// Online through Stripe.
    Stripe,
}

impl PaymentMethod {
    /// The methods staff may record at the desk (Stripe payments are recorded by the payment flow).
    pub const DESK: [PaymentMethod; 3] = [Self::Cash, Self::Card, Self::BankTransfer];

    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cash => "cash",
            Self::Card => "card",
            Self::BankTransfer => "bank_transfer",
            Self::Stripe => "stripe",
        }
    }

    /// A method staff may record at the desk.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on `method` for anything else.
    pub fn parse_desk(s: &str) -> Result<Self, DomainError> {
        Self::DESK
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| DomainError::field("method", "must be cash, card or bank_transfer"))
    }
}

impl fmt::Display for PaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentMethod {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Cash, Self::Card, Self::BankTransfer, Self::Stripe]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| DomainError::field("method", "must be cash, card, bank_transfer or stripe"))
    }
}

/// What an invoice line charges for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChargeKind {
    /// The rental of an order line.
    Rental,
    /// A late return.
    LateFee,
    /// Damage to a unit.
    Damage,
}

impl ChargeKind {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rental => "rental",
            Self::LateFee => "late_fee",
            Self::Damage => "damage",
        }
    }
}

impl fmt::Display for ChargeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A charge to put on an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// What it is for.
    pub kind: ChargeKind,
    /// The invoice text.
    pub description: String,
    /// Items charged.
    pub quantity: i32,
    /// Price of one item.
    pub unit_amount: Money,
    /// `unit_amount × quantity`.
    pub amount: Money,
    /// Whether tax applies.
    pub taxable: bool,
}

/// The late fee of a line returned at `returned_at` that was due back at `due_at`: the line's fee per item and
/// started day late, times its quantity. `None` when it came back in time or the fee is zero.
///
/// # Errors
/// [`DomainError::Invalid`] when the amount overflows.
pub fn late_fee(
    fee_per_day: Money,
    quantity: i32,
    due_at: DateTime<Utc>,
    returned_at: DateTime<Utc>,
) -> Result<Option<Charge>, DomainError> {
    let late_days = started_days(returned_at - due_at);
    if late_days <= 0 || fee_per_day.amount_minor <= 0 {
        return Ok(None);
    }
    let per_item = fee_per_day.checked_mul(late_days)?;
    Ok(Some(Charge {
        kind: ChargeKind::LateFee,
        description: format!("Late return: {late_days} day(s) × {quantity} item(s)"),
        quantity,
        unit_amount: per_item,
        amount: per_item.checked_mul(i64::from(quantity))?,
        taxable: true,
    }))
}

/// A damage charge for one unit.
///
/// # Errors
/// [`DomainError::Invalid`] when the amount is negative.
pub fn damage_charge(
    amount: Money,
    unit: impl fmt::Display,
    note: Option<&str>,
) -> Result<Option<Charge>, DomainError> {
    if amount.amount_minor < 0 {
        return Err(DomainError::field("damage_charge_minor", "must not be negative"));
    }
    if amount.amount_minor == 0 {
        return Ok(None);
    }
    let description = match note {
        Some(n) => format!("Damage to unit {unit}: {n}"),
        None => format!("Damage to unit {unit}"),
    };
    Ok(Some(Charge { kind: ChargeKind::Damage, description, quantity: 1, unit_amount: amount, amount, taxable: true }))
}

/// The tax on `taxable` at `rate_bp` basis points, rounded half away from zero.
///
/// # Errors
/// [`DomainError::Invalid`] when the amount overflows.
pub fn tax(taxable: Money, rate_bp: u32) -> Result<Money, DomainError> {
    taxable.percentage(rate_bp)
}

/// `Money` of `currency` code, for amounts read from storage.
///
/// # Errors
/// [`DomainError::Invalid`] for an unknown currency code.
pub fn money(amount_minor: i64, currency: &str) -> Result<Money, DomainError> {
    Ok(Money::new(amount_minor, Currency::parse(currency)?))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    #[test]
    fn late_fee_counts_started_days_per_item() {
        let due = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
        assert_eq!(late_fee(eur(500), 2, due, due).unwrap(), None);
        assert_eq!(late_fee(eur(500), 2, due, due - Duration::hours(3)).unwrap(), None);
        let fee = late_fee(eur(500), 2, due, due + Duration::hours(25)).unwrap().unwrap();
        assert_eq!((fee.unit_amount, fee.amount, fee.quantity), (eur(1_000), eur(2_000), 2));
        assert_eq!(fee.kind, ChargeKind::LateFee);
        assert_eq!(late_fee(eur(0), 2, due, due + Duration::days(3)).unwrap(), None);
    }

    #[test]
    fn payments_are_accepted_only_on_open_invoices_up_to_the_amount_due() {
        let due = eur(1_000);
        assert!(InvoiceStatus::Open.accept_payment(eur(1_000), due).is_ok());
        assert!(InvoiceStatus::Open.accept_payment(eur(1_001), due).is_err());
        assert!(InvoiceStatus::Open.accept_payment(eur(0), due).is_err());
        assert!(InvoiceStatus::Draft.accept_payment(eur(10), due).is_err());
        assert!(InvoiceStatus::Paid.accept_payment(eur(10), due).is_err());
        let usd = Money::new(10, Currency::parse("USD").unwrap());
        assert!(InvoiceStatus::Open.accept_payment(usd, due).is_err());
        assert_eq!(InvoiceStatus::Open.after_payment(1_000, 1_000), InvoiceStatus::Paid);
        assert_eq!(InvoiceStatus::Open.after_payment(999, 1_000), InvoiceStatus::Open);
        assert_eq!(InvoiceStatus::Paid.after_charges(1_000, 1_200), InvoiceStatus::Open);
        assert_eq!(InvoiceStatus::Void.after_charges(0, 1_200), InvoiceStatus::Void);
    }

    #[test]
    fn statuses_and_methods_round_trip() {
        for s in InvoiceStatus::ALL {
            assert_eq!(s.as_str().parse::<InvoiceStatus>().unwrap(), s);
        }
        assert!("unknown".parse::<InvoiceStatus>().is_err());
        assert_eq!(PaymentMethod::parse_desk("card").unwrap(), PaymentMethod::Card);
        assert!(PaymentMethod::parse_desk("stripe").is_err());
        assert_eq!("stripe".parse::<PaymentMethod>().unwrap(), PaymentMethod::Stripe);
    }
}
