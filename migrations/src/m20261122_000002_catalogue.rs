//! The catalogue: categories, locations, products, individually tracked units and bulk stock levels.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Categories {
    Table,
    Id,
    Slug,
    Name,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Locations {
    Table,
    Id,
    Name,
    Address,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Products {
    Table,
    Id,
    CategoryId,
    Sku,
    Name,
    Description,
    Currency,
    PricePerDayMinor,
    PricePerWeekMinor,
    PricePerMonthMinor,
    DepositMinor,
    LateFeePerDayMinor,
    BufferMinutes,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Units {
    Table,
    Id,
    ProductId,
    SerialNumber,
    Condition,
    LocationId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StockLevels {
    Table,
    ProductId,
    LocationId,
    Quantity,
    UpdatedAt,
}

fn index(name: &str, table: impl IntoIden) -> IndexCreateStatement {
    Index::create().name(name).table(table).to_owned()
}

/// `column >= 0`, as a column CHECK (portable: both SQLite and PostgreSQL accept column constraints).
fn non_negative(column: impl IntoIden + 'static) -> SimpleExpr {
    Expr::col(column).gte(0)
}

/// A money column in minor units that must not be negative.
fn amount(column: Products, nullable: bool) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    def.big_integer().check(non_negative(column));
    if nullable {
        def.null();
    } else {
        def.not_null();
    }
    def
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .col(ColumnDef::new(Categories::Id).uuid().not_null().primary_key())
                    // The lower-cased, hyphenated form of the name: uniqueness regardless of case and spacing.
                    .col(ColumnDef::new(Categories::Slug).string_len(120).not_null())
                    .col(ColumnDef::new(Categories::Name).string_len(100).not_null())
                    .col(ColumnDef::new(Categories::Description).text().null())
                    .col(ColumnDef::new(Categories::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Categories::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("uq_categories_slug", Categories::Table).col(Categories::Slug).unique().to_owned())
            .await?;
        manager.create_index(index("idx_categories_name", Categories::Table).col(Categories::Name).to_owned()).await?;

        manager
            .create_table(
                Table::create()
                    .table(Locations::Table)
                    .col(ColumnDef::new(Locations::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Locations::Name).string_len(100).not_null())
                    .col(ColumnDef::new(Locations::Address).text().null())
                    .col(ColumnDef::new(Locations::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("uq_locations_name", Locations::Table).col(Locations::Name).unique().to_owned())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .col(ColumnDef::new(Products::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Products::CategoryId).uuid().not_null())
                    .col(ColumnDef::new(Products::Sku).string_len(64).not_null())
                    .col(ColumnDef::new(Products::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Products::Description).text().null())
                    .col(ColumnDef::new(Products::Currency).char_len(3).not_null())
                    .col(amount(Products::PricePerDayMinor, false))
                    .col(amount(Products::PricePerWeekMinor, true))
                    .col(amount(Products::PricePerMonthMinor, true))
                    .col(amount(Products::DepositMinor, false).default(0))
                    .col(amount(Products::LateFeePerDayMinor, false).default(0))
                    .col(
                        ColumnDef::new(Products::BufferMinutes)
                            .integer()
                            .not_null()
                            .default(0)
                            .check(Expr::col(Products::BufferMinutes).between(0, 10_080)),
                    )
                    .col(ColumnDef::new(Products::IsActive).boolean().not_null().default(true))
                    .col(ColumnDef::new(Products::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Products::UpdatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_products_category")
                            .from(Products::Table, Products::CategoryId)
                            .to(Categories::Table, Categories::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("uq_products_sku", Products::Table).col(Products::Sku).unique().to_owned()).await?;
        manager
            .create_index(index("idx_products_category", Products::Table).col(Products::CategoryId).to_owned())
            .await?;
        // (sort column, id) pairs serve both the ORDER BY and the keyset seek of each sort of the product list.
        manager
            .create_index(index("idx_products_name", Products::Table).col(Products::Name).col(Products::Id).to_owned())
            .await?;
        manager
            .create_index(
                index("idx_products_created_at", Products::Table).col(Products::CreatedAt).col(Products::Id).to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_products_is_active_created_at", Products::Table)
                    .col(Products::IsActive)
                    .col(Products::CreatedAt)
                    .col(Products::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_products_price_per_day", Products::Table)
                    .col(Products::PricePerDayMinor)
                    .col(Products::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Units::Table)
                    .col(ColumnDef::new(Units::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Units::ProductId).uuid().not_null())
                    .col(ColumnDef::new(Units::SerialNumber).string_len(100).not_null())
                    .col(
                        ColumnDef::new(Units::Condition)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(Units::Condition).is_in(["new", "good", "fair", "damaged"])),
                    )
                    .col(ColumnDef::new(Units::LocationId).uuid().not_null())
                    .col(ColumnDef::new(Units::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_units_product")
                            .from(Units::Table, Units::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_units_location")
                            .from(Units::Table, Units::LocationId)
                            .to(Locations::Table, Locations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("uq_units_serial_number", Units::Table).col(Units::SerialNumber).unique().to_owned())
            .await?;
        manager.create_index(index("idx_units_product", Units::Table).col(Units::ProductId).to_owned()).await?;
        // Serves the `location` filter of the product list and the location foreign key.
        manager
            .create_index(
                index("idx_units_location", Units::Table).col(Units::LocationId).col(Units::ProductId).to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StockLevels::Table)
                    .col(ColumnDef::new(StockLevels::ProductId).uuid().not_null())
                    .col(ColumnDef::new(StockLevels::LocationId).uuid().not_null())
                    .col(
                        ColumnDef::new(StockLevels::Quantity)
                            .integer()
                            .not_null()
                            .check(non_negative(StockLevels::Quantity)),
                    )
                    .col(ColumnDef::new(StockLevels::UpdatedAt).timestamp_with_time_zone().not_null())
                    // The primary key's leading column also serves lookups by product.
                    .primary_key(Index::create().col(StockLevels::ProductId).col(StockLevels::LocationId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stock_levels_product")
                            .from(StockLevels::Table, StockLevels::ProductId)
                            .to(Products::Table, Products::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stock_levels_location")
                            .from(StockLevels::Table, StockLevels::LocationId)
                            .to(Locations::Table, Locations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The primary key (product_id, location_id) already serves lookups by product.
        manager
            .create_index(
                index("idx_stock_levels_location", StockLevels::Table)
                    .col(StockLevels::LocationId)
                    .col(StockLevels::ProductId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            StockLevels::Table.into_iden(),
            Units::Table.into_iden(),
            Products::Table.into_iden(),
            Locations::Table.into_iden(),
            Categories::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
