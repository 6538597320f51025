use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub category_id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub currency: String,
    pub price_per_day_minor: i64,
    pub price_per_week_minor: Option<i64>,
    pub price_per_month_minor: Option<i64>,
    pub deposit_minor: i64,
    pub late_fee_per_day_minor: i64,
    pub buffer_minutes: i32,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
