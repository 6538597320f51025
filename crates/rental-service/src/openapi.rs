//! OpenAPI schemas of the domain enums that views carry (feature `openapi`). The domain crate stays free of
//! utoipa; each schema is built from the enum's own `ALL` and `as_str`, the names serde writes, so the two
//! cannot drift apart.

use std::borrow::Cow;

use rental_domain::{OrderStatus, Role, UnitCondition};
use rental_repo::JobState;
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

/// Defines `$schema`, the schema of the domain enum `$domain` under that enum's name.
macro_rules! string_enum_schema {
    ($schema:ident, $domain:ident, $description:literal) => {
        #[doc = concat!("The schema of [`", stringify!($domain), "`].")]
        #[derive(Debug)]
        pub struct $schema;

        impl PartialSchema for $schema {
            fn schema() -> RefOr<Schema> {
                string_enum($domain::ALL.iter().map(|value| value.as_str()), $description)
            }
        }

        impl ToSchema for $schema {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($domain))
            }
        }
    };
}

string_enum_schema!(OrderStatusSchema, OrderStatus, "Lifecycle state of a rental order.");
string_enum_schema!(UnitConditionSchema, UnitCondition, "State of an individually tracked unit.");
string_enum_schema!(RoleSchema, Role, "What a user may do.");
string_enum_schema!(JobStateSchema, JobState, "Where a background job is in its life.");
