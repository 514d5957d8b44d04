//! The browser side: session and CSRF cookies, the login, consent and logout pages,
//! back-channel logout, and brute-force protection for sign-in.

pub mod access_log;
pub mod account;
pub mod backchannel;
pub mod client_address;
pub mod consent;
pub mod console;
pub mod cookies;
pub mod device;
pub mod first_party;
pub mod flow;
pub mod forms;
pub mod login;
pub mod logout;
pub mod passkeys;
pub mod password_set;
pub mod second_factor;
pub mod session;
pub mod strength;
pub mod throttle;
