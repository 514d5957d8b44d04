//! Integration tests: the real application over real HTTP, a fresh database per test, on
//! SQLite and PostgreSQL.

mod flow;
mod helpers;
mod instant;
mod pg_cluster;
mod server_process;

mod account;
mod admin_api;
mod authorization_code;
mod authorize;
mod backchannel;
mod browser;
mod brute_force;
mod cli;
mod client_assertion;
mod crash;
mod discovery;
mod encrypted_responses;
mod health;
mod introspection;
mod jose_attacks;
mod jwks;
mod key_schedule;
mod keys;
mod limits;
mod log_levels;
mod login;
mod logout;
mod maintenance;
mod migrations;
mod outage;
mod outbound_proxy;
mod properties;
mod races;
mod refresh_and_userinfo;
mod resources;
mod revocation;
mod rewrap;
mod rp;
mod secrets_at_rest;
mod slow_clients;
mod step_up;
mod token;
mod two_nodes;
