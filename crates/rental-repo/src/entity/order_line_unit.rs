use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_line_units")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_line_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub unit_id: Uuid,
    pub product_id: Uuid,
    pub starts_at: DateTimeUtc,
    pub hold_until: DateTimeUtc,
    pub returned_condition: Option<String>,
    pub damage_note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
