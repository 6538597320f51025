use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stripe_deposits")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub hold_seq: i32,
    pub place_from: DateTimeUtc,
    pub payment_intent_id: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub amount_held_minor: i64,
    pub amount_captured_minor: i64,
    pub capture_requested_minor: Option<i64>,
    pub authorised_at: Option<DateTimeUtc>,
    pub attention: Option<String>,
    pub failure_reason: Option<String>,
    pub saves_card: bool,
    pub payment_method_id: Option<String>,
    pub reauth_seq: Option<i32>,
    pub release_intent_id: Option<String>,
    pub release_hold_seq: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
