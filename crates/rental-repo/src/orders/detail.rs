//! Reading orders: one order, its detail (eight statements whatever its size), its event log, and pages of orders.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rental_domain::OrderStatus;
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::records::*;
use super::{ORDER_LIST_SPEC, OrderFilter, line_record, order_record};
use crate::billing::{invoice_line_record, invoice_record, payment_record};
use crate::entity::{
    invoice, invoice_line, order_event, order_line, order_line_unit, payment, product, rental_order, user,
};
use crate::query::{ListColumns, ListQuery, Listing};
use crate::{OrderRepo, RepoResult};

impl OrderRepo {
    /// The products an order's lines name (one statement; none for an unknown order). They never change over
    /// the order's life, so callers may read them before or after a transition.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    pub async fn order_product_ids(&self, id: Uuid) -> RepoResult<BTreeSet<Uuid>> {
        let ids: Vec<Uuid> = order_line::Entity::find()
            .select_only()
            .column(order_line::Column::ProductId)
            .filter(order_line::Column::OrderId.eq(id))
            .into_tuple()
            .all(self.db.connection())
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// An order without its lines.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    pub async fn find_order(&self, id: Uuid) -> RepoResult<Option<OrderRecord>> {
        rental_order::Entity::find_by_id(id).one(self.db.connection()).await?.map(order_record).transpose()
    }

    /// The order's event log, oldest first.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when the query fails.
    pub async fn events(&self, id: Uuid) -> RepoResult<Vec<OrderEventRecord>> {
        Ok(order_event::Entity::find()
            .filter(order_event::Column::OrderId.eq(id))
            .order_by_asc(order_event::Column::CreatedAt)
            .order_by_asc(order_event::Column::Id)
            .all(self.db.connection())
            .await?
            .into_iter()
            .map(|e| OrderEventRecord {
                id: e.id,
                actor_id: e.actor_id,
                from_status: e.from_status,
                to_status: e.to_status,
                note: e.note,
                created_at: e.created_at,
            })
            .collect())
    }

    /// The order with its lines and their units, products, customer, invoice with lines, and payments: eight
    /// statements whatever the number of lines.
    ///
    /// # Errors
    /// [`crate::RepoError::Database`] when a query fails.
    #[tracing::instrument(skip_all, fields(order_id = %id))]
    pub async fn order_detail(&self, id: Uuid) -> RepoResult<Option<OrderDetail>> {
        let conn = self.db.connection();
        let Some(order) = rental_order::Entity::find_by_id(id).one(conn).await? else {
            return Ok(None);
        };
        let lines = order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(id))
            .order_by_asc(order_line::Column::Id)
            .all(conn)
            .await?;
        let line_ids: Vec<Uuid> = lines.iter().map(|l| l.id).collect();
        let product_ids: BTreeSet<Uuid> = lines.iter().map(|l| l.product_id).collect();
        let units = order_line_unit::Entity::find()
            .filter(order_line_unit::Column::OrderLineId.is_in(line_ids))
            .order_by_asc(order_line_unit::Column::UnitId)
            .all(conn)
            .await?;
        let products: Vec<OrderProductRecord> = product::Entity::find()
            .select_only()
            .columns([product::Column::Id, product::Column::Sku, product::Column::Name])
            .filter(product::Column::Id.is_in(product_ids))
            .order_by_asc(product::Column::Name)
            .into_tuple::<(Uuid, String, String)>()
            .all(conn)
            .await?
            .into_iter()
            .map(|(id, sku, name)| OrderProductRecord { id, sku, name })
            .collect();
        let customer = user::Entity::find_by_id(order.customer_id)
            .select_only()
            .columns([user::Column::Id, user::Column::Email, user::Column::FullName])
            .into_tuple::<(Uuid, String, String)>()
            .one(conn)
            .await?
            .map(|(id, email, full_name)| OrderCustomerRecord { id, email, full_name });
        let invoice = invoice::Entity::find().filter(invoice::Column::OrderId.eq(id)).one(conn).await?;
        let invoice = match invoice {
            Some(model) => {
                let lines = invoice_line::Entity::find()
                    .filter(invoice_line::Column::InvoiceId.eq(model.id))
                    .order_by_asc(invoice_line::Column::CreatedAt)
                    .order_by_asc(invoice_line::Column::Id)
                    .all(conn)
                    .await?;
                let mut record = invoice_record(model)?;
                record.lines = lines.into_iter().map(|l| invoice_line_record(l, record.total.currency)).collect();
                Some(record)
            }
            None => None,
        };
        let payments = payment::Entity::find()
            .filter(payment::Column::OrderId.eq(id))
            .order_by_asc(payment::Column::CreatedAt)
            .all(conn)
            .await?
            .into_iter()
            .map(payment_record)
            .collect::<RepoResult<_>>()?;
        let mut by_line: HashMap<Uuid, Vec<AssignedUnitRecord>> = HashMap::new();
        for u in units {
            by_line.entry(u.order_line_id).or_default().push(AssignedUnitRecord {
                unit_id: u.unit_id,
                returned_condition: u.returned_condition.as_deref().and_then(|c| c.parse().ok()),
                damage_note: u.damage_note,
            });
        }
        let lines = lines
            .into_iter()
            .map(|l| {
                let units = by_line.remove(&l.id).unwrap_or_default();
                line_record(l, units)
            })
            .collect::<RepoResult<_>>()?;
        Ok(Some(OrderDetail { order: order_record(order)?, lines, products, customer, invoice, payments }))
    }

    /// One page of orders matching `query` (`overdue` is judged at `now`): two statements (one without a total).
    ///
    /// # Errors
    /// [`crate::RepoError::InvalidQuery`] for a cursor of another list; [`crate::RepoError::Database`].
    #[tracing::instrument(skip_all)]
    pub async fn list_orders(&self, query: &ListQuery, now: DateTime<Utc>) -> RepoResult<Listing<OrderRecord>> {
        // The sorts bound to their columns; the filters are `order_condition`'s.
        static ORDER_LIST: ListColumns<rental_order::Entity> = ListColumns {
            spec: &ORDER_LIST_SPEC,
            key: rental_order::Column::Id,
            sorts: &[("created_at", rental_order::Column::CreatedAt), ("starts_at", rental_order::Column::StartsAt)],
            filters: &[],
            search: &[],
        };
        let filtered = rental_order::Entity::find().filter(order_condition(query, now));
        ORDER_LIST.fetch(self.db.connection(), query, filtered).await?.try_map(order_record)
    }
}

fn order_condition(query: &ListQuery, now: DateTime<Utc>) -> Condition {
    let mut condition = Condition::all();
    if let Some(status) = query.word_filter(OrderFilter::STATUS) {
        condition = condition.add(rental_order::Column::Status.eq(status));
    }
    if let Some(customer) = query.uuid_filter(OrderFilter::CUSTOMER) {
        condition = condition.add(rental_order::Column::CustomerId.eq(customer));
    }
    if let Some(product_id) = query.uuid_filter(OrderFilter::PRODUCT) {
        let with_product = Query::select()
            .column(order_line::Column::OrderId)
            .from(order_line::Entity)
            .and_where(order_line::Column::ProductId.eq(product_id))
            .to_owned();
        condition = condition.add(rental_order::Column::Id.in_subquery(with_product));
    }
    if let Some(from) = query.datetime_filter(OrderFilter::FROM) {
        condition = condition.add(rental_order::Column::EndsAt.gt(from));
    }
    if let Some(to) = query.datetime_filter(OrderFilter::TO) {
        condition = condition.add(rental_order::Column::StartsAt.lt(to));
    }
    if let Some(ends_before) = query.datetime_filter(OrderFilter::ENDS_BEFORE) {
        condition = condition.add(rental_order::Column::EndsAt.lt(ends_before));
    }
    if let Some(overdue) = query.bool_filter(OrderFilter::OVERDUE) {
        let is_overdue = Condition::all()
            .add(rental_order::Column::Status.eq(OrderStatus::PickedUp.as_str()))
            .add(rental_order::Column::EndsAt.lt(now));
        condition = condition.add(if overdue { is_overdue } else { is_overdue.not() });
    }
    condition
}
