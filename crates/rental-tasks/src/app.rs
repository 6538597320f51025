//! The rental backend's jobs: a handler for every kind of `rental_service::jobs::kinds`, each idempotent.
//!
//! E-mails carry a `Message-ID` derived from the job (`<job id>@<mail domain>`), so a job that runs twice (its
//! worker died after sending) sends a message that receivers recognise as the same one. Jobs that find
//! nothing to do (an order deleted since, an address that belongs to nobody) succeed without doing anything.

use std::sync::Arc;

use chrono::{Duration, SecondsFormat, Utc};
use rental_domain::billing::late_fee;
use rental_domain::{Currency, Money};
use rental_repo::JobStore;
use rental_service::jobs::{MailJob, OrderMail, PasswordRecovery, kinds};
use rental_service::{Mailer, OrderDetailView, OrderView, Principal, ServiceError, Services};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::handler::{JobContext, JobError, Registry};
use crate::mail::Templates;

/// Settings of the rental backend's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where customers reach the service, for the links in e-mails (no trailing slash).
    pub base_url: String,
    /// Domain of the `Message-ID`s.
    pub message_id_domain: String,
    /// Return reminders go out this many hours before a rental ends.
    pub return_reminder_hours: u32,
    /// Pickup reminders go out this many hours before a reserved rental starts.
    pub pickup_reminder_hours: u32,
    /// Succeeded and cancelled jobs are kept this many hours for inspection, then purged.
    pub keep_finished_hours: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            base_url: "http://localhost:8080".into(),
            message_id_domain: "rental.localhost".into(),
            return_reminder_hours: 24,
            pickup_reminder_hours: 24,
            keep_finished_hours: 7 * 24,
        }
    }
}

/// Most orders one page of a periodic job reads.
const PAGE: &str = "100";
/// How far back the reconciliation looks (Stripe's card payments settle within days).
const RECONCILE_DAYS: i64 = 3;
/// Most payments one reconciliation run compares.
const RECONCILE_BATCH: u64 = 500;
/// Most jobs one purge statement deletes.
const PURGE_BATCH: u32 = 5_000;

/// What every handler shares.
struct App {
    services: Services,
    mailer: Arc<dyn Mailer>,
    templates: Arc<Templates>,
    config: NotifyConfig,
}

/// The handlers of every job kind of the rental backend, over `services` (whose queue they also enqueue in),
/// sending with `mailer` from `templates`.
pub fn registry(
    services: Services,
    mailer: Arc<dyn Mailer>,
    templates: Arc<Templates>,
    config: NotifyConfig,
) -> Registry {
    let app = Arc::new(App { services, mailer, templates, config });
    let handler = |f: for<'a> fn(&'a App, &'a JobContext) -> crate::JobFuture<'a>| {
        let app = app.clone();
        move |job: JobContext| {
            let app = app.clone();
            async move { f(&app, &job).await }
        }
    };
    Registry::new()
        .register(kinds::MAIL, handler(|app, job| Box::pin(app.mail(job))))
        .register(kinds::ORDER_CONFIRMATION, handler(|app, job| Box::pin(app.order_confirmation(job))))
        .register(kinds::SETTLE_ORDER, handler(|app, _| Box::pin(app.settle())))
        .register(kinds::PASSWORD_RECOVERY, handler(|app, job| Box::pin(app.password_recovery(job))))
        .register(kinds::PURGE_TOKENS, handler(|app, _| Box::pin(app.purge_tokens())))
        .register(kinds::PURGE_JOBS, handler(|app, _| Box::pin(app.purge_jobs())))
        .register(kinds::PURGE_IDEMPOTENCY, handler(|app, _| Box::pin(app.purge_idempotency())))
        .register(kinds::MARK_OVERDUE, handler(|app, _| Box::pin(app.mark_overdue())))
        .register(kinds::RETURN_REMINDERS, handler(|app, _| Box::pin(app.return_reminders())))
        .register(kinds::PICKUP_REMINDERS, handler(|app, _| Box::pin(app.pickup_reminders())))
        .register(kinds::INVOICE_MAIL, handler(|app, job| Box::pin(app.invoice(job))))
        .register(kinds::DAILY_REPORT, handler(|app, job| Box::pin(app.daily_report(job))))
        .register(kinds::RECONCILE_PAYMENTS, handler(|app, _| Box::pin(app.reconcile_payments())))
        .register(kinds::DEPOSITS, handler(|app, _| Box::pin(app.deposits())))
}

fn when(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn money(minor: i64, currency: &str) -> String {
    Currency::parse(currency).map_or_else(|_| format!("{minor} {currency}"), |c| Money::new(minor, c).to_string())
}

impl App {
    fn message_id(&self, job: &JobContext, part: Option<&str>) -> String {
        match part {
            Some(part) => format!("{}.{part}@{}", job.id, self.config.message_id_domain),
            None => format!("{}@{}", job.id, self.config.message_id_domain),
        }
    }

    /// Renders `template` for `to` and sends it with the job's `Message-ID` and request id.
    async fn send(&self, job: &JobContext, template: &str, to: &str, context: &Value) -> Result<(), JobError> {
        self.send_part(job, None, template, to, context).await
    }

    /// As [`App::send`], for one of several messages a job sends (`part` makes its id distinct and stable).
    async fn send_part(
        &self,
        job: &JobContext,
        part: Option<&str>,
        template: &str,
        to: &str,
        context: &Value,
    ) -> Result<(), JobError> {
        let mut message = self
            .templates
            .compose(template, to, context, Some(self.message_id(job, part)))
            .map_err(JobError::permanent)?;
        message.request_id.clone_from(&job.request_id);
        Ok(self.mailer.send(&message).await?)
    }

    async fn mail(&self, job: &JobContext) -> Result<(), JobError> {
        let args: MailJob = job.args()?;
        let mut context = args.context;
        if let Value::Object(fields) = &mut context {
            fields.entry("login_url").or_insert_with(|| json!(format!("{}/console", self.config.base_url)));
        }
        self.send(job, &args.template, &args.to, &context).await
    }

    async fn order(&self, id: Uuid) -> Result<Option<OrderDetailView>, JobError> {
        match self.services.rentals.get(&Principal::system(), id).await {
            Ok(detail) => Ok(Some(detail)),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn order_confirmation(&self, job: &JobContext) -> Result<(), JobError> {
        let args: OrderMail = job.args()?;
        let Some(detail) = self.order(args.order_id).await? else { return Ok(()) };
        let Some(customer) = &detail.customer else { return Ok(()) };
        let currency = &detail.order.currency;
        let lines: Vec<Value> = detail
            .lines
            .iter()
            .map(|line| {
                let product = detail.products.iter().find(|p| p.id == line.product_id).map_or("", |p| p.name.as_str());
                json!({
                    "product": product,
                    "quantity": line.quantity,
                    "starts_at": when(line.start),
                    "ends_at": when(line.end),
                    "total": money(line.line_total_minor, currency),
                })
            })
            .collect();
        let context = json!({
            "name": customer.full_name,
            "order_id": detail.order.id,
            "lines": lines,
            "total": money(detail.order.total_minor, currency),
            "currency": currency,
        });
        self.send(job, "order_confirmation", &customer.email, &context).await
    }

    async fn settle(&self) -> Result<(), JobError> {
        Ok(self.services.rentals.settle_pending().await?)
    }

    async fn password_recovery(&self, job: &JobContext) -> Result<(), JobError> {
        let args: PasswordRecovery = job.args()?;
        let Some(reset) = self.services.auth.prepare_password_reset(&args.email, job.id).await? else {
            return Ok(());
        };
        let context = json!({
            "name": reset.name,
            "reset_url": format!("{}/reset-password?token={}", self.config.base_url, reset.token),
            "expires_minutes": reset.expires_minutes,
        });
        self.send(job, "password_reset", &reset.to, &context).await
    }

    async fn purge_tokens(&self) -> Result<(), JobError> {
        let purged = self.services.auth.purge_expired_tokens().await?;
        tracing::info!(purged, "expired tokens purged");
        Ok(())
    }

    async fn purge_idempotency(&self) -> Result<(), JobError> {
        let purged = self.services.idempotency.purge_expired().await?;
        tracing::info!(purged, "expired idempotency keys purged");
        Ok(())
    }

    async fn purge_jobs(&self) -> Result<(), JobError> {
        let keep = Duration::hours(i64::from(self.config.keep_finished_hours));
        let before = self.services.clock.now() - keep;
        let store = self.services.jobs.store();
        loop {
            let purged = store.purge_finished(before, PURGE_BATCH).await.map_err(JobError::retry)?;
            if purged < u64::from(PURGE_BATCH) {
                return Ok(());
            }
        }
    }

    /// Every order `params` select, as the business sees them, page by page.
    async fn orders(&self, params: &[(&str, &str)]) -> Result<Vec<OrderView>, JobError> {
        let system = Principal::system();
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query: Vec<(String, String)> =
                params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            query.extend([("limit".into(), PAGE.into()), ("sort".into(), "starts_at".into())]);
            if let Some(after) = cursor.take() {
                query.push(("cursor".into(), after));
            }
            let page = self.services.rentals.list(&system, &query).await?;
            ids.extend(page.items().iter().cloned());
            match page {
                rental_service::Listing::Keyset(page) if page.next_cursor.is_some() => cursor = page.next_cursor,
                _ => return Ok(ids),
            }
        }
    }

    /// Mails an overdue notice, once per order, for every picked-up rental past its end, stating the late fee
    /// accrued so far by the domain's rule (the fee itself is charged when the items come back). The notice is
    /// a job of its own, enqueued with the order's id as its dedupe key, so each order gets one notice however
    /// often this runs.
    /// Compares the Stripe payments of the last [`RECONCILE_DAYS`] days that are still pending or failed with
    /// Stripe and repairs those Stripe settled, settles refunds of unknown outcome, and repairs deposits whose
    /// outcome at Stripe is unknown; logs what it checked and changed. Without Stripe keys there is nothing to
    /// compare with.
    async fn reconcile_payments(&self) -> Result<(), JobError> {
        let payments = &self.services.payments;
        if !payments.has_gateway() {
            tracing::debug!("payments are not configured: nothing to reconcile");
            return Ok(());
        }
        let since = self.services.clock.now() - Duration::days(RECONCILE_DAYS);
        let report = payments.reconcile(since, RECONCILE_BATCH).await?;
        tracing::info!(
            checked = report.checked,
            changed = report.changed.len(),
            failed = report.failed,
            repaired = %serde_json::to_string(&report.changed).unwrap_or_default(),
            refunds_settled = %serde_json::to_string(&report.refunds).unwrap_or_default(),
            refunds_unresolved = report.refunds_unresolved,
            deposits_checked = report.deposits_checked,
            deposits_failed = report.deposits_failed,
            deposits_repaired = %serde_json::to_string(&report.deposits_changed).unwrap_or_default(),
            "payments reconciled"
        );
        Ok(())
    }

    /// Places the scheduled deposits whose time has come and re-authorises (saved card) or flags card holds
    /// about to lapse; logs what it did.
    /// Without Stripe keys there is nothing to do.
    async fn deposits(&self) -> Result<(), JobError> {
        let payments = &self.services.payments;
        if !payments.has_gateway() {
            tracing::debug!("payments are not configured: no deposits to place");
            return Ok(());
        }
        let report = payments.run_deposits().await?;
        tracing::info!(
            placed = report.placed,
            dropped = report.dropped,
            flagged = report.flagged,
            reauthorised = report.reauthorised,
            released = report.released,
            failed = report.failed,
            "deposits run"
        );
        Ok(())
    }

    async fn mark_overdue(&self) -> Result<(), JobError> {
        let now = self.services.clock.now();
        for order in self.orders(&[("status", "picked_up"), ("overdue", "true")]).await? {
            let id = order.id;
            let Some(detail) = self.order(id).await? else { continue };
            let Some(customer) = &detail.customer else { continue };
            let currency = Currency::parse(&detail.order.currency).map_err(JobError::permanent)?;
            let mut fee = 0i64;
            for line in &detail.lines {
                let per_day = Money::new(line.late_fee_per_day_minor, currency);
                if let Some(charge) = late_fee(per_day, line.quantity, line.end, now).map_err(JobError::permanent)? {
                    fee = fee.saturating_add(charge.amount.amount_minor);
                }
            }
            let context = json!({
                "name": customer.full_name,
                "order_id": id,
                "ends_at": when(detail.order.ends_at),
                "late_fee": Money::new(fee, currency).to_string(),
            });
            self.enqueue_mail("overdue_notice", &customer.email, context, format!("overdue:{id}")).await?;
        }
        Ok(())
    }

    /// Mails a reminder, once per order, for every picked-up rental that ends within the configured hours.
    async fn return_reminders(&self) -> Result<(), JobError> {
        let now = self.services.clock.now();
        let horizon = now + Duration::hours(i64::from(self.config.return_reminder_hours));
        let due = self.orders(&[("status", "picked_up"), ("overdue", "false")]).await?;
        for order in due.into_iter().filter(|o| o.ends_at > now && o.ends_at <= horizon) {
            let id = order.id;
            let Some(detail) = self.order(id).await? else { continue };
            let Some(customer) = &detail.customer else { continue };
            let context = json!({ "name": customer.full_name, "order_id": id, "ends_at": when(detail.order.ends_at) });
            self.enqueue_mail("return_reminder", &customer.email, context, format!("return:{id}")).await?;
        }
        Ok(())
    }

    /// Mails a reminder, once per order, for every reserved rental that starts within the configured hours.
    async fn pickup_reminders(&self) -> Result<(), JobError> {
        let now = self.services.clock.now();
        let horizon = now + Duration::hours(i64::from(self.config.pickup_reminder_hours));
        let (from, to) = (when(now), when(horizon));
        let due = self.orders(&[("status", "reserved"), ("from", &from), ("to", &to)]).await?;
        for order in due.into_iter().filter(|o| o.starts_at > now && o.starts_at <= horizon) {
            let id = order.id;
            let Some(detail) = self.order(id).await? else { continue };
            let Some(customer) = &detail.customer else { continue };
            let context =
                json!({ "name": customer.full_name, "order_id": id, "starts_at": when(detail.order.starts_at) });
            self.enqueue_mail("pickup_reminder", &customer.email, context, format!("pickup:{id}")).await?;
        }
        Ok(())
    }

    /// Mails the invoice of a closed order: its number, total and what is still due.
    async fn invoice(&self, job: &JobContext) -> Result<(), JobError> {
        let args: OrderMail = job.args()?;
        let Some(detail) = self.order(args.order_id).await? else { return Ok(()) };
        let (Some(customer), Some(invoice)) = (&detail.customer, &detail.invoice) else { return Ok(()) };
        let Some(number) = &invoice.number else {
            // Numbered right after the reservation's commit, or by its settlement job: try again shortly.
            return Err(JobError::retry("the invoice has no number yet"));
        };
        let context = json!({
            "name": customer.full_name,
            "number": number,
            "total": money(invoice.total_minor, &invoice.currency),
            "due_on": self.services.clock.now().date_naive().to_string(),
        });
        self.send(job, "invoice", &customer.email, &context).await
    }

    /// Enqueues one e-mail, unique by `dedupe_key`, in a unit of its own.
    async fn enqueue_mail(&self, template: &str, to: &str, context: Value, dedupe_key: String) -> Result<(), JobError> {
        let args = MailJob { template: template.into(), to: to.into(), context };
        self.services.jobs.enqueue(kinds::MAIL, &args, Some(dedupe_key)).await?;
        Ok(())
    }

    /// The total of a listing asked for with `include_total`.
    async fn count_orders(&self, params: &[(&str, &str)]) -> Result<u64, JobError> {
        let mut query: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        query.extend([("limit".into(), "1".into()), ("include_total".into(), "true".into())]);
        match self.services.rentals.list(&Principal::system(), &query).await? {
            rental_service::Listing::Keyset(page) => Ok(page.total.unwrap_or_default()),
            rental_service::Listing::Offset(page) => Ok(page.total),
        }
    }

    /// Mails yesterday's figures to every active admin: revenue and invoices issued (one per reserved order)
    /// per currency, rentals overdue now, dead jobs now.
    async fn daily_report(&self, job: &JobContext) -> Result<(), JobError> {
        let system = Principal::system();
        let today = self.services.clock.now().date_naive();
        let yesterday = today - chrono::Days::new(1);
        let midnight = |day: chrono::NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc();
        let revenue = self.services.analytics.revenue(&system, midnight(yesterday), midnight(today)).await?;
        let invoiced: i64 = revenue.currencies.iter().map(|c| c.count).sum();
        let revenue = if revenue.currencies.is_empty() {
            "0".to_owned()
        } else {
            revenue.currencies.iter().map(|c| money(c.total_minor, &c.currency)).collect::<Vec<_>>().join(", ")
        };
        let context = json!({
            "date": yesterday.to_string(),
            "orders_created": invoiced,
            "revenue": revenue,
            "overdue": self.count_orders(&[("status", "picked_up"), ("overdue", "true")]).await?,
            "dead_jobs": self.services.jobs.queue_counts().await?.dead,
        });
        let mut admins = std::collections::BTreeMap::new();
        for filter in [("role", "admin"), ("is_superuser", "true")] {
            let query = [
                (filter.0.to_owned(), filter.1.to_owned()),
                ("is_active".to_owned(), "true".to_owned()),
                ("per_page".to_owned(), "100".to_owned()),
            ];
            let page = self.services.users.list(&system, &query).await?;
            admins.extend(page.items().iter().map(|u| (u.id, u.email.clone())));
        }
        for (id, address) in &admins {
            // One message per admin, each with an id of its own that a repeat of the job reproduces.
            self.send_part(job, Some(&id.as_uuid().simple().to_string()), "daily_report", address, &context).await?;
        }
        Ok(())
    }
}
