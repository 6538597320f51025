//! The persistence contract of billing: what the services rely on, implemented by [`BillingRepo`].

use std::future::Future;

use chrono::{DateTime, Utc};
use rental_domain::billing::Charge;
use uuid::Uuid;

use super::{InvoiceRecord, NewInvoiceRecord, NewPaymentRecord, PaymentRecord};
use crate::query::{ListQuery, Listing};
use crate::{BillingRepo, RepoResult, UnitOfWork};

/// Invoices, their numbers and payments, as the services need them. Writes take the caller's [`UnitOfWork`]
/// so that an invoice changes in the same transaction as its order.
///
/// The contract every implementation keeps (checked by `rental_repo::conformance` on SQLite and PostgreSQL):
/// issued invoices get gap-free yearly numbers in order of issue, whatever runs concurrently; a payment is
/// accepted only as [`rental_domain::InvoiceStatus::accept_payment`] allows, and a refused one writes nothing.
pub trait BillingStore: Send + Sync {
    /// See [`BillingRepo::create_invoice`].
    fn create_invoice(
        &self,
        uow: &UnitOfWork,
        new: &NewInvoiceRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<InvoiceRecord>> + Send;
    /// See [`BillingRepo::issue_invoice`].
    fn issue_invoice(
        &self,
        uow: &UnitOfWork,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<()>> + Send;
    /// See [`BillingRepo::void_invoice`].
    fn void_invoice(
        &self,
        uow: &UnitOfWork,
        order_id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<()>> + Send;
    /// See [`BillingRepo::add_charges`].
    fn add_charges(
        &self,
        uow: &UnitOfWork,
        order_id: Uuid,
        charges: &[Charge],
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<()>> + Send;
    /// See [`BillingRepo::record_payment`].
    fn record_payment(
        &self,
        uow: &UnitOfWork,
        new: NewPaymentRecord,
        at: DateTime<Utc>,
    ) -> impl Future<Output = RepoResult<PaymentRecord>> + Send;
    /// See [`BillingRepo::number_issued_invoices`].
    fn number_issued_invoices(&self) -> impl Future<Output = RepoResult<()>> + Send;
    /// See [`BillingRepo::list_invoices`].
    fn list_invoices(&self, query: &ListQuery) -> impl Future<Output = RepoResult<Listing<InvoiceRecord>>> + Send;
    /// See [`BillingRepo::invoice`].
    fn invoice(&self, id: Uuid)
    -> impl Future<Output = RepoResult<Option<(InvoiceRecord, Vec<PaymentRecord>)>>> + Send;
}

impl BillingStore for BillingRepo {
    async fn create_invoice(
        &self,
        uow: &UnitOfWork,
        new: &NewInvoiceRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<InvoiceRecord> {
        BillingRepo::create_invoice(self, uow, new, at).await
    }
    async fn issue_invoice(&self, uow: &UnitOfWork, order_id: Uuid, at: DateTime<Utc>) -> RepoResult<()> {
        BillingRepo::issue_invoice(self, uow, order_id, at).await
    }
    async fn void_invoice(&self, uow: &UnitOfWork, order_id: Uuid, at: DateTime<Utc>) -> RepoResult<()> {
        BillingRepo::void_invoice(self, uow, order_id, at).await
    }
    async fn add_charges(
        &self,
        uow: &UnitOfWork,
        order_id: Uuid,
        charges: &[Charge],
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        BillingRepo::add_charges(self, uow, order_id, charges, at).await
    }
    async fn record_payment(
        &self,
        uow: &UnitOfWork,
        new: NewPaymentRecord,
        at: DateTime<Utc>,
    ) -> RepoResult<PaymentRecord> {
        BillingRepo::record_payment(self, uow, new, at).await
    }
    async fn number_issued_invoices(&self) -> RepoResult<()> {
        BillingRepo::number_issued_invoices(self).await
    }
    async fn list_invoices(&self, query: &ListQuery) -> RepoResult<Listing<InvoiceRecord>> {
        BillingRepo::list_invoices(self, query).await
    }
    async fn invoice(&self, id: Uuid) -> RepoResult<Option<(InvoiceRecord, Vec<PaymentRecord>)>> {
        BillingRepo::invoice(self, id).await
    }
}
