//! Stock as SQL: a product's capacity (tracked units plus bulk quantities) and what is held of it at an
//! instant (order lines holding stock plus maintenance blocks). The one definition of "capacity minus holds"
//! that the reservation check, the product list's availability filter, the overbooking check and the seeder
//! read; the domain's [`rental_domain::availability::Timeline`] sweeps the same holds in memory.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query};

use crate::entity::{maintenance_block, order_line, stock_level, unit};

/// `(SELECT COUNT(*) FROM units WHERE product_id = <product>)`.
pub(crate) fn unit_count(product: Expr) -> Expr {
    Expr::from(
        Query::select()
            .expr(Expr::col((unit::Entity, unit::Column::Id)).count())
            .from(unit::Entity)
            .and_where(Expr::col((unit::Entity, unit::Column::ProductId)).eq(product))
            .to_owned(),
    )
}

/// `(SELECT COALESCE(SUM(quantity), 0) FROM stock_levels WHERE product_id = <product>)`, as a BIGINT on both
/// databases.
pub(crate) fn bulk_quantity(product: Expr) -> Expr {
    let sum = Expr::col((stock_level::Entity, stock_level::Column::Quantity)).sum();
    Expr::from(
        Query::select()
            .expr(Expr::from(Func::coalesce([sum, Expr::val(0)])).cast_as("bigint"))
            .from(stock_level::Entity)
            .and_where(Expr::col((stock_level::Entity, stock_level::Column::ProductId)).eq(product))
            .to_owned(),
    )
}

/// The capacity of `<product>`: its tracked units plus its bulk quantities, as a BIGINT.
pub(crate) fn capacity(product: &Expr) -> Expr {
    unit_count(product.clone()).add(bulk_quantity(product.clone())).cast_as("bigint")
}

/// Items of `<product>` held at instant `t`: the quantities of the order lines that hold stock over
/// `[starts_at, hold_until)` (the buffer is already in `hold_until`), plus one per maintenance block over
/// `[starts_at, ends_at)`.
pub(crate) fn held_at(product: &Expr, t: &Expr) -> Expr {
    let (lines, blocks) = (Alias::new("held_line"), Alias::new("held_block"));
    let line_holds = Query::select()
        .expr(Func::coalesce([Expr::col((lines.clone(), order_line::Column::Quantity)).sum(), Expr::val(0)]))
        .from_as(order_line::Entity, lines.clone())
        .and_where(Expr::col((lines.clone(), order_line::Column::ProductId)).eq(product.clone()))
        .and_where(Expr::col((lines.clone(), order_line::Column::HoldsStock)).eq(true))
        .and_where(Expr::col((lines.clone(), order_line::Column::StartsAt)).lte(t.clone()))
        .and_where(Expr::col((lines, order_line::Column::HoldUntil)).gt(t.clone()))
        .to_owned();
    let block_holds = Query::select()
        .expr(Expr::col((blocks.clone(), maintenance_block::Column::Id)).count())
        .from_as(maintenance_block::Entity, blocks.clone())
        .and_where(Expr::col((blocks.clone(), maintenance_block::Column::ProductId)).eq(product.clone()))
        .and_where(Expr::col((blocks.clone(), maintenance_block::Column::StartsAt)).lte(t.clone()))
        .and_where(Expr::col((blocks, maintenance_block::Column::EndsAt)).gt(t.clone()))
        .to_owned();
    Expr::from(line_holds).add(Expr::from(block_holds))
}
