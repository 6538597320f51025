use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub quantity: i32,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub hold_until: DateTimeUtc,
    pub holds_stock: bool,
    pub currency: String,
    pub price_per_day_minor: i64,
    pub price_per_week_minor: Option<i64>,
    pub price_per_month_minor: Option<i64>,
    pub deposit_per_unit_minor: i64,
    pub late_fee_per_day_minor: i64,
    pub buffer_minutes: i32,
    pub charged_days: i32,
    pub months: i32,
    pub weeks: i32,
    pub days: i32,
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
    /// Usage-mark changes not yet recorded: +1 when the line became rented, −1 when it stopped.
    pub usage_pending: i16,
    /// The order is reserved or picked up (the dashboard's "held now" reads these lines); kept by the
    /// order's transitions.
    pub order_holding: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
