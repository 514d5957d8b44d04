//! `sigil client …`

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::users::storage_error;
use super::{open, print_json, read_input, UsageError};
use crate::admin::clients::{self as admin, ClientError};
use crate::audit::By;
use crate::clock::Clock;
use crate::config::{DurationSetting, RegistrationMode, Settings};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client from RFC 7591 metadata JSON; prints the RFC 7591 response, with the
    /// client_secret of a confidential client (shown this once).
    Add {
        #[arg(long, allow_hyphen_values = true)]
        client_id: Option<String>,
        /// Metadata file, or - for standard input (the default).
        #[arg(long, value_name = "FILE|-", default_value = "-")]
        metadata: PathBuf,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client's registered metadata as JSON (never its secret).
    Show {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Replace a client's whole registration with new RFC 7591 metadata (checked as at
    /// registration; the client id stays). Prints the client; a client that starts to use a
    /// secret-based method gets a client_secret, shown this once.
    Update {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Metadata file, or - for standard input (the default).
        #[arg(long, value_name = "FILE|-", default_value = "-")]
        metadata: PathBuf,
    },
    /// Give a client a new secret, printed once as JSON; the old one stops working.
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Issue an initial access token for one dynamic registration at /register (RFC 7591 §3,
    /// `registration.mode = token`); prints {"initial_access_token", "expires_at"}.
    InitialToken {
        /// How long the token may be used (1s to 30d).
        #[arg(long, default_value = "1h")]
        ttl: DurationSetting,
    },
    /// Delete a client.
    Remove {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

pub fn run(cmd: ClientCommand, settings: &Settings) -> anyhow::Result<()> {
    let core = open(settings)?;
    match cmd {
        ClientCommand::Add {
            client_id,
            metadata,
        } => {
            let json = read_input(&metadata)?;
            let now = Clock::system().now();
            let registered = core
                .db
                .with_conn(|c| admin::create(c, &core.master, &json, client_id, &By::cli(), now));
            print_json(&answer(registered)?);
        }
        ClientCommand::Update {
            client_id,
            metadata,
        } => {
            let json = read_input(&metadata)?;
            let now = Clock::system().now();
            let updated = core
                .db
                .with_conn(|c| admin::update(c, &core.master, &client_id, &json, &By::cli(), now));
            print_json(&answer(updated)?);
        }
        ClientCommand::RotateSecret { client_id } => {
            let now = Clock::system().now();
            let rotated = core
                .db
                .with_conn(|c| admin::rotate_secret(c, &core.master, &client_id, &By::cli(), now));
            print_json(&answer(rotated)?);
        }
        ClientCommand::List { json } => {
            let described = core.db.with_conn(admin::list).map_err(storage_error)?;
            if json {
                print_json(&Value::Array(described));
            } else {
                println!(
                    "{:<28} {:<24} {:<20} GRANT TYPES",
                    "CLIENT ID", "NAME", "AUTH METHOD"
                );
                for d in described {
                    let grants: Vec<&str> = d["grant_types"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    println!(
                        "{:<28} {:<24} {:<20} {}",
                        d["client_id"].as_str().unwrap_or(""),
                        d["client_name"].as_str().unwrap_or("-"),
                        d["token_endpoint_auth_method"].as_str().unwrap_or(""),
                        grants.join(" ")
                    );
                }
            }
        }
        ClientCommand::Show { client_id } => {
            let shown = core
                .db
                .with_conn(|c| admin::show(c, &client_id))
                .map_err(storage_error)?
                .ok_or_else(|| UsageError(format!("no client {client_id:?}")))?;
            print_json(&shown);
        }
        ClientCommand::InitialToken { ttl } => {
            let range = crate::admin::registration::INITIAL_TOKEN_TTL;
            if !range.contains(&ttl.as_secs()) || ttl.0.subsec_nanos() != 0 {
                return Err(UsageError(format!(
                    "--ttl must be whole seconds between 1s and 30d, not {ttl}"
                ))
                .into());
            }
            if settings.registration.mode != RegistrationMode::Token {
                eprintln!(
                    "note: registration.mode is not \"token\" in this configuration; /register \
                     takes initial access tokens only in that mode"
                );
            }
            let now = Clock::system().now();
            let issued = core
                .db
                .with_conn(|c| {
                    crate::admin::registration::issue_initial_token(
                        c,
                        ttl.as_secs(),
                        &By::cli(),
                        now,
                    )
                })
                .map_err(storage_error)?;
            print_json(&issued);
        }
        ClientCommand::Remove { client_id } => {
            let now = Clock::system().now();
            core.db
                .with_conn(|c| admin::remove(c, &client_id, &By::cli(), now))
                .map_err(storage_error)?;
            eprintln!("client {client_id} removed");
        }
    }
    Ok(())
}

/// The answer of a change, or its RFC 7591 error body on standard error and a usage error.
fn answer(result: Result<Value, ClientError>) -> anyhow::Result<Value> {
    match result {
        Ok(response) => Ok(response),
        Err(ClientError::Storage(e @ crate::storage::StorageError::Query(_))) => Err(e.into()),
        Err(e) => {
            eprintln!("{}", e.to_json());
            Err(UsageError(e.to_string()).into())
        }
    }
}
