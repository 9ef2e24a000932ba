//! Who may do what: teams, users and API keys (authentication), DataRobot's
//! roles on models and environments (the one access rule every door
//! applies), and signed URLs that carry their own authority.

pub mod roles;
pub mod auth;
pub mod signed_urls;
