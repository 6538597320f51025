//! Rentals: maintenance blocks, orders with their lines, unit assignments and event log, invoices with
//! gap-free yearly numbering, and payments.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Units {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MaintenanceBlocks {
    Table,
    Id,
    UnitId,
    ProductId,
    StartsAt,
    EndsAt,
    Reason,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RentalOrders {
    Table,
    Id,
    CustomerId,
    Status,
    Currency,
    SubtotalMinor,
    TaxRateBp,
    TaxMinor,
    TotalMinor,
    DepositMinor,
    StartsAt,
    EndsAt,
    Notes,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    PickedUpAt,
    ReturnedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrderLines {
    Table,
    Id,
    OrderId,
    ProductId,
    Quantity,
    StartsAt,
    EndsAt,
    HoldUntil,
    HoldsStock,
    Currency,
    PricePerDayMinor,
    PricePerWeekMinor,
    PricePerMonthMinor,
    DepositPerUnitMinor,
    LateFeePerDayMinor,
    BufferMinutes,
    ChargedDays,
    Months,
    Weeks,
    Days,
    UnitPriceMinor,
    LineTotalMinor,
}

#[derive(DeriveIden)]
enum OrderLineUnits {
    Table,
    OrderLineId,
    UnitId,
    ProductId,
    StartsAt,
    HoldUntil,
    ReturnedCondition,
    DamageNote,
}

#[derive(DeriveIden)]
enum OrderEvents {
    Table,
    Id,
    OrderId,
    ActorId,
    FromStatus,
    ToStatus,
    Note,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Invoices {
    Table,
    Id,
    OrderId,
    CustomerId,
    Number,
    Year,
    Seq,
    Status,
    Currency,
    SubtotalMinor,
    TaxRateBp,
    TaxMinor,
    TotalMinor,
    AmountPaidMinor,
    IssuedAt,
    IssuedOn,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum InvoiceLines {
    Table,
    Id,
    InvoiceId,
    Kind,
    Description,
    Quantity,
    UnitAmountMinor,
    AmountMinor,
    Taxable,
    CreatedAt,
}

#[derive(DeriveIden)]
enum InvoiceCounters {
    Table,
    Year,
    LastSeq,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    InvoiceId,
    OrderId,
    AmountMinor,
    Currency,
    Method,
    Reference,
    RecordedBy,
    CreatedAt,
}

fn index(name: &str, table: impl IntoIden) -> IndexCreateStatement {
    Index::create().name(name).table(table).to_owned()
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(on_delete).to_owned()
}

/// A non-negative amount of money in minor units.
fn amount(column: impl IntoIden + Copy + 'static) -> ColumnDef {
    ColumnDef::new(column).big_integer().not_null().check(Expr::col(column).gte(0)).to_owned()
}

fn timestamp(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().not_null().to_owned()
}

const ORDER_STATUSES: [&str; 6] = ["quote", "reserved", "picked_up", "returned", "closed", "cancelled"];
const INVOICE_STATUSES: [&str; 4] = ["draft", "open", "paid", "void"];
const CONDITIONS: [&str; 4] = ["new", "good", "fair", "damaged"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MaintenanceBlocks::Table)
                    .col(ColumnDef::new(MaintenanceBlocks::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(MaintenanceBlocks::UnitId).uuid().not_null())
                    // The unit's product, so availability reads blocks by product without a join.
                    .col(ColumnDef::new(MaintenanceBlocks::ProductId).uuid().not_null())
                    .col(timestamp(MaintenanceBlocks::StartsAt))
                    .col(timestamp(MaintenanceBlocks::EndsAt))
                    .col(ColumnDef::new(MaintenanceBlocks::Reason).text().null())
                    .col(ColumnDef::new(MaintenanceBlocks::CreatedBy).uuid().null())
                    .col(timestamp(MaintenanceBlocks::CreatedAt))
                    .check(Expr::col(MaintenanceBlocks::EndsAt).gt(Expr::col(MaintenanceBlocks::StartsAt)))
                    .foreign_key(&mut fk(
                        "fk_maintenance_unit",
                        (MaintenanceBlocks::Table, MaintenanceBlocks::UnitId),
                        (Units::Table, Units::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_maintenance_product",
                        (MaintenanceBlocks::Table, MaintenanceBlocks::ProductId),
                        (Products::Table, Products::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_maintenance_product_ends", MaintenanceBlocks::Table)
                    .col(MaintenanceBlocks::ProductId)
                    .col(MaintenanceBlocks::EndsAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_maintenance_unit_ends", MaintenanceBlocks::Table)
                    .col(MaintenanceBlocks::UnitId)
                    .col(MaintenanceBlocks::EndsAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RentalOrders::Table)
                    .col(ColumnDef::new(RentalOrders::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(RentalOrders::CustomerId).uuid().not_null())
                    .col(
                        ColumnDef::new(RentalOrders::Status)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(RentalOrders::Status).is_in(ORDER_STATUSES)),
                    )
                    .col(ColumnDef::new(RentalOrders::Currency).char_len(3).not_null())
                    .col(amount(RentalOrders::SubtotalMinor))
                    .col(
                        ColumnDef::new(RentalOrders::TaxRateBp)
                            .integer()
                            .not_null()
                            .check(Expr::col(RentalOrders::TaxRateBp).between(0, 10_000)),
                    )
                    .col(amount(RentalOrders::TaxMinor))
                    .col(amount(RentalOrders::TotalMinor))
                    .col(amount(RentalOrders::DepositMinor))
                    // The envelope of the lines' periods: earliest start, latest end.
                    .col(timestamp(RentalOrders::StartsAt))
                    .col(timestamp(RentalOrders::EndsAt))
                    .col(ColumnDef::new(RentalOrders::Notes).text().null())
                    .col(ColumnDef::new(RentalOrders::CreatedBy).uuid().null())
                    .col(timestamp(RentalOrders::CreatedAt))
                    .col(timestamp(RentalOrders::UpdatedAt))
                    .col(ColumnDef::new(RentalOrders::PickedUpAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(RentalOrders::ReturnedAt).timestamp_with_time_zone().null())
                    .foreign_key(&mut fk(
                        "fk_rental_orders_customer",
                        (RentalOrders::Table, RentalOrders::CustomerId),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        // (filter column, sort column, id) triples serve the list's filters with the keyset seek.
        for (name, cols) in [
            ("idx_rental_orders_created_at", vec![RentalOrders::CreatedAt, RentalOrders::Id]),
            ("idx_rental_orders_starts_at", vec![RentalOrders::StartsAt, RentalOrders::Id]),
            (
                "idx_rental_orders_customer_created_at",
                vec![RentalOrders::CustomerId, RentalOrders::CreatedAt, RentalOrders::Id],
            ),
            (
                "idx_rental_orders_status_created_at",
                vec![RentalOrders::Status, RentalOrders::CreatedAt, RentalOrders::Id],
            ),
            // Overdue orders: picked up and past their end.
            ("idx_rental_orders_status_ends_at", vec![RentalOrders::Status, RentalOrders::EndsAt]),
        ] {
            let mut stmt = index(name, RentalOrders::Table);
            for col in cols {
                stmt.col(col);
            }
            manager.create_index(stmt).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(OrderLines::Table)
                    .col(ColumnDef::new(OrderLines::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(OrderLines::OrderId).uuid().not_null())
                    .col(ColumnDef::new(OrderLines::ProductId).uuid().not_null())
                    .col(
                        ColumnDef::new(OrderLines::Quantity)
                            .integer()
                            .not_null()
                            .check(Expr::col(OrderLines::Quantity).gt(0)),
                    )
                    .col(timestamp(OrderLines::StartsAt))
                    .col(timestamp(OrderLines::EndsAt))
                    // End of the period plus the product's buffer: the stock is held until then.
                    .col(timestamp(OrderLines::HoldUntil))
                    // True while the order holds its stock (reserved, picked up, returned until hold_until).
                    .col(ColumnDef::new(OrderLines::HoldsStock).boolean().not_null())
                    // Snapshot of the product's prices when the line was priced.
                    .col(ColumnDef::new(OrderLines::Currency).char_len(3).not_null())
                    .col(amount(OrderLines::PricePerDayMinor))
                    .col(ColumnDef::new(OrderLines::PricePerWeekMinor).big_integer().null())
                    .col(ColumnDef::new(OrderLines::PricePerMonthMinor).big_integer().null())
                    .col(amount(OrderLines::DepositPerUnitMinor))
                    .col(amount(OrderLines::LateFeePerDayMinor))
                    .col(ColumnDef::new(OrderLines::BufferMinutes).integer().not_null())
                    .col(ColumnDef::new(OrderLines::ChargedDays).integer().not_null())
                    .col(ColumnDef::new(OrderLines::Months).integer().not_null())
                    .col(ColumnDef::new(OrderLines::Weeks).integer().not_null())
                    .col(ColumnDef::new(OrderLines::Days).integer().not_null())
                    .col(amount(OrderLines::UnitPriceMinor))
                    .col(amount(OrderLines::LineTotalMinor))
                    .check(Expr::col(OrderLines::EndsAt).gt(Expr::col(OrderLines::StartsAt)))
                    .check(Expr::col(OrderLines::HoldUntil).gte(Expr::col(OrderLines::StartsAt)))
                    .foreign_key(&mut fk(
                        "fk_order_lines_order",
                        (OrderLines::Table, OrderLines::OrderId),
                        (RentalOrders::Table, RentalOrders::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_order_lines_product",
                        (OrderLines::Table, OrderLines::ProductId),
                        (Products::Table, Products::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_order_lines_order", OrderLines::Table).col(OrderLines::OrderId).to_owned())
            .await?;
        // Availability: the holds of one product that end after a point in time.
        manager
            .create_index(
                index("idx_order_lines_product_hold", OrderLines::Table)
                    .col(OrderLines::ProductId)
                    .col(OrderLines::HoldUntil)
                    .to_owned(),
            )
            .await?;

        // The availability filter of the product list: holds of a product that start inside a window.
        manager
            .create_index(
                index("idx_order_lines_product_starts", OrderLines::Table)
                    .col(OrderLines::ProductId)
                    .col(OrderLines::StartsAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrderLineUnits::Table)
                    .col(ColumnDef::new(OrderLineUnits::OrderLineId).uuid().not_null())
                    .col(ColumnDef::new(OrderLineUnits::UnitId).uuid().not_null())
                    .col(ColumnDef::new(OrderLineUnits::ProductId).uuid().not_null())
                    .col(timestamp(OrderLineUnits::StartsAt))
                    .col(timestamp(OrderLineUnits::HoldUntil))
                    .col(
                        ColumnDef::new(OrderLineUnits::ReturnedCondition)
                            .string_len(16)
                            .null()
                            .check(Expr::col(OrderLineUnits::ReturnedCondition).is_in(CONDITIONS)),
                    )
                    .col(ColumnDef::new(OrderLineUnits::DamageNote).text().null())
                    .primary_key(Index::create().col(OrderLineUnits::OrderLineId).col(OrderLineUnits::UnitId))
                    .foreign_key(&mut fk(
                        "fk_order_line_units_line",
                        (OrderLineUnits::Table, OrderLineUnits::OrderLineId),
                        (OrderLines::Table, OrderLines::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_order_line_units_unit",
                        (OrderLineUnits::Table, OrderLineUnits::UnitId),
                        (Units::Table, Units::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_order_line_units_unit_hold", OrderLineUnits::Table)
                    .col(OrderLineUnits::UnitId)
                    .col(OrderLineUnits::HoldUntil)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrderEvents::Table)
                    .col(ColumnDef::new(OrderEvents::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(OrderEvents::OrderId).uuid().not_null())
                    .col(ColumnDef::new(OrderEvents::ActorId).uuid().null())
                    .col(ColumnDef::new(OrderEvents::FromStatus).string_len(16).null())
                    .col(ColumnDef::new(OrderEvents::ToStatus).string_len(16).not_null())
                    .col(ColumnDef::new(OrderEvents::Note).text().null())
                    .col(timestamp(OrderEvents::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_order_events_order",
                        (OrderEvents::Table, OrderEvents::OrderId),
                        (RentalOrders::Table, RentalOrders::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_order_events_order", OrderEvents::Table)
                    .col(OrderEvents::OrderId)
                    .col(OrderEvents::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(InvoiceCounters::Table)
                    .col(ColumnDef::new(InvoiceCounters::Year).integer().not_null().primary_key())
                    .col(ColumnDef::new(InvoiceCounters::LastSeq).big_integer().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invoices::Table)
                    .col(ColumnDef::new(Invoices::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Invoices::OrderId).uuid().not_null())
                    .col(ColumnDef::new(Invoices::CustomerId).uuid().not_null())
                    // INV-YYYY-NNNNNN; NULL while the invoice is a draft (drafts are not numbered).
                    .col(ColumnDef::new(Invoices::Number).string_len(20).null())
                    .col(ColumnDef::new(Invoices::Year).integer().null())
                    .col(ColumnDef::new(Invoices::Seq).big_integer().null())
                    .col(
                        ColumnDef::new(Invoices::Status)
                            .string_len(8)
                            .not_null()
                            .check(Expr::col(Invoices::Status).is_in(INVOICE_STATUSES)),
                    )
                    .col(ColumnDef::new(Invoices::Currency).char_len(3).not_null())
                    .col(amount(Invoices::SubtotalMinor))
                    .col(ColumnDef::new(Invoices::TaxRateBp).integer().not_null())
                    .col(amount(Invoices::TaxMinor))
                    .col(amount(Invoices::TotalMinor))
                    .col(amount(Invoices::AmountPaidMinor))
                    .col(ColumnDef::new(Invoices::IssuedAt).timestamp_with_time_zone().null())
                    // The UTC day of issue, for per-day aggregates that read the same on both databases.
                    .col(ColumnDef::new(Invoices::IssuedOn).date().null())
                    .col(timestamp(Invoices::CreatedAt))
                    .col(timestamp(Invoices::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_invoices_order",
                        (Invoices::Table, Invoices::OrderId),
                        (RentalOrders::Table, RentalOrders::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_invoices_customer",
                        (Invoices::Table, Invoices::CustomerId),
                        (Users::Table, Users::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("uq_invoices_order", Invoices::Table).col(Invoices::OrderId).unique().to_owned())
            .await?;
        manager
            .create_index(index("uq_invoices_number", Invoices::Table).col(Invoices::Number).unique().to_owned())
            .await?;
        manager
            .create_index(
                index("uq_invoices_year_seq", Invoices::Table)
                    .col(Invoices::Year)
                    .col(Invoices::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Issued invoices still waiting for their number: a partial index, empty most of the time.
        manager
            .create_index(
                index("idx_invoices_unnumbered", Invoices::Table)
                    .col(Invoices::IssuedAt)
                    .col(Invoices::Id)
                    .and_where(Expr::col(Invoices::Number).is_null())
                    .and_where(Expr::col(Invoices::Status).is_in(["open", "paid"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_invoices_customer_created_at", Invoices::Table)
                    .col(Invoices::CustomerId)
                    .col(Invoices::CreatedAt)
                    .col(Invoices::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_invoices_created_at", Invoices::Table).col(Invoices::CreatedAt).col(Invoices::Id).to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_invoices_issued_on", Invoices::Table).col(Invoices::IssuedOn).to_owned())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(InvoiceLines::Table)
                    .col(ColumnDef::new(InvoiceLines::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(InvoiceLines::InvoiceId).uuid().not_null())
                    .col(
                        ColumnDef::new(InvoiceLines::Kind)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(InvoiceLines::Kind).is_in(["rental", "late_fee", "damage"])),
                    )
                    .col(ColumnDef::new(InvoiceLines::Description).text().not_null())
                    .col(ColumnDef::new(InvoiceLines::Quantity).integer().not_null())
                    .col(ColumnDef::new(InvoiceLines::UnitAmountMinor).big_integer().not_null())
                    .col(ColumnDef::new(InvoiceLines::AmountMinor).big_integer().not_null())
                    .col(ColumnDef::new(InvoiceLines::Taxable).boolean().not_null())
                    .col(timestamp(InvoiceLines::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_invoice_lines_invoice",
                        (InvoiceLines::Table, InvoiceLines::InvoiceId),
                        (Invoices::Table, Invoices::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("idx_invoice_lines_invoice", InvoiceLines::Table).col(InvoiceLines::InvoiceId).to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(ColumnDef::new(Payments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Payments::InvoiceId).uuid().not_null())
                    .col(ColumnDef::new(Payments::OrderId).uuid().not_null())
                    .col(
                        ColumnDef::new(Payments::AmountMinor)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(Payments::AmountMinor).gt(0)),
                    )
                    .col(ColumnDef::new(Payments::Currency).char_len(3).not_null())
                    .col(ColumnDef::new(Payments::Method).string_len(32).not_null())
                    .col(ColumnDef::new(Payments::Reference).string_len(200).null())
                    .col(ColumnDef::new(Payments::RecordedBy).uuid().null())
                    .col(timestamp(Payments::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_payments_invoice",
                        (Payments::Table, Payments::InvoiceId),
                        (Invoices::Table, Invoices::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_payments_order",
                        (Payments::Table, Payments::OrderId),
                        (RentalOrders::Table, RentalOrders::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_payments_order", Payments::Table).col(Payments::OrderId).to_owned()).await?;
        manager
            .create_index(index("idx_payments_invoice", Payments::Table).col(Payments::InvoiceId).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Payments::Table.into_iden(),
            InvoiceLines::Table.into_iden(),
            Invoices::Table.into_iden(),
            InvoiceCounters::Table.into_iden(),
            OrderEvents::Table.into_iden(),
            OrderLineUnits::Table.into_iden(),
            OrderLines::Table.into_iden(),
            RentalOrders::Table.into_iden(),
            MaintenanceBlocks::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
