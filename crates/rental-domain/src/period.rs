//! Rental periods: half-open intervals `[start, end)` of time.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Longest rental accepted by [`RentalPeriod::parse`]: a year and a day.
pub const MAX_RENTAL_DAYS: i64 = 366;

/// A half-open period `[start, end)`: `end` is the first instant that is no longer rented, so back-to-back
/// rentals (`end` of one = `start` of the next) do not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RentalPeriod {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl RentalPeriod {
    /// Validates a new rental period against `now`: it ends after it starts, does not start in the past (a
    /// minute of grace for clock skew) and lasts at most [`MAX_RENTAL_DAYS`].
    ///
    /// # Errors
    /// [`DomainError::Invalid`] on `start` or `end`, every broken rule listed.
    pub fn parse(start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self, DomainError> {
        let mut errors = Vec::new();
        if end <= start {
            errors.push(crate::FieldError::new("end", "must be after start"));
        }
        if start < now - Duration::minutes(1) {
            errors.push(crate::FieldError::new("start", "must not be in the past"));
        }
        if end - start > Duration::days(MAX_RENTAL_DAYS) {
            errors.push(crate::FieldError::new("end", format!("the period must be at most {MAX_RENTAL_DAYS} days")));
        }
        if errors.is_empty() { Ok(Self { start, end }) } else { Err(DomainError::Invalid(errors)) }
    }

    /// A period read back from storage, where the rules were checked when it was written. Only `end > start`
    /// is required.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] when `end <= start`.
    pub fn from_stored(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, DomainError> {
        if end <= start {
            return Err(DomainError::field("end", "must be after start"));
        }
        Ok(Self { start, end })
    }

    /// First rented instant.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// First instant no longer rented.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Length of the period.
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    /// Days charged: every started 24 hours counts as a day (25 hours are 2 days).
    pub fn charged_days(&self) -> i64 {
        started_days(self.duration())
    }

    /// Whether two periods share an instant. Touching periods (`a.end == b.start`) do not.
    pub fn overlaps(&self, other: &RentalPeriod) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The period extended by `buffer` after its end: the time the item needs before its next rental
    /// (cleaning, checks), which counts as booked.
    pub fn with_buffer(&self, buffer: Duration) -> RentalPeriod {
        RentalPeriod { start: self.start, end: self.end + buffer.max(Duration::zero()) }
    }
}

/// Started 24-hour days in `duration`; zero or negative durations are 0.
pub fn started_days(duration: Duration) -> i64 {
    if duration <= Duration::zero() {
        return 0;
    }
    let seconds = duration.num_seconds() + i64::from(duration.subsec_nanos() > 0);
    (seconds + 86_399) / 86_400
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, day, hour, 0, 0).unwrap()
    }

    fn now() -> DateTime<Utc> {
        at(1, 0)
    }

    #[test]
    fn bad_periods_are_refused_with_every_reason() {
        assert!(RentalPeriod::parse(at(3, 0), at(3, 0), now()).is_err(), "empty");
        assert!(RentalPeriod::parse(at(3, 0), at(2, 0), now()).is_err(), "reversed");
        let past = RentalPeriod::parse(at(1, 0) - Duration::days(1), at(2, 0), now()).unwrap_err();
        assert_eq!(past.fields()[0].field, "start");
        let long = RentalPeriod::parse(at(2, 0), at(2, 0) + Duration::days(400), now()).unwrap_err();
        assert_eq!(long.fields()[0].field, "end");
        let both = RentalPeriod::parse(at(1, 0) - Duration::days(2), at(1, 0) - Duration::days(3), now()).unwrap_err();
        assert_eq!(both.fields().len(), 2);
    }

    #[test]
    fn half_open_periods_touch_without_overlapping() {
        let a = RentalPeriod::parse(at(2, 0), at(4, 0), now()).unwrap();
        let b = RentalPeriod::parse(at(4, 0), at(6, 0), now()).unwrap();
        let c = RentalPeriod::parse(at(3, 0), at(5, 0), now()).unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&c) && c.overlaps(&b));
        assert!(a.with_buffer(Duration::hours(2)).overlaps(&b), "the buffer counts as booked");
    }

    #[test]
    fn every_started_day_is_charged() {
        assert_eq!(RentalPeriod::parse(at(2, 0), at(3, 0), now()).unwrap().charged_days(), 1);
        assert_eq!(RentalPeriod::parse(at(2, 0), at(3, 1), now()).unwrap().charged_days(), 2);
        assert_eq!(RentalPeriod::parse(at(2, 0), at(2, 1), now()).unwrap().charged_days(), 1);
        assert_eq!(started_days(Duration::zero()), 0);
        assert_eq!(started_days(Duration::milliseconds(1)), 1);
    }
}
