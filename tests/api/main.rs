//! Integration tests: the real application over real HTTP, a fresh database per test, on
//! SQLite and PostgreSQL.

mod flow;
mod helpers;

mod authorization_code;
mod authorize;
mod browser;
mod cli;
mod discovery;
mod health;
mod introspection;
mod jwks;
mod keys;
mod login;
mod migrations;
mod refresh_and_userinfo;
mod rp;
mod secrets_at_rest;
mod token;
