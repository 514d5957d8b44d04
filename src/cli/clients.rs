//! `sigil client …`

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::users::storage_error;
use super::{open, print_json, read_input, UsageError};
use crate::admin::clients::{self as admin, ClientError};
use crate::audit::{By, EventType};
use crate::clock::Clock;
use crate::config::Settings;
use crate::storage::{atomically, clients};

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
            let registered = core.db.with_conn(|c| {
                atomically(c, |c| {
                    let response = admin::register(c, &core.master, &json, client_id, now)?;
                    let id = response["client_id"].as_str().unwrap_or_default();
                    By::cli()
                        .event(EventType::ClientAdded)
                        .target(id)
                        .details(serde_json::json!({
                            "grant_types": response["grant_types"],
                            "scope": response["scope"],
                        }))
                        .record(c, now)?;
                    Ok::<_, ClientError>(response)
                })
            });
            match registered {
                Ok(response) => print_json(&response),
                Err(ClientError::Storage(e @ crate::storage::StorageError::Query(_))) => {
                    return Err(e.into())
                }
                Err(e) => {
                    eprintln!("{}", e.to_json());
                    return Err(UsageError(e.to_string()).into());
                }
            }
        }
        ClientCommand::List { json } => {
            let rows = core.db.with_conn(clients::all).map_err(storage_error)?;
            let described = rows
                .iter()
                .map(|r| admin::metadata_of(r).map(|m| admin::describe(r, &m)))
                .collect::<Result<Vec<_>, _>>()?;
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
            let row = core
                .db
                .with_conn(|c| clients::get(c, &client_id))
                .map_err(storage_error)?
                .ok_or_else(|| UsageError(format!("no client {client_id:?}")))?;
            print_json(&admin::describe(&row, &admin::metadata_of(&row)?));
        }
        ClientCommand::Remove { client_id } => {
            let now = Clock::system().now();
            core.db
                .with_conn(|c| {
                    atomically(c, |c| {
                        clients::remove(c, &client_id)?;
                        By::cli()
                            .event(EventType::ClientRemoved)
                            .target(client_id.as_str())
                            .record(c, now)
                    })
                })
                .map_err(storage_error)?;
            eprintln!("client {client_id} removed");
        }
    }
    Ok(())
}
