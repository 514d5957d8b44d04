//! Tokens Sigil mints.

pub mod access_token;
