//! OpenAPI schemas of the domain enums that views carry (feature `openapi`). The domain crate stays free of
//! utoipa; each schema is built from the enum's own `ALL` and `as_str`, the names serde writes, so the two
//! cannot drift apart.

use std::borrow::Cow;

use rental_domain::{OrderStatus, Role, UnitCondition};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.into_iter().map(str::to_owned)))
        .description(Some(description))
        .into()
}

/// The schema of [`OrderStatus`].
#[derive(Debug)]
pub struct OrderStatusSchema;

impl PartialSchema for OrderStatusSchema {
    fn schema() -> RefOr<Schema> {
        string_enum(OrderStatus::ALL.iter().map(|s| s.as_str()), "Lifecycle state of a rental order.")
    }
}

impl ToSchema for OrderStatusSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OrderStatus")
    }
}

/// The schema of [`UnitCondition`].
#[derive(Debug)]
pub struct UnitConditionSchema;

impl PartialSchema for UnitConditionSchema {
    fn schema() -> RefOr<Schema> {
        string_enum(UnitCondition::ALL.iter().map(|c| c.as_str()), "State of an individually tracked unit.")
    }
}

impl ToSchema for UnitConditionSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("UnitCondition")
    }
}

/// The schema of [`Role`].
#[derive(Debug)]
pub struct RoleSchema;

impl PartialSchema for RoleSchema {
    fn schema() -> RefOr<Schema> {
        string_enum(Role::ALL.iter().map(|r| r.as_str()), "What a user may do.")
    }
}

impl ToSchema for RoleSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Role")
    }
}
