//! The lifecycle: confirm, cancel, pickup (unit assignment), return and close, each through the domain's state machine and written to the event log.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use rental_domain::{Money, OrderStatus};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::records::*;
use super::reserve::Wanted;
use super::{insert_event, invalid, order_record, parse_status};
use crate::analytics::counters;
use crate::entity::{maintenance_block, order_line, order_line_unit, rental_order, unit};
use crate::{Backend, OrderRepo, RepoError, RepoResult, UnitOfWork, stored};

impl OrderRepo {
    /// Reads the order inside `uow` for a change, checks the lifecycle allows `to`, and writes the new status
    /// and the event. PostgreSQL locks the order row; SQLite holds the write lock already. Returns the changed
    /// order and the status it left.
    async fn transition(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        to: OrderStatus,
        change: &OrderChange,
    ) -> RepoResult<(rental_order::Model, OrderStatus)> {
        let (txn, at) = (uow.conn(), change.at);
        let mut select = rental_order::Entity::find_by_id(id);
        if uow.backend() == Backend::Postgres {
            select = select.lock_exclusive();
        }
        let mut order = select.one(txn).await?.ok_or(RepoError::NotFound)?;
        let from = parse_status(&order.status)?;
        from.transition(to).map_err(RepoError::Domain)?;
        order.status = to.as_str().to_owned();
        order.updated_at = at;
        match to {
            OrderStatus::PickedUp => order.picked_up_at = Some(at),
            OrderStatus::Returned => order.returned_at = Some(at),
            _ => {}
        }
        rental_order::Entity::update_many()
            .col_expr(rental_order::Column::Status, Expr::val(order.status.clone()))
            .col_expr(rental_order::Column::UpdatedAt, Expr::val(at))
            .col_expr(rental_order::Column::PickedUpAt, Expr::val(order.picked_up_at))
            .col_expr(rental_order::Column::ReturnedAt, Expr::val(order.returned_at))
            .filter(rental_order::Column::Id.eq(id))
            .exec(txn)
            .await?;
        insert_event(txn, id, change.actor, Some(from), to, change.note.as_deref(), at).await?;
        uow.count(counters::orders_in(from), id, -1);
        uow.count(counters::orders_in(to), id, 1);
        if counters::holding(from) != counters::holding(to) {
            order_line::Entity::update_many()
                .col_expr(order_line::Column::OrderHolding, Expr::val(counters::holding(to)))
                .filter(order_line::Column::OrderId.eq(id))
                .exec(txn)
                .await?;
        }
        Ok((order, from))
    }

    /// The order's lines, in id order, read in `uow`.
    async fn lines_in(&self, uow: &UnitOfWork, id: Uuid) -> RepoResult<Vec<order_line::Model>> {
        Ok(order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(id))
            .order_by_asc(order_line::Column::Id)
            .all(uow.conn())
            .await?)
    }

    /// `quote → reserved` in `uow`: checks and holds the stock of the quote's lines at their quoted prices. The
    /// caller issues the invoice in the same unit ([`crate::BillingRepo::issue_invoice`]).
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition or a quote whose period has started,
    /// [`RepoError::InsufficientStock`] when stock is short, [`RepoError::NotFound`].
    pub async fn confirm(&self, uow: &UnitOfWork, id: Uuid, change: &OrderChange) -> RepoResult<Transitioned> {
        let lines = self.lines_in(uow, id).await?;
        let holds: Vec<Wanted> =
            lines.iter().map(|l| (l.product_id, i64::from(l.quantity), l.starts_at, l.hold_until, l.ends_at)).collect();
        rental_domain::check_quote_not_started(lines.iter().map(|l| l.starts_at), change.at)
            .map_err(RepoError::Domain)?;
        let product_ids: BTreeSet<Uuid> = holds.iter().map(|h| h.0).collect();
        self.lock_products(uow, &product_ids).await?;
        let (order, from) = self.transition(uow, id, OrderStatus::Reserved, change).await?;
        let short = self.shortages(uow, &holds, false).await?;
        if !short.is_empty() {
            return Err(RepoError::InsufficientStock(short));
        }
        order_line::Entity::update_many()
            .col_expr(order_line::Column::HoldsStock, Expr::val(true))
            .col_expr(order_line::Column::UsagePending, Expr::col(order_line::Column::UsagePending).add(1))
            .filter(order_line::Column::OrderId.eq(id))
            .exec(uow.conn())
            .await?;
        Ok(Transitioned { order: order_record(order)?, from, usage_changed: lines.len() })
    }

    /// `quote|reserved → cancelled` in `uow`: releases the stock and takes a reservation's lines out of the
    /// usage marks (their change is noted; `usage_changed` says how many). The caller voids the invoice in the
    /// same unit ([`crate::BillingRepo::void_invoice`]).
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition, [`RepoError::NotFound`].
    pub async fn cancel(&self, uow: &UnitOfWork, id: Uuid, change: &OrderChange) -> RepoResult<Transitioned> {
        let lines = self.lines_in(uow, id).await?;
        let product_ids: BTreeSet<Uuid> = lines.iter().map(|l| l.product_id).collect();
        // Products before the order, as `confirm` does, so that the two take their locks in one order.
        self.lock_products(uow, &product_ids).await?;
        let (order, from) = self.transition(uow, id, OrderStatus::Cancelled, change).await?;
        let mut release = order_line::Entity::update_many()
            .col_expr(order_line::Column::HoldsStock, Expr::val(false))
            .filter(order_line::Column::OrderId.eq(id));
        if from.is_rented() {
            release =
                release.col_expr(order_line::Column::UsagePending, Expr::col(order_line::Column::UsagePending).sub(1));
        }
        release.exec(uow.conn()).await?;
        let usage_changed = if from.is_rented() { lines.len() } else { 0 };
        Ok(Transitioned { order: order_record(order)?, from, usage_changed })
    }

    /// `returned → closed` in `uow`.
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition, [`RepoError::NotFound`].
    pub async fn close(&self, uow: &UnitOfWork, id: Uuid, change: &OrderChange) -> RepoResult<Transitioned> {
        let (order, from) = self.transition(uow, id, OrderStatus::Closed, change).await?;
        Ok(Transitioned { order: order_record(order)?, from, usage_changed: 0 })
    }

    /// `reserved → picked_up` in `uow`: hands out tracked units. `chosen` names units per line; lines not named
    /// get free units picked automatically (as many as the line's quantity and the free units allow; the rest
    /// comes from bulk stock).
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition or a unit that is not the line's product, is out of
    /// service or is out with another order; [`RepoError::NotFound`].
    pub async fn pickup(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        chosen: &[LineUnits],
        change: &OrderChange,
    ) -> RepoResult<Transitioned> {
        let txn = uow.conn();
        let lines = self.lines_in(uow, id).await?;
        let product_ids: BTreeSet<Uuid> = lines.iter().map(|l| l.product_id).collect();
        self.lock_products(uow, &product_ids).await?;
        let (order, from) = self.transition(uow, id, OrderStatus::PickedUp, change).await?;
        let mut rows = Vec::new();
        for line in &lines {
            let asked: Vec<Uuid> =
                chosen.iter().filter(|c| c.line_id == line.id).flat_map(|c| c.unit_ids.clone()).collect();
            let wanted = usize::try_from(line.quantity).unwrap_or(0);
            if asked.len() > wanted {
                return Err(invalid("units", "more units than the line's quantity"));
            }
            let free = free_units(txn, line.product_id, line.starts_at, line.hold_until).await?;
            let picked: Vec<Uuid> = if asked.is_empty() {
                free.into_iter().take(wanted).collect()
            } else {
                if let Some(bad) = asked.iter().find(|u| !free.contains(u)) {
                    return Err(invalid(
                        "units",
                        format!(
                            "unit {bad} is not a free unit of the line's product for its period \
                             (another product, out of service, or out with another order)"
                        ),
                    ));
                }
                asked
            };
            rows.extend(picked.into_iter().map(|unit_id| order_line_unit::Model {
                order_line_id: line.id,
                unit_id,
                product_id: line.product_id,
                starts_at: line.starts_at,
                hold_until: line.hold_until,
                returned_condition: None,
                damage_note: None,
            }));
        }
        if chosen.iter().any(|c| !lines.iter().any(|l| l.id == c.line_id)) {
            return Err(invalid("units", "names a line that is not in this order"));
        }
        if !rows.is_empty() {
            order_line_unit::Entity::insert_many(rows.into_iter().map(order_line_unit::ActiveModel::from))
                .exec_without_returning(txn)
                .await?;
        }
        Ok(Transitioned { order: order_record(order)?, from, usage_changed: 0 })
    }

    /// `picked_up → returned` in `uow`: records the units' condition and damage notes and frees the stock after
    /// the buffer from the return. Returns the lines as they came back, so that the caller can charge late
    /// fees and damage on the invoice in the same unit ([`crate::BillingRepo::add_charges`]).
    ///
    /// # Errors
    /// [`RepoError::Domain`] for an illegal transition or a unit that was not handed out with this order;
    /// [`RepoError::NotFound`].
    pub async fn return_items(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        returns: &[UnitReturn],
        change: &OrderChange,
    ) -> RepoResult<(Transitioned, Vec<ReturnedLine>)> {
        let (txn, at) = (uow.conn(), change.at);
        let (order, from) = self.transition(uow, id, OrderStatus::Returned, change).await?;
        let lines = self.lines_in(uow, id).await?;
        let line_ids: Vec<Uuid> = lines.iter().map(|l| l.id).collect();
        let assigned = order_line_unit::Entity::find()
            .filter(order_line_unit::Column::OrderLineId.is_in(line_ids))
            .all(txn)
            .await?;
        for line in &lines {
            let hold_until = Ord::max(at + Duration::minutes(i64::from(line.buffer_minutes)), line.starts_at);
            order_line::Entity::update_many()
                .col_expr(order_line::Column::HoldUntil, Expr::val(hold_until))
                .filter(order_line::Column::Id.eq(line.id))
                .exec(txn)
                .await?;
            order_line_unit::Entity::update_many()
                .col_expr(order_line_unit::Column::HoldUntil, Expr::val(hold_until))
                .filter(order_line_unit::Column::OrderLineId.eq(line.id))
                .exec(txn)
                .await?;
        }
        for r in returns {
            let Some(a) = assigned.iter().find(|a| a.unit_id == r.unit_id) else {
                return Err(invalid("units", format!("unit {} was not handed out with this order", r.unit_id)));
            };
            order_line_unit::Entity::update_many()
                .col_expr(order_line_unit::Column::ReturnedCondition, Expr::val(r.condition.as_str()))
                .col_expr(order_line_unit::Column::DamageNote, Expr::val(r.damage_note.clone()))
                .filter(order_line_unit::Column::OrderLineId.eq(a.order_line_id))
                .filter(order_line_unit::Column::UnitId.eq(a.unit_id))
                .exec(txn)
                .await?;
            unit::Entity::update_many()
                .col_expr(unit::Column::Condition, Expr::val(r.condition.as_str()))
                .filter(unit::Column::Id.eq(r.unit_id))
                .exec(txn)
                .await?;
        }
        let returned = lines
            .iter()
            .map(|l| {
                Ok(ReturnedLine {
                    line_id: l.id,
                    quantity: l.quantity,
                    ends_at: l.ends_at,
                    late_fee_per_day: Money::new(
                        l.late_fee_per_day_minor,
                        stored::currency("order_lines", &l.currency)?,
                    ),
                })
            })
            .collect::<RepoResult<_>>()?;
        Ok((Transitioned { order: order_record(order)?, from, usage_changed: 0 }, returned))
    }
}

/// The tracked units of `product_id` free over `[start, hold_until)`: not out of service and not out with
/// another order then. Sorted by id.
async fn free_units(
    txn: &sea_orm::DatabaseTransaction,
    product_id: Uuid,
    start: DateTime<Utc>,
    hold_until: DateTime<Utc>,
) -> RepoResult<Vec<Uuid>> {
    let busy_assigned = Query::select()
        .column(order_line_unit::Column::UnitId)
        .from(order_line_unit::Entity)
        .and_where(order_line_unit::Column::ProductId.eq(product_id))
        .and_where(order_line_unit::Column::HoldUntil.gt(start))
        .and_where(order_line_unit::Column::StartsAt.lt(hold_until))
        .to_owned();
    let busy_maintenance = Query::select()
        .column(maintenance_block::Column::UnitId)
        .from(maintenance_block::Entity)
        .and_where(maintenance_block::Column::ProductId.eq(product_id))
        .and_where(maintenance_block::Column::EndsAt.gt(start))
        .and_where(maintenance_block::Column::StartsAt.lt(hold_until))
        .to_owned();
    Ok(unit::Entity::find()
        .select_only()
        .column(unit::Column::Id)
        .filter(unit::Column::ProductId.eq(product_id))
        .filter(unit::Column::Id.not_in_subquery(busy_assigned))
        .filter(unit::Column::Id.not_in_subquery(busy_maintenance))
        .order_by_asc(unit::Column::Id)
        .into_tuple()
        .all(txn)
        .await?)
}
