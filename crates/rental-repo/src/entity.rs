//! sea-orm entities. Private to this crate: the repositories translate them into plain records.

pub(crate) mod category;
pub(crate) mod invoice;
// Not read or written yet: the live rental flow will use it.
#[allow(dead_code)]
pub(crate) mod invoice_counter;
pub(crate) mod invoice_line;
pub(crate) mod location;
// Not read or written yet: the live rental flow will use it.
#[allow(dead_code)]
pub(crate) mod maintenance_block;
pub(crate) mod order_event;
pub(crate) mod order_line;
// Not read or written yet: the live rental flow will use it.
#[allow(dead_code)]
pub(crate) mod order_line_unit;
// Not read or written yet: the live rental flow will use it.
#[allow(dead_code)]
pub(crate) mod payment;
pub(crate) mod product;
pub(crate) mod refresh_token;
pub(crate) mod rental_order;
pub(crate) mod stock_level;
pub(crate) mod unit;
pub(crate) mod user;
pub(crate) mod user_role;
