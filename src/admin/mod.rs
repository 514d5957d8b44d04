//! Management operations shared by the CLI and the admin API: clients, users, keys.

pub mod clients;
pub mod users;
