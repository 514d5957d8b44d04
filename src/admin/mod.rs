//! Management operations shared by the CLI and the admin API: clients, users, groups, keys.

pub mod api;
pub mod audit;
pub mod cache;
pub mod clients;
pub mod groups;
pub mod resources;
pub mod users;
