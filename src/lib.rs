//! Sigil: an OpenID Connect identity provider.

pub mod admin;
pub mod audit;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod deadline;
pub mod demo;
pub mod endpoints;
pub mod factors;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod published;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tokens;
pub mod web;
