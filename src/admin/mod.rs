//! Management operations shared by the CLI, the admin API and the console: users, groups,
//! clients, resource servers, sessions and keys. Each change takes who makes it (`audit::By`)
//! and records its audit event in its own transaction.

pub mod api;
pub mod audit;
pub mod cache;
pub mod clients;
pub mod groups;
pub mod keys;
pub mod registration;
pub mod resources;
pub mod sessions;
pub mod transfer;
pub mod users;
