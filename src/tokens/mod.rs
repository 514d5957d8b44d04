//! Tokens Sigil mints.

pub mod access_token;
pub mod claims;
pub mod id_token;
pub mod jwe;
pub mod logout_token;
pub mod validate;
pub mod verdicts;
