//! Rental orders: pricing, the atomic reservation, the lifecycle with its event log, availability and
//! maintenance blocks.
//!
//! Customers rent for themselves and see only their own orders (another customer's order is "not found");
//! staff rent on a customer's behalf, see everything and run the desk (pickup, return, close).

mod availability;
mod views;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rental_domain::ChargeKind;
use rental_domain::availability::Timeline;
use rental_domain::billing::{Charge, damage_charge, late_fee};
use rental_domain::catalogue::description;
use rental_domain::pricing::OrderTotals;
use rental_domain::{
    Collector, Currency, DomainError, FieldError, MAX_RENTAL_DAYS, Money, OrderStatus, RentalPeriod, UnitCondition,
};
use rental_repo::query::{FilterValue, Listing};
use rental_repo::{
    BillingRepo, BillingStore, Database, LineTerms, LineUnits, NewInvoiceRecord, NewMaintenanceRecord,
    NewOrderLineRecord, NewOrderRecord, OrderChange, OrderDetail, OrderFilter, OrderRecord, OrderRepo, OrderStore,
    RepoError, RepoResult, Shortage, UnitOfWork, UnitReturn, UsageRecorder, order_list_spec,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::jobs::kinds;
use crate::{
    Clock, Idempotency, IdempotencyClaim, IdempotencyConfig, JobsConfig, Outbox, Principal, ServiceError, ServiceResult,
};

use crate::billing::{InvoiceView, PaymentView};
pub(crate) use availability::AvailabilityCache;
use availability::{AvailabilityKey, evict};
pub use views::*;

/// Rental orders, availability and maintenance, over any [`OrderStore`] and [`BillingStore`] (the sea-orm
/// repositories by default). Each write runs in one unit of work that takes the order's and its invoice's
/// changes together, and registers the invoice numbering and usage recording to run after the commit. Cheap to
/// clone.
#[derive(Debug)]
pub struct RentalService<O = OrderRepo, B = BillingRepo> {
    db: Database,
    orders: Arc<O>,
    billing: Arc<B>,
    usage: UsageRecorder,
    outbox: Outbox,
    clock: Arc<dyn Clock>,
    config: RentalConfig,
    idempotency: Idempotency,
    /// The idempotency key the next write claims (see [`RentalService::idempotent`]).
    claim: Option<Arc<IdempotencyClaim>>,
    /// Availability answers per product and window, evicted per product by every write of an order or a
    /// maintenance block that names it (and by every catalogue write); none when not given.
    availability: Option<AvailabilityCache>,
}

impl<O, B> Clone for RentalService<O, B> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            orders: self.orders.clone(),
            billing: self.billing.clone(),
            usage: self.usage.clone(),
            outbox: self.outbox.clone(),
            clock: self.clock.clone(),
            config: self.config.clone(),
            idempotency: self.idempotency.clone(),
            claim: self.claim.clone(),
            availability: self.availability.clone(),
        }
    }
}

impl RentalService {
    /// The service over `db`'s repositories, sharing `billing` (and so its invoice numbering) with the billing
    /// service, judging time by `clock`.
    pub fn new(db: Database, billing: Arc<BillingRepo>, clock: Arc<dyn Clock>, config: RentalConfig) -> Self {
        Self::with_stores(db.clone(), Arc::new(OrderRepo::new(db)), billing, clock, config)
    }
}

impl<O: OrderStore + 'static, B: BillingStore + 'static> RentalService<O, B> {
    /// The service over other implementations of the stores; `db` gives the units of work they write in.
    pub fn with_stores(
        db: Database,
        orders: Arc<O>,
        billing: Arc<B>,
        clock: Arc<dyn Clock>,
        config: RentalConfig,
    ) -> Self {
        let outbox = Outbox::over(db.clone(), clock.clone(), JobsConfig::default());
        let idempotency = Idempotency::new(db.clone(), clock.clone(), &IdempotencyConfig::default());
        Self {
            usage: UsageRecorder::new(db.clone()),
            db,
            orders,
            billing,
            outbox,
            clock,
            config,
            idempotency,
            claim: None,
            availability: None,
        }
    }

    /// The same service keeping its idempotency records with `idempotency` (the services share one).
    #[must_use]
    pub fn with_idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }

    /// The same service for one idempotent request: its write (create, confirm, cancel, pickup, return, close)
    /// claims `claim`'s key at the start of the write's unit of work and stores the answer it returns in that
    /// unit (see [`crate::idempotency`]). `None`: an ordinary request.
    #[must_use]
    pub fn idempotent(&self, claim: Option<IdempotencyClaim>) -> Self {
        Self { claim: claim.map(Arc::new), ..self.clone() }
    }

    /// Begins a write's unit of work, claiming the idempotency key of this request if it has one.
    async fn begin(&self) -> ServiceResult<UnitOfWork> {
        self.idempotency.begin(&self.db, self.claim.as_deref()).await
    }

    /// Stores the answer of a successful write for this request's idempotency key, in the write's unit.
    async fn answered(&self, uow: &UnitOfWork, result: RepoResult<OrderRecord>) -> RepoResult<OrderView> {
        self.idempotency.completed(uow, self.claim.as_deref(), result.map(OrderView::from)).await
    }

    /// The same service caching availability answers in `cache`.
    #[must_use]
    pub(crate) fn with_availability_cache(mut self, cache: AvailabilityCache) -> Self {
        self.availability = Some(cache);
        self
    }

    /// The products of order `id`, read only when availability is cached (for the eviction after a write).
    async fn products_of(&self, id: Uuid) -> ServiceResult<BTreeSet<Uuid>> {
        match self.availability {
            Some(_) => Ok(self.orders.order_product_ids(id).await?),
            None => Ok(BTreeSet::new()),
        }
    }

    /// Evicts the cached availability of `products` after a write, whatever its outcome (a failed write
    /// evicts needlessly, which is harmless).
    async fn evict_availability(&self, products: &BTreeSet<Uuid>) {
        evict(self.availability.as_ref(), products).await;
    }

    /// The same service enqueueing its jobs through `outbox` (the services share one queue).
    #[must_use]
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }

    /// Who changes an order now, and why.
    fn change(&self, principal: &Principal, note: Option<String>) -> OrderChange {
        OrderChange { actor: Some(principal.user_id.as_uuid()), note, at: self.clock.now() }
    }

    /// Registers on `uow` the work a committed order leaves behind: numbering the invoice it issued and
    /// recording the usage of the lines it changed. A settlement job is enqueued in the same unit, due a little
    /// later: the settlement after the commit marks it done, and if that never happens (a crash, a failure) the
    /// queue runs it instead of waiting for the next caller.
    async fn settle(
        &self,
        uow: &UnitOfWork,
        order_id: Uuid,
        usage_changed: usize,
        issued_invoice: bool,
    ) -> RepoResult<()> {
        if usage_changed == 0 && !issued_invoice {
            return Ok(());
        }
        let job = self.outbox.settle_later(uow, order_id).await?;
        let (billing, usage, outbox) = (self.billing.clone(), self.usage.clone(), self.outbox.clone());
        uow.after_commit(async move {
            usage.note(usage_changed);
            let mut settled = true;
            if issued_invoice && let Err(err) = billing.number_issued_invoices().await {
                tracing::warn!(error = %err, "numbering invoices failed; the settlement job retries it");
                settled = false;
            }
            // A recording can take seconds: it runs in a task of its own, not in this request. The settlement
            // job is marked done once it succeeded, or now when none was started (another takes these lines).
            let mark = move || {
                if settled && let Some(job) = job {
                    outbox.settled(job);
                }
            };
            let Some(recording) = usage.due_recording() else { return mark() };
            let recorded = async move {
                match recording.await {
                    Ok(()) => mark(),
                    Err(err) => tracing::warn!(error = %err, "recording usage failed; the settlement job retries it"),
                }
            };
            tokio::spawn(recorded.instrument(tracing::Span::current()));
        });
        Ok(())
    }

    /// The work of a settlement job ([`crate::jobs::kinds::SETTLE_ORDER`]): numbers every issued invoice still
    /// without a number and records every pending usage change. Idempotent: a second run finds nothing to do.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when storage fails (the job retries).
    pub async fn settle_pending(&self) -> ServiceResult<()> {
        self.billing.number_issued_invoices().await?;
        self.usage.record_all().await?;
        Ok(())
    }

    /// Enqueues the confirmation e-mail of a reserved order, once per order.
    async fn confirmation_mail(&self, uow: &UnitOfWork, order_id: Uuid) -> RepoResult<()> {
        let args = serde_json::json!({ "order_id": order_id });
        let dedupe = Some(order_id.to_string());
        self.outbox.enqueue_value(uow, kinds::ORDER_CONFIRMATION, args, None, dedupe).await?;
        Ok(())
    }

    /// Ends a unit of work that reserved stock: commits or rolls back, and when stock was short, fills in the
    /// nearest free periods (read after the rollback, outside any lock).
    async fn finish_reserving<T>(&self, uow: UnitOfWork, result: RepoResult<T>) -> ServiceResult<T> {
        match uow.finish(result).await {
            Err(RepoError::InsufficientStock(short)) => {
                let short = self.orders.suggest_free_periods(short, self.clock.now()).await?;
                Err(RepoError::InsufficientStock(short).into())
            }
            other => Ok(other?),
        }
    }

    /// Creates an order: prices every line (cheapest month/week/day cover, prices snapshotted), and either
    /// quotes it or reserves its stock atomically.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] listing every bad field (periods, quantities, unknown or inactive products,
    /// mixed currencies); [`ServiceError::Forbidden`] when a customer rents for someone else;
    /// [`ServiceError::InsufficientStock`] with the lines that do not fit.
    #[tracing::instrument(skip_all, fields(lines = new.lines.len()))]
    pub async fn create(&self, principal: &Principal, new: NewRental) -> ServiceResult<OrderView> {
        let customer_id = match new.customer_id {
            Some(id) if id != principal.user_id.as_uuid() && !principal.is_staff() => {
                return Err(ServiceError::Forbidden("customers can only rent for themselves"));
            }
            Some(id) => id,
            None => principal.user_id.as_uuid(),
        };
        let status = match new.status.as_deref() {
            None | Some("reserved") => OrderStatus::Reserved,
            Some("quote") => OrderStatus::Quote,
            Some(_) => return Err(DomainError::field("status", "must be quote or reserved").into()),
        };
        let now = self.clock.now();
        let mut errors = Collector::default();
        if new.lines.is_empty() || new.lines.len() > MAX_LINES {
            errors.take::<()>(Err(DomainError::field("lines", format!("must hold 1 to {MAX_LINES} lines"))));
        }
        let notes = new.notes.as_deref().and_then(|n| errors.take(description("notes", n))).flatten();
        if customer_id != principal.user_id.as_uuid() && !self.orders.active_user_exists(customer_id).await? {
            errors.take::<()>(Err(DomainError::field("customer_id", "no such active customer")));
        }
        let ids: BTreeSet<Uuid> = new.lines.iter().map(|l| l.product_id).collect();
        let products = if ids.is_empty() { Vec::new() } else { self.orders.product_terms(&ids).await? };
        let mut currency: Option<Currency> = None;
        let mut lines = Vec::with_capacity(new.lines.len());
        let mut priced_lines = Vec::with_capacity(new.lines.len());
        for (i, line) in new.lines.iter().enumerate() {
            let at = |field: &str| format!("lines[{i}].{field}");
            let period = errors.take(RentalPeriod::parse(line.start, line.end, now).map_err(|e| prefixed(e, i)));
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.take::<()>(Err(DomainError::field(at("quantity"), format!("must be 1 to {MAX_QUANTITY}"))));
            }
            let Some(product) = products.iter().find(|p| p.id == line.product_id) else {
                errors.take::<()>(Err(DomainError::field(at("product_id"), "no such product")));
                continue;
            };
            if !product.is_active {
                errors.take::<()>(Err(DomainError::field(at("product_id"), "is not available for rent")));
                continue;
            }
            match &currency {
                Some(c) if *c != product.terms.currency() => {
                    errors.take::<()>(Err(DomainError::field(
                        at("product_id"),
                        format!("is priced in {}, the order's other lines in {c}", product.terms.currency()),
                    )));
                    continue;
                }
                _ => currency = Some(product.terms.currency()),
            }
            let (Some(period), Ok(quantity)) = (period, i32::try_from(line.quantity)) else { continue };
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                continue;
            }
            let terms = &product.terms;
            let priced = terms
                .price(period.charged_days(), i64::from(quantity))
                .and_then(|line| Ok((LineTerms::priced(terms, &line)?, line)));
            match priced {
                Ok((terms, line)) => {
                    lines.push(NewOrderLineRecord {
                        product_id: product.id,
                        quantity,
                        starts_at: period.start(),
                        ends_at: period.end(),
                        description: format!("{} × {}, {} day(s)", quantity, product.name, terms.charged_days),
                        terms,
                    });
                    priced_lines.push(line);
                }
                Err(e) => {
                    errors.take::<()>(Err(prefixed(e, i)));
                }
            }
        }
        errors.finish()?;
        let currency = currency.ok_or_else(|| DomainError::field("lines", "must hold 1 to 50 lines"))?;
        let record = NewOrderRecord {
            customer_id,
            status,
            totals: OrderTotals::of(currency, &priced_lines, self.config.tax_rate_bp)?,
            tax_rate_bp: i32::try_from(self.config.tax_rate_bp).unwrap_or(0),
            notes,
            created_by: Some(principal.user_id.as_uuid()),
            lines,
        };
        let reserve = status == OrderStatus::Reserved;
        let products: BTreeSet<Uuid> = record.lines.iter().map(|l| l.product_id).collect();
        let uow = self.begin().await?;
        let result = async {
            let order = self.orders.create_order(&uow, &record, now).await?;
            let invoice = NewInvoiceRecord {
                order_id: order.id,
                customer_id,
                subtotal: record.totals.subtotal,
                tax_rate_bp: record.tax_rate_bp,
                tax: record.totals.tax,
                total: record.totals.total,
                issue: reserve,
                lines: record
                    .lines
                    .iter()
                    .map(|l| Charge {
                        kind: ChargeKind::Rental,
                        description: l.description.clone(),
                        quantity: l.quantity,
                        unit_amount: l.terms.unit_price,
                        amount: l.terms.line_total,
                        taxable: true,
                    })
                    .collect(),
            };
            self.billing.create_invoice(&uow, &invoice, now).await?;
            if reserve {
                self.settle(&uow, order.id, record.lines.len(), true).await?;
                self.confirmation_mail(&uow, order.id).await?;
            }
            Ok(order)
        }
        .await;
        let result = self.answered(&uow, result).await;
        let finished = self.finish_reserving(uow, result).await;
        if reserve {
            self.evict_availability(&products).await;
        }
        finished
    }

    /// Loads an order the caller may see: their own, or any for staff. Others' orders are not found.
    async fn visible(&self, principal: &Principal, id: Uuid) -> ServiceResult<OrderRecord> {
        match self.orders.find_order(id).await? {
            Some(o) if principal.is_staff() || o.customer_id == principal.user_id.as_uuid() => Ok(o),
            _ => Err(ServiceError::NotFound("rental")),
        }
    }

    /// An order with its lines, products, customer, invoice and payments.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown order or another customer's.
    pub async fn get(&self, principal: &Principal, id: Uuid) -> ServiceResult<OrderDetailView> {
        let detail = self.orders.order_detail(id).await?.ok_or(ServiceError::NotFound("rental"))?;
        if !principal.is_staff() && detail.order.customer_id != principal.user_id.as_uuid() {
            return Err(ServiceError::NotFound("rental"));
        }
        Ok(detail_view(detail))
    }

    /// A page of orders: the caller's own, or everyone's for staff.
    ///
    /// # Errors
    /// [`ServiceError::InvalidQuery`] naming a bad parameter.
    pub async fn list(&self, principal: &Principal, params: &[(String, String)]) -> ServiceResult<Listing<OrderView>> {
        let mut query = order_list_spec().parse(params)?;
        if !principal.is_staff() {
            query.filters.insert(OrderFilter::CUSTOMER, FilterValue::Uuid(principal.user_id.as_uuid()));
        }
        // `from` and `to` are two independent conditions (ends after `from`, starts before `to`): with `to` not
        // after `from` they select the orders that span both instants, which OpenAPI lets a client ask for.
        Ok(self.orders.list_orders(&query, self.clock.now()).await?.map(OrderView::from))
    }

    /// The order's event log.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn events(&self, principal: &Principal, id: Uuid) -> ServiceResult<Vec<OrderEventView>> {
        self.visible(principal, id).await?;
        Ok(self.orders.events(id).await?.into_iter().map(OrderEventView::from).collect())
    }

    /// `quote → reserved` (the customer or staff).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::Invalid`] for an illegal transition (409),
    /// [`ServiceError::InsufficientStock`].
    pub async fn confirm(
        &self,
        principal: &Principal,
        id: Uuid,
        note_text: Option<String>,
    ) -> ServiceResult<OrderView> {
        self.visible(principal, id).await?;
        let change = self.change(principal, checked_note(note_text)?);
        let products = self.products_of(id).await?;
        let uow = self.begin().await?;
        let result = async {
            let confirmed = self.orders.confirm(&uow, id, &change).await?;
            self.billing.issue_invoice(&uow, id, change.at).await?;
            self.settle(&uow, id, confirmed.usage_changed, true).await?;
            self.confirmation_mail(&uow, id).await?;
            Ok(confirmed.order)
        }
        .await;
        let result = self.answered(&uow, result).await;
        let finished = self.finish_reserving(uow, result).await;
        self.evict_availability(&products).await;
        finished
    }

    /// `quote|reserved → cancelled` (the customer or staff).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::Invalid`] for an illegal transition (409).
    pub async fn cancel(&self, principal: &Principal, id: Uuid, note_text: Option<String>) -> ServiceResult<OrderView> {
        self.visible(principal, id).await?;
        let change = self.change(principal, checked_note(note_text)?);
        let products = self.products_of(id).await?;
        let uow = self.begin().await?;
        let result = async {
            let cancelled = self.orders.cancel(&uow, id, &change).await?;
            self.billing.void_invoice(&uow, id, change.at).await?;
            self.settle(&uow, id, cancelled.usage_changed, false).await?;
            Ok::<_, RepoError>(cancelled.order)
        }
        .await;
        let result = self.answered(&uow, result).await;
        let finished = uow.finish(result).await;
        self.evict_availability(&products).await;
        Ok(finished?)
    }

    /// `reserved → picked_up` (staff): hands out units, chosen or picked automatically.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`].
    pub async fn pickup(
        &self,
        principal: &Principal,
        id: Uuid,
        units: Vec<PickupLine>,
        note_text: Option<String>,
    ) -> ServiceResult<OrderView> {
        principal.require_staff()?;
        self.visible(principal, id).await?;
        let change = self.change(principal, checked_note(note_text)?);
        let chosen: Vec<LineUnits> =
            units.into_iter().map(|u| LineUnits { line_id: u.line_id, unit_ids: u.unit_ids }).collect();
        let products = self.products_of(id).await?;
        let uow = self.begin().await?;
        let result = self.orders.pickup(&uow, id, &chosen, &change).await.map(|picked| picked.order);
        let result = self.answered(&uow, result).await;
        let finished = uow.finish(result).await;
        self.evict_availability(&products).await;
        Ok(finished?)
    }

    /// `picked_up → returned` (staff): conditions, damage charges and late fees.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`].
    pub async fn return_items(
        &self,
        principal: &Principal,
        id: Uuid,
        units: Vec<ReturnedUnit>,
        note_text: Option<String>,
    ) -> ServiceResult<OrderView> {
        principal.require_staff()?;
        self.visible(principal, id).await?;
        let mut errors = Collector::default();
        let note_text = errors.take(checked_note(note_text).map_err(|_| DomainError::field("note", "is too long")));
        let mut returns = Vec::with_capacity(units.len());
        for (i, u) in units.into_iter().enumerate() {
            let condition =
                errors.take(u.condition.parse::<UnitCondition>().map_err(|e| prefixed_with(e, &format!("units[{i}]"))));
            let damage_note = u
                .damage_note
                .as_deref()
                .and_then(|n| {
                    errors.take(description("damage_note", n).map_err(|e| prefixed_with(e, &format!("units[{i}]"))))
                })
                .flatten();
            let charge = u.damage_charge_minor.unwrap_or(0);
            if charge < 0 {
                errors.take::<()>(Err(DomainError::field(
                    format!("units[{i}].damage_charge_minor"),
                    "must not be negative",
                )));
            }
            if let Some(condition) = condition {
                returns.push((UnitReturn { unit_id: u.unit_id, condition, damage_note }, charge.max(0)));
            }
        }
        errors.finish()?;
        let change = self.change(principal, note_text.flatten());
        let unit_returns: Vec<UnitReturn> = returns.iter().map(|(r, _)| r.clone()).collect();
        let products = self.products_of(id).await?;
        let uow = self.begin().await?;
        let result = async {
            let (returned, lines) = self.orders.return_items(&uow, id, &unit_returns, &change).await?;
            let currency = returned.order.totals.total.currency;
            let mut charges = Vec::new();
            for line in &lines {
                let fee = line.late_fee_per_day;
                charges.extend(late_fee(fee, line.quantity, line.ends_at, change.at).map_err(RepoError::Domain)?);
            }
            for (r, charge) in &returns {
                let amount = Money::new(*charge, currency);
                charges.extend(damage_charge(amount, r.unit_id, r.damage_note.as_deref()).map_err(RepoError::Domain)?);
            }
            self.billing.add_charges(&uow, id, &charges, change.at).await?;
            Ok::<_, RepoError>(returned.order)
        }
        .await;
        let result = self.answered(&uow, result).await;
        let finished = uow.finish(result).await;
        self.evict_availability(&products).await;
        Ok(finished?)
    }

    /// `returned → closed` (staff).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`] (409).
    pub async fn close(&self, principal: &Principal, id: Uuid, note_text: Option<String>) -> ServiceResult<OrderView> {
        principal.require_staff()?;
        self.visible(principal, id).await?;
        let change = self.change(principal, checked_note(note_text)?);
        let products = self.products_of(id).await?;
        let uow = self.begin().await?;
        let result = async {
            let closed = self.orders.close(&uow, id, &change).await?;
            // The final invoice goes to the customer with the close, once.
            let args = serde_json::json!({ "order_id": id });
            self.outbox.enqueue_value(&uow, kinds::INVOICE_MAIL, args, None, Some(format!("invoice:{id}"))).await?;
            Ok::<_, RepoError>(closed.order)
        }
        .await;
        let result = self.answered(&uow, result).await;
        let finished = uow.finish(result).await;
        self.evict_availability(&products).await;
        Ok(finished?)
    }

    /// Free quantity of a product over `[from, to)` per day, and when less than `quantity` is free, the nearest
    /// periods of the same length where it is. Public.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad period or quantity, [`ServiceError::NotFound`].
    pub async fn availability(
        &self,
        product_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        quantity: Option<i64>,
    ) -> ServiceResult<AvailabilityView> {
        let mut errors = Collector::default();
        if to <= from {
            errors.take::<()>(Err(DomainError::field("to", "must be after from")));
        } else if to - from > Duration::days(MAX_RENTAL_DAYS) {
            errors.take::<()>(Err(DomainError::field(
                "to",
                format!("the period must be at most {MAX_RENTAL_DAYS} days"),
            )));
        }
        let quantity = quantity.unwrap_or(1);
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            errors.take::<()>(Err(DomainError::field("quantity", format!("must be 1 to {MAX_QUANTITY}"))));
        }
        errors.finish()?;
        let Some(cache) = &self.availability else {
            let view = self.compute_availability(product_id, from, to, quantity).await?;
            return view.ok_or(ServiceError::NotFound("product"));
        };
        let key = AvailabilityKey::window(product_id, from, to, quantity);
        let load = async { self.compute_availability(product_id, from, to, quantity).await.map(Arc::new) };
        cache.get_or_load(key, load).await?.as_ref().clone().ok_or(ServiceError::NotFound("product"))
    }

    /// [`Self::availability`] read now from the database, for a validated window; `None` for an unknown or
    /// inactive product.
    async fn compute_availability(
        &self,
        product_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        quantity: i64,
    ) -> RepoResult<Option<AvailabilityView>> {
        let products = self.orders.product_terms(&BTreeSet::from([product_id])).await?;
        let Some(product) = products.first().filter(|p| p.is_active) else { return Ok(None) };
        let buffer = Duration::minutes(i64::from(product.terms.buffer_minutes));
        let now = self.clock.now();
        let horizon = Duration::days(rental_repo::SUGGESTION_HORIZON_DAYS);
        let window_from = Ord::min(from, Ord::max(now, from - horizon));
        let window_to = to + buffer + horizon;
        let stock = self.orders.product_holds(product_id, window_from, window_to).await?;
        let timeline = Timeline::new(stock.capacity, &stock.holds, window_from, window_to);
        let available = timeline.min_free(from, to + buffer).unwrap_or(0).max(0);
        let days = timeline
            .per_day(from, to)
            .into_iter()
            .map(|d| DayView { date: d.date, available: d.free.max(0) })
            .collect();
        let nearest_free = if available < quantity {
            let (earlier, later) = timeline.nearest_free(quantity, to - from + buffer, from, now);
            [earlier, later].into_iter().flatten().map(|start| PeriodView { start, end: start + (to - from) }).collect()
        } else {
            Vec::new()
        };
        Ok(Some(AvailabilityView {
            product_id,
            from,
            to,
            capacity: stock.capacity,
            quantity,
            available,
            days,
            nearest_free,
        }))
    }

    /// Takes a unit out of service for a period (staff). Refused with `unavailable` when reservations need the
    /// unit then.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`], [`ServiceError::NotFound`],
    /// [`ServiceError::InsufficientStock`].
    pub async fn add_maintenance(
        &self,
        principal: &Principal,
        unit_id: Uuid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: Option<String>,
    ) -> ServiceResult<MaintenanceView> {
        principal.require_staff()?;
        let mut errors = Collector::default();
        let now = self.clock.now();
        let period = errors.take(RentalPeriod::parse(start, end, now));
        let reason = reason.as_deref().and_then(|r| errors.take(description("reason", r))).flatten();
        errors.finish()?;
        let Some(period) = period else { return Err(ServiceError::Internal("validated period missing".into())) };
        let new = NewMaintenanceRecord {
            unit_id,
            starts_at: period.start(),
            ends_at: period.end(),
            reason,
            created_by: Some(principal.user_id.as_uuid()),
        };
        let uow = self.db.begin().await?;
        let result = self.orders.add_maintenance(&uow, new, now).await;
        match self.finish_reserving(uow, result).await {
            Ok(block) => {
                self.evict_availability(&BTreeSet::from([block.product_id])).await;
                Ok(block.into())
            }
            Err(ServiceError::NotFound(_)) => Err(ServiceError::NotFound("unit")),
            Err(e) => Err(e),
        }
    }

    /// Overbooked holds in the database (0 when healthy): for checks after load tests and for monitoring.
    ///
    /// # Errors
    /// [`ServiceError::Repo`].
    pub async fn count_overbooked(&self) -> ServiceResult<u64> {
        Ok(self.orders.count_overbooked().await?)
    }
}

fn detail_view(d: OrderDetail) -> OrderDetailView {
    OrderDetailView {
        order: d.order.into(),
        lines: d
            .lines
            .into_iter()
            .map(|l| OrderLineView {
                id: l.id,
                product_id: l.product_id,
                quantity: l.quantity,
                start: l.starts_at,
                end: l.ends_at,
                hold_until: l.hold_until,
                holds_stock: l.holds_stock,
                price_per_day_minor: l.terms.product.rates.per_day.amount_minor,
                price_per_week_minor: l.terms.product.rates.per_week.map(|m| m.amount_minor),
                price_per_month_minor: l.terms.product.rates.per_month.map(|m| m.amount_minor),
                deposit_per_unit_minor: l.terms.product.deposit_per_unit.amount_minor,
                late_fee_per_day_minor: l.terms.product.late_fee_per_day.amount_minor,
                charged_days: l.terms.charged_days,
                months: l.terms.months,
                weeks: l.terms.weeks,
                days: l.terms.days,
                unit_price_minor: l.terms.unit_price.amount_minor,
                line_total_minor: l.terms.line_total.amount_minor,
                units: l
                    .units
                    .into_iter()
                    .map(|u| AssignedUnitView {
                        unit_id: u.unit_id,
                        returned_condition: u.returned_condition,
                        damage_note: u.damage_note,
                    })
                    .collect(),
            })
            .collect(),
        products: d.products.into_iter().map(|p| OrderProductView { id: p.id, sku: p.sku, name: p.name }).collect(),
        customer: d.customer.map(|c| CustomerView { id: c.id, email: c.email, full_name: c.full_name }),
        invoice: d.invoice.map(|i| InvoiceView::of(i, true)),
        payments: d.payments.into_iter().map(PaymentView::from).collect(),
    }
}

/// The shortages of a refused reservation as callers see them.
pub(crate) fn shortage_views(shortages: &[Shortage]) -> Vec<ShortageView> {
    shortages
        .iter()
        .map(|s| {
            let length = s.length;
            ShortageView {
                line: s.line,
                product_id: s.product_id,
                requested: s.requested,
                available: s.free,
                nearest_free: [s.earlier_start, s.later_start]
                    .into_iter()
                    .flatten()
                    .map(|start| PeriodView { start, end: start + length })
                    .collect(),
            }
        })
        .collect()
}

fn prefixed(err: DomainError, line: usize) -> DomainError {
    prefixed_with(err, &format!("lines[{line}]"))
}

pub(crate) fn prefixed_with(err: DomainError, prefix: &str) -> DomainError {
    match err {
        DomainError::Invalid(fields) if !prefix.is_empty() => {
            DomainError::Invalid(fields.into_iter().map(|f: FieldError| f.within(prefix)).collect())
        }
        other => other,
    }
}

fn checked_note(text: Option<String>) -> ServiceResult<Option<String>> {
    match text {
        Some(t) => Ok(description("note", &t)?),
        None => Ok(None),
    }
}
