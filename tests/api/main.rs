//! Integration tests: the real application over real HTTP, a fresh database per test, on
//! SQLite and PostgreSQL.

mod flow;
mod helpers;
mod instant;

mod admin_api;
mod authorization_code;
mod authorize;
mod backchannel;
mod browser;
mod cli;
mod client_assertion;
mod discovery;
mod encrypted_responses;
mod health;
mod introspection;
mod jose_attacks;
mod jwks;
mod key_schedule;
mod keys;
mod login;
mod logout;
mod migrations;
mod properties;
mod refresh_and_userinfo;
mod resources;
mod revocation;
mod rewrap;
mod rp;
mod secrets_at_rest;
mod token;
mod two_nodes;
