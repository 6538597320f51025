//! The durable job queue, the scheduler's slots and password-reset tokens.
//!
//! `jobs` is the queue: a job is a row, enqueued in the caller's transaction. Workers claim waiting rows
//! (`queued` or `retrying` whose `run_at` has come) through a partial index that holds only those, and rescue
//! `running` rows whose lease expired through another. A dedupe key makes a job unique per kind for as long as its
//! row exists. `schedules` keeps the last slot enqueued per periodic schedule: advancing it is the compare-and-set
//! that lets one instance, and only one, enqueue a slot. `password_resets` keeps the digest of each reset token,
//! never the token.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    State,
    Attempts,
    MaxAttempts,
    RunAt,
    CreatedAt,
    StartedAt,
    FinishedAt,
    LeaseUntil,
    LockedBy,
    LastError,
    DedupeKey,
}

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Name,
    LastSlot,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PasswordResets {
    Table,
    Id,
    UserId,
    TokenDigest,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let at = |col: Jobs| ColumnDef::new(col).timestamp_with_time_zone().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(ColumnDef::new(Jobs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Jobs::Kind).string_len(64).not_null())
                    .col(ColumnDef::new(Jobs::Payload).text().not_null())
                    .col(ColumnDef::new(Jobs::State).string_len(16).not_null())
                    .col(ColumnDef::new(Jobs::Attempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                    .col(at(Jobs::RunAt).not_null())
                    .col(at(Jobs::CreatedAt).not_null())
                    .col(at(Jobs::StartedAt).null())
                    .col(at(Jobs::FinishedAt).null())
                    .col(at(Jobs::LeaseUntil).null())
                    .col(ColumnDef::new(Jobs::LockedBy).string_len(64).null())
                    .col(ColumnDef::new(Jobs::LastError).text().null())
                    .col(ColumnDef::new(Jobs::DedupeKey).string_len(200).null())
                    .check(Expr::cust("state IN ('queued', 'retrying', 'running', 'succeeded', 'dead', 'cancelled')"))
                    .check(Expr::cust("attempts >= 0 AND max_attempts >= 1"))
                    .to_owned(),
            )
            .await?;
        let conn = manager.get_connection();
        // The claim reads only waiting jobs in order of due time; the rescue only running ones by lease.
        for sql in [
            "CREATE INDEX idx_jobs_waiting ON jobs (run_at, id) WHERE state IN ('queued', 'retrying')",
            "CREATE INDEX idx_jobs_leases ON jobs (lease_until) WHERE state = 'running'",
            "CREATE INDEX idx_jobs_state_kind ON jobs (state, kind, id)",
            "CREATE INDEX idx_jobs_kind ON jobs (kind, id)",
            "CREATE UNIQUE INDEX uq_jobs_dedupe ON jobs (kind, dedupe_key) WHERE dedupe_key IS NOT NULL",
        ] {
            conn.execute_unprepared(sql).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Schedules::Table)
                    .col(ColumnDef::new(Schedules::Name).string_len(100).not_null().primary_key())
                    .col(ColumnDef::new(Schedules::LastSlot).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Schedules::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PasswordResets::Table)
                    .col(ColumnDef::new(PasswordResets::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(PasswordResets::UserId).uuid().not_null())
                    .col(ColumnDef::new(PasswordResets::TokenDigest).string_len(64).not_null())
                    .col(ColumnDef::new(PasswordResets::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(PasswordResets::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(PasswordResets::UsedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_password_resets_user")
                            .from(PasswordResets::Table, PasswordResets::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_password_resets_digest")
                    .table(PasswordResets::Table)
                    .col(PasswordResets::TokenDigest)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_password_resets_user")
                    .table(PasswordResets::Table)
                    .col(PasswordResets::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [PasswordResets::Table.into_iden(), Schedules::Table.into_iden(), Jobs::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
