//! sea-orm entities. Private to this crate: the repositories translate them into plain records.

pub(crate) mod category;
pub(crate) mod location;
pub(crate) mod product;
pub(crate) mod refresh_token;
pub(crate) mod stock_level;
pub(crate) mod unit;
pub(crate) mod user;
pub(crate) mod user_role;
