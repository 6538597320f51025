//! sea-orm entities. Private to this crate: the repositories translate them into plain records.

pub(crate) mod refresh_token;
pub(crate) mod user;
pub(crate) mod user_role;
