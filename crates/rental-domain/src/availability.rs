//! Availability of a product over time: how many of its items are free at each instant.
//!
//! A product has a capacity (its tracked units plus its bulk quantities). Holds take items away over a
//! half-open period: an order line holds its quantity from its start until its end plus the product's buffer,
//! and a maintenance block holds one unit. The free quantity is a step function of time, built here from the
//! holds by a sweep, and asked three questions: the least free quantity over a period, the least free quantity
//! per day, and the nearest periods around a wanted one where enough is free.

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use serde::Serialize;

/// Some quantity held over `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// First instant held.
    pub start: DateTime<Utc>,
    /// First instant free again.
    pub end: DateTime<Utc>,
    /// Items held.
    pub quantity: i64,
}

/// A stretch of time `[start, end)` over which the free quantity is constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    free: i64,
}

/// The least free quantity over one day (UTC) of an asked period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayFree {
    /// The day.
    pub date: NaiveDate,
    /// Least free quantity during the part of that day inside the period.
    pub free: i64,
}

/// The free quantity of one product over a window of time `[from, until)`.
#[derive(Debug, Clone)]
pub struct Timeline {
    segments: Vec<Segment>,
}

impl Timeline {
    /// Builds the free quantity over `[from, until)` from the product's `capacity` and its `holds` (holds outside
    /// the window are ignored; parts outside it are cut off).
    pub fn new(capacity: i64, holds: &[Hold], from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        if until <= from {
            return Self { segments: Vec::new() };
        }
        let mut changes: Vec<(DateTime<Utc>, i64)> = Vec::with_capacity(holds.len() * 2);
        let mut free_at_start = capacity;
        for hold in holds {
            if hold.end <= from || hold.start >= until || hold.end <= hold.start || hold.quantity == 0 {
                continue;
            }
            if hold.start <= from {
                free_at_start -= hold.quantity;
            } else {
                changes.push((hold.start, -hold.quantity));
            }
            if hold.end < until {
                changes.push((hold.end, hold.quantity));
            }
        }
        changes.sort_unstable_by_key(|&(at, _)| at);
        let mut segments = Vec::with_capacity(changes.len() + 1);
        let (mut start, mut free) = (from, free_at_start);
        for (at, delta) in changes {
            if at > start {
                segments.push(Segment { start, end: at, free });
                start = at;
            }
            free += delta;
        }
        segments.push(Segment { start, end: until, free });
        Self { segments }
    }

    /// The least free quantity over `[from, to)`, or `None` when that period is empty or outside the window.
    pub fn min_free(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<i64> {
        self.segments.iter().filter(|s| s.start < to && s.end > from).map(|s| s.free).min()
    }

    /// The least free quantity of each UTC day touched by `[from, to)`, limited to that period.
    pub fn per_day(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DayFree> {
        let mut days = Vec::new();
        let mut day = from.date_naive();
        while let Some(day_start) = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) {
            if day_start >= to {
                break;
            }
            let day_end = day_start + Duration::days(1);
            if let Some(free) = self.min_free(day_start.max(from), day_end.min(to)) {
                days.push(DayFree { date: day, free });
            }
            match day.checked_add_days(Days::new(1)) {
                Some(next) => day = next,
                None => break,
            }
        }
        days
    }

    /// The periods of `length` nearest to `wanted_start` in which at least `quantity` is free throughout: the
    /// latest one starting before `wanted_start` (not before `not_before`) and the earliest one starting after
    /// it. Either is `None` when the window holds no such period.
    pub fn nearest_free(
        &self,
        quantity: i64,
        length: Duration,
        wanted_start: DateTime<Utc>,
        not_before: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        // Maximal stretches where enough is free.
        let mut runs: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for s in self.segments.iter().filter(|s| s.free >= quantity) {
            match runs.last_mut() {
                Some(last) if last.1 == s.start => last.1 = s.end,
                _ => runs.push((s.start, s.end)),
            }
        }
        let later = runs.iter().find_map(|&(a, b)| {
            let start = a.max(wanted_start).max(not_before);
            (start > wanted_start && start + length <= b).then_some(start)
        });
        let earlier = runs.iter().rev().find_map(|&(a, b)| {
            let start = (b - length).min(wanted_start - Duration::seconds(1));
            (start >= a.max(not_before) && start < wanted_start).then_some(start)
        });
        (earlier, later)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 3, d, 0, 0, 0).unwrap()
    }

    fn hold(a: u32, b: u32, quantity: i64) -> Hold {
        Hold { start: day(a), end: day(b), quantity }
    }

    #[test]
    fn free_quantity_is_capacity_minus_overlapping_holds() {
        let t = Timeline::new(3, &[hold(2, 5, 1), hold(4, 6, 2), hold(10, 12, 3)], day(1), day(20));
        assert_eq!(t.min_free(day(1), day(2)), Some(3));
        assert_eq!(t.min_free(day(2), day(4)), Some(2));
        assert_eq!(t.min_free(day(4), day(5)), Some(0));
        assert_eq!(t.min_free(day(5), day(6)), Some(1));
        assert_eq!(t.min_free(day(6), day(10)), Some(3), "holds end where the next period starts");
        assert_eq!(t.min_free(day(1), day(20)), Some(0));
        assert_eq!(t.min_free(day(21), day(22)), None, "outside the window");
    }

    #[test]
    fn disjoint_holds_do_not_add_up() {
        let t = Timeline::new(1, &[hold(2, 3, 1), hold(4, 5, 1)], day(1), day(10));
        assert_eq!(t.min_free(day(1), day(10)), Some(0));
        assert_eq!(t.min_free(day(3), day(4)), Some(1));
        let days = t.per_day(day(1), day(6));
        let free: Vec<i64> = days.iter().map(|d| d.free).collect();
        assert_eq!(free, vec![1, 0, 1, 0, 1]);
        assert_eq!(days[0].date, day(1).date_naive());
    }

    #[test]
    fn holds_reaching_outside_the_window_are_clipped() {
        let t = Timeline::new(2, &[hold(1, 30, 1), hold(5, 6, 5)], day(3), day(10));
        assert_eq!(t.min_free(day(3), day(5)), Some(1));
        assert_eq!(t.min_free(day(5), day(6)), Some(-4), "overbooking shows as negative, never hidden");
    }

    #[test]
    fn nearest_free_periods_on_both_sides() {
        // Capacity 1, booked 10..15: a 3-day rental wanted on the 12th fits at the latest on the 7th, at the
        // earliest on the 15th.
        let t = Timeline::new(1, &[hold(10, 15, 1)], day(1), day(28));
        let (before, after) = t.nearest_free(1, Duration::days(3), day(12), day(1));
        assert_eq!(before, Some(day(7)));
        assert_eq!(after, Some(day(15)));
        // Not before the 8th: nothing earlier fits.
        let (before, _) = t.nearest_free(1, Duration::days(3), day(12), day(8));
        assert_eq!(before, None);
        // Nothing at all for quantity 2.
        assert_eq!(t.nearest_free(2, Duration::days(3), day(12), day(1)), (None, None));
    }
}
