//! The staff dashboard: users, rentals, revenue and utilisation in one answer, read by one aggregate statement
//! per table and cached as its JSON (`cache.dashboard_ttl_secs`, 60 s by default).

use chrono::{DateTime, Utc};
use rental_repo::DashboardRecord;
use serde::Serialize;

use super::StatusCount;

/// Users, by state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DashboardUsers {
    /// Every user.
    pub total: i64,
    /// Users who may log in.
    pub active: i64,
    /// Deactivated users.
    pub inactive: i64,
    /// Superusers.
    pub superusers: i64,
    /// Created since the last UTC midnight.
    pub new_today: i64,
    /// Created in the last seven days.
    pub new_this_week: i64,
}

/// Rental orders, by state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DashboardRentals {
    /// Orders per status: all six, zeros included, in lifecycle order.
    pub by_status: Vec<StatusCount>,
    /// Orders whose items are with the customer now (picked up).
    pub active_now: i64,
    /// Picked-up orders whose period has ended.
    pub overdue: i64,
    /// Picked-up orders due back before the next UTC midnight and not overdue yet.
    pub due_back_today: i64,
}

/// Revenue of open and paid invoices in one currency, by UTC day of issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DashboardRevenue {
    /// ISO 4217 code.
    pub currency: String,
    /// Issued today, minor units.
    pub today_minor: i64,
    /// Issued this calendar month, minor units.
    pub this_month_minor: i64,
    /// Issued over the last 30 days (today included), minor units.
    pub last_30_days_minor: i64,
}

/// How much of the capacity is held now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DashboardUtilization {
    /// Quantity held now by reserved or picked-up lines whose period contains this instant.
    pub held_now: i64,
    /// Tracked units plus bulk stock of every product.
    pub capacity: i64,
    /// `held_now / capacity` (0 without capacity).
    pub utilization_now: f64,
}

/// The staff dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DashboardStats {
    /// When the figures were read (they may be served from the cache until `cache.dashboard_ttl_secs` later).
    pub generated_at: DateTime<Utc>,
    /// Users.
    pub users: DashboardUsers,
    /// Rentals.
    pub rentals: DashboardRentals,
    /// Revenue per currency, by code.
    pub revenue: Vec<DashboardRevenue>,
    /// Utilisation now.
    pub utilization: DashboardUtilization,
}

impl DashboardStats {
    pub(crate) fn from_record(r: DashboardRecord, at: DateTime<Utc>) -> Self {
        let picked_up =
            r.orders_by_status.iter().find(|(s, _)| *s == rental_domain::OrderStatus::PickedUp).map_or(0, |(_, n)| *n);
        Self {
            generated_at: at,
            users: DashboardUsers {
                total: r.users_total,
                active: r.users_active,
                inactive: r.users_total - r.users_active,
                superusers: r.superusers,
                new_today: r.users_new_today,
                new_this_week: r.users_new_week,
            },
            rentals: DashboardRentals {
                by_status: r
                    .orders_by_status
                    .into_iter()
                    .map(|(status, count)| StatusCount { status, count })
                    .collect(),
                active_now: picked_up,
                overdue: r.orders_overdue,
                due_back_today: r.orders_due_today,
            },
            revenue: r
                .revenue
                .into_iter()
                .map(|(currency, today, month, last_30)| DashboardRevenue {
                    currency,
                    today_minor: today,
                    this_month_minor: month,
                    last_30_days_minor: last_30,
                })
                .collect(),
            utilization: DashboardUtilization {
                held_now: r.held_now,
                capacity: r.capacity,
                utilization_now: if r.capacity > 0 { r.held_now as f64 / r.capacity as f64 } else { 0.0 },
            },
        }
    }
}
