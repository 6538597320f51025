//! Users, roles and refresh tokens.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    Name,
    Description,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    FullName,
    PasswordHash,
    IsActive,
    IsSuperuser,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

fn index(name: &str, table: impl IntoIden) -> IndexCreateStatement {
    Index::create().name(name).table(table).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(ColumnDef::new(Roles::Name).string_len(32).not_null().primary_key())
                    .col(ColumnDef::new(Roles::Description).string_len(200).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Roles::Table)
                    .columns([Roles::Name, Roles::Description])
                    .values_panic(["admin".into(), "Full control, including user administration".into()])
                    .values_panic(["staff".into(), "Runs the rental desk: catalogue and orders".into()])
                    .values_panic(["customer".into(), "Rents equipment".into()])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Users::Email).string_len(254).not_null())
                    .col(ColumnDef::new(Users::FullName).string_len(200).not_null())
                    // NULL means the account has no password yet (bulk-imported): it cannot log in until one is set.
                    .col(ColumnDef::new(Users::PasswordHash).string_len(255).null())
                    .col(ColumnDef::new(Users::IsActive).boolean().not_null().default(true))
                    .col(ColumnDef::new(Users::IsSuperuser).boolean().not_null().default(false))
                    .col(ColumnDef::new(Users::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Users::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // E-mails are stored lower-cased by the domain, so a plain unique index is case-insensitive uniqueness.
        manager.create_index(index("uq_users_email", Users::Table).col(Users::Email).unique().to_owned()).await?;
        manager.create_index(index("idx_users_is_active", Users::Table).col(Users::IsActive).to_owned()).await?;
        manager.create_index(index("idx_users_is_superuser", Users::Table).col(Users::IsSuperuser).to_owned()).await?;
        // (created_at, id) serves both "order by created_at" and the keyset seek, whose tie-breaker is the id.
        manager
            .create_index(index("idx_users_created_at", Users::Table).col(Users::CreatedAt).col(Users::Id).to_owned())
            .await?;
        manager
            .create_index(
                index("idx_users_is_active_created_at", Users::Table)
                    .col(Users::IsActive)
                    .col(Users::CreatedAt)
                    .col(Users::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_users_full_name", Users::Table).col(Users::FullName).col(Users::Id).to_owned())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserRoles::Table)
                    .col(ColumnDef::new(UserRoles::UserId).uuid().not_null())
                    .col(ColumnDef::new(UserRoles::Role).string_len(32).not_null())
                    .col(ColumnDef::new(UserRoles::CreatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(UserRoles::UserId).col(UserRoles::Role))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_roles_user")
                            .from(UserRoles::Table, UserRoles::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_roles_role")
                            .from(UserRoles::Table, UserRoles::Role)
                            .to(Roles::Table, Roles::Name)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The primary key (user_id, role) indexes lookups by user; this one serves the role filter.
        manager
            .create_index(
                index("idx_user_roles_role", UserRoles::Table).col(UserRoles::Role).col(UserRoles::UserId).to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(ColumnDef::new(RefreshTokens::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(RefreshTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(RefreshTokens::FamilyId).uuid().not_null())
                    .col(ColumnDef::new(RefreshTokens::TokenHash).string_len(64).not_null())
                    .col(ColumnDef::new(RefreshTokens::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(RefreshTokens::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(RefreshTokens::UsedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(RefreshTokens::RevokedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_user")
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("uq_refresh_tokens_hash", RefreshTokens::Table).col(RefreshTokens::TokenHash).unique().to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_refresh_tokens_family", RefreshTokens::Table).col(RefreshTokens::FamilyId).to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_refresh_tokens_user", RefreshTokens::Table).col(RefreshTokens::UserId).to_owned())
            .await?;
        manager
            .create_index(
                index("idx_refresh_tokens_expires_at", RefreshTokens::Table).col(RefreshTokens::ExpiresAt).to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RefreshTokens::Table.into_iden(),
            UserRoles::Table.into_iden(),
            Users::Table.into_iden(),
            Roles::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
