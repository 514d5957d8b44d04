//! The browser side: session and CSRF cookies, the login and consent pages, and brute-force
//! protection for sign-in.

pub mod consent;
pub mod cookies;
pub mod flow;
pub mod forms;
pub mod login;
pub mod session;
pub mod throttle;
