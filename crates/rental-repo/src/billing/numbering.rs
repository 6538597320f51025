//! Gap-free yearly invoice numbers by group commit after the reservations' commits.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Datelike, Utc};
use rental_domain::InvoiceStatus;
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::entity::{invoice, invoice_counter};
use crate::{BillingRepo, RepoError, RepoResult};

/// Group commit of invoice numbers: one numbering transaction at a time on this instance, each numbering every
/// issued invoice still without a number. A caller whose invoice was committed before a batch started needs no
/// batch of its own.
#[derive(Debug, Default)]
pub(super) struct Numbering {
    gate: tokio::sync::Mutex<()>,
    /// Batches started so far; a batch's sequence number.
    started: AtomicU64,
    /// Sequence number of the latest batch that committed.
    completed: AtomicU64,
}

/// Most invoices one numbering transaction takes.
const NUMBERING_BATCH: u64 = 1_000;

impl BillingRepo {
    /// Gives every issued invoice still without a number its number, gap-free per year, in order of issue.
    ///
    /// Reservations issue invoices without a number, so that their transactions never queue on the yearly
    /// counter row; a service registers this as after-commit work on the reservation's unit of work. Numbers
    /// are taken in one transaction that locks the year's counter row and numbers the whole backlog, so many
    /// concurrent reservations share one numbering commit, and a failed numbering returns its numbers. Returns
    /// when the caller's invoices are numbered (by this call or by a batch that started after them).
    ///
    /// # Errors
    /// [`RepoError::Database`] when a transaction fails; the invoices stay unnumbered until the next call.
    pub async fn number_issued_invoices(&self) -> RepoResult<()> {
        let committed_before = self.numbering.started.load(Ordering::SeqCst);
        let _gate = self.numbering.gate.lock().await;
        if self.numbering.completed.load(Ordering::SeqCst) > committed_before {
            return Ok(());
        }
        let batch = self.numbering.started.fetch_add(1, Ordering::SeqCst) + 1;
        loop {
            let uow = self.db.begin().await?;
            let txn = uow.conn();
            let result = async {
                // Served by the partial index idx_invoices_unnumbered (only invoices waiting for a number).
                let mut pending: Vec<(Uuid, Option<DateTime<Utc>>)> = invoice::Entity::find()
                    .select_only()
                    .columns([invoice::Column::Id, invoice::Column::IssuedAt])
                    .filter(
                        invoice::Column::Status
                            .is_in(InvoiceStatus::ALL.iter().filter(|s| s.is_issued()).map(|s| s.as_str())),
                    )
                    .filter(invoice::Column::Number.is_null())
                    .limit(NUMBERING_BATCH)
                    .into_tuple()
                    .all(txn)
                    .await?;
                pending.sort_unstable_by_key(|&(id, issued_at)| (issued_at, id));
                let mut by_year: Vec<(i32, Vec<Uuid>)> = Vec::new();
                for (id, issued_at) in &pending {
                    let year = issued_at.unwrap_or_else(Utc::now).year();
                    match by_year.last_mut() {
                        Some((y, ids)) if *y == year => ids.push(*id),
                        _ => by_year.push((year, vec![*id])),
                    }
                }
                for (year, ids) in by_year {
                    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
                    let last = advance_invoice_counter(txn, year, count).await?;
                    // One UPDATE for the whole year's share of the batch: CASE id WHEN … THEN seq.
                    let (mut seqs, mut numbers) = (CaseStatement::new(), CaseStatement::new());
                    for (seq, id) in (last - count + 1..=last).zip(&ids) {
                        seqs = seqs.case(invoice::Column::Id.eq(*id), Expr::val(seq));
                        numbers = numbers.case(invoice::Column::Id.eq(*id), Expr::val(format!("INV-{year}-{seq:06}")));
                    }
                    invoice::Entity::update_many()
                        .col_expr(invoice::Column::Number, numbers.into())
                        .col_expr(invoice::Column::Year, Expr::val(year))
                        .col_expr(invoice::Column::Seq, seqs.into())
                        .filter(invoice::Column::Id.is_in(ids))
                        .exec(txn)
                        .await?;
                }
                Ok::<_, RepoError>(pending.len() as u64)
            }
            .await;
            let numbered = uow.finish(result).await?;
            if numbered < NUMBERING_BATCH {
                break;
            }
        }
        self.numbering.completed.fetch_max(batch, Ordering::SeqCst);
        Ok(())
    }
}

/// Takes the next `count` numbers of `year` from its counter row (created at need) inside the caller's
/// transaction, so a rolled-back transaction gives them back and numbers stay gap-free; returns the last one
/// taken. Shared by the live numbering and the importer.
pub(crate) async fn advance_invoice_counter<C: ConnectionTrait>(conn: &C, year: i32, count: i64) -> RepoResult<i64> {
    let counter =
        invoice_counter::Entity::insert(invoice_counter::ActiveModel { year: Set(year), last_seq: Set(count) })
            .on_conflict(
                OnConflict::column(invoice_counter::Column::Year)
                    .value(
                        invoice_counter::Column::LastSeq,
                        Expr::col((invoice_counter::Entity, invoice_counter::Column::LastSeq)).add(count),
                    )
                    .to_owned(),
            )
            .exec_with_returning(conn)
            .await?;
    Ok(counter.last_seq)
}
