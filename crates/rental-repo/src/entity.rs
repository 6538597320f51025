//! sea-orm entities. Private to this crate: the repositories translate them into plain records.

pub(crate) mod category;
pub(crate) mod idempotency_key;
pub(crate) mod invoice;
pub(crate) mod invoice_counter;
pub(crate) mod invoice_line;
pub(crate) mod job;
pub(crate) mod location;
pub(crate) mod maintenance_block;
pub(crate) mod order_event;
pub(crate) mod order_line;
pub(crate) mod order_line_unit;
pub(crate) mod password_reset;
pub(crate) mod payment;
pub(crate) mod product;
pub(crate) mod refresh_token;
pub(crate) mod rental_order;
pub(crate) mod schedule;
pub(crate) mod stock_level;
pub(crate) mod stripe_customer;
pub(crate) mod stripe_deposit;
pub(crate) mod stripe_payment;
pub(crate) mod stripe_refund;
pub(crate) mod unit;
pub(crate) mod user;
pub(crate) mod user_role;
pub(crate) mod webhook_event;
