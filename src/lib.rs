//! Sigil: an OpenID Connect identity provider.

/// The commit this binary was built from (`git rev-parse --short HEAD`), or `unknown`.
pub const BUILD_COMMIT: &str = env!("SIGIL_COMMIT");

/// What `sigil --version` prints after the name: the version and the commit.
pub const VERSION_LINE: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SIGIL_COMMIT"), ")");

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
