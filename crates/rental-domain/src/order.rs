//! The lifecycle of a rental order.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Where a rental order is in its life:
/// `quote → reserved → picked_up → returned → closed`, and `cancelled` from `quote` or `reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Priced, nothing held.
    Quote,
    /// Stock held for the period.
    Reserved,
    /// The customer has the items.
    PickedUp,
    /// The items are back; charges may still be added.
    Returned,
    /// Settled; nothing changes any more.
    Closed,
    /// Abandoned before pickup; stock released.
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Quote,
        OrderStatus::Reserved,
        OrderStatus::PickedUp,
        OrderStatus::Returned,
        OrderStatus::Closed,
        OrderStatus::Cancelled,
    ];

    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Quote => "quote",
            OrderStatus::Reserved => "reserved",
            OrderStatus::PickedUp => "picked_up",
            OrderStatus::Returned => "returned",
            OrderStatus::Closed => "closed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The statuses this one may move to.
    pub const fn allowed_next(self) -> &'static [OrderStatus] {
        match self {
            OrderStatus::Quote => &[OrderStatus::Reserved, OrderStatus::Cancelled],
            OrderStatus::Reserved => &[OrderStatus::PickedUp, OrderStatus::Cancelled],
            OrderStatus::PickedUp => &[OrderStatus::Returned],
            OrderStatus::Returned => &[OrderStatus::Closed],
            OrderStatus::Closed | OrderStatus::Cancelled => &[],
        }
    }

    /// Whether stock is held in this status (it counts against availability).
    pub const fn holds_stock(self) -> bool {
        matches!(self, OrderStatus::Reserved | OrderStatus::PickedUp)
    }

    /// Whether the order counts as a rental in the reports: it was reserved and not cancelled (reserved, picked
    /// up, returned or closed), as opposed to a quote or a cancelled order.
    pub const fn is_rented(self) -> bool {
        !matches!(self, OrderStatus::Quote | OrderStatus::Cancelled)
    }

    /// Moves to `to` if the lifecycle allows it.
    ///
    /// # Errors
    /// [`DomainError::IllegalTransition`] naming the allowed statuses.
    pub fn transition(self, to: OrderStatus) -> Result<OrderStatus, DomainError> {
        if self.allowed_next().contains(&to) {
            Ok(to)
        } else {
            Err(DomainError::IllegalTransition {
                from: self.as_str(),
                to: to.as_str(),
                allowed: self.allowed_next().iter().map(|s| s.as_str()).collect(),
            })
        }
    }
}

/// How long after its start a quote may still be confirmed: a customer who confirms at the minute it starts
/// is not refused for the seconds the request took.
pub const QUOTE_START_GRACE: Duration = Duration::minutes(1);

/// A quote can be confirmed only while none of its lines has started (within [`QUOTE_START_GRACE`]): its
/// prices and stock were checked for a period that is still ahead.
///
/// # Errors
/// [`DomainError::Invalid`] on `start` when a line has started.
pub fn check_quote_not_started(
    line_starts: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    if line_starts.into_iter().any(|start| start < now - QUOTE_START_GRACE) {
        return Err(DomainError::field("start", "the quote's period has started; make a new quote"));
    }
    Ok(())
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            DomainError::field("status", "must be one of quote, reserved, picked_up, returned, closed, cancelled")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rented_means_reserved_once_and_not_cancelled() {
        let rented: Vec<OrderStatus> = OrderStatus::ALL.into_iter().filter(|s| s.is_rented()).collect();
        assert_eq!(
            rented,
            [OrderStatus::Reserved, OrderStatus::PickedUp, OrderStatus::Returned, OrderStatus::Closed],
            "quotes and cancelled orders are not rentals"
        );
    }

    #[test]
    fn the_happy_path_is_allowed() {
        let mut status = OrderStatus::Quote;
        for next in [OrderStatus::Reserved, OrderStatus::PickedUp, OrderStatus::Returned, OrderStatus::Closed] {
            status = status.transition(next).unwrap();
        }
        assert_eq!(status, OrderStatus::Closed);
        assert_eq!(OrderStatus::Quote.transition(OrderStatus::Cancelled).unwrap(), OrderStatus::Cancelled);
        assert_eq!(OrderStatus::Reserved.transition(OrderStatus::Cancelled).unwrap(), OrderStatus::Cancelled);
    }

    #[test]
    fn illegal_transitions_name_the_allowed_ones() {
        let err = OrderStatus::Quote.transition(OrderStatus::Returned).unwrap_err();
        assert_eq!(err.to_string(), "cannot go from quote to returned; allowed: reserved, cancelled");
        assert!(OrderStatus::PickedUp.transition(OrderStatus::Cancelled).is_err());
        let err = OrderStatus::Closed.transition(OrderStatus::Quote).unwrap_err();
        assert!(err.to_string().ends_with("allowed: none"), "{err}");
        for status in OrderStatus::ALL {
            assert!(status.transition(status).is_err(), "{status} -> itself");
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
    }
}
