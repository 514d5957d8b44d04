//! `sigil resource …`: resource servers (RFC 8707).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::users::storage_error;
use super::{open, print_json, read_input, UsageError};
use crate::admin::resources::{self as admin, ResourceError};
use crate::audit::By;
use crate::clock::Clock;
use crate::config::Settings;
use crate::storage::StorageError;

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Register a resource server from JSON (`resource`, `scope`, optional `access_token_ttl`,
    /// `jwks`, `access_token_encrypted_response_alg` / `_enc`); prints the stored record.
    Add {
        /// Metadata file, or - for standard input.
        #[arg(long, value_name = "FILE|-")]
        metadata: PathBuf,
    },
    /// List resource servers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one resource server's record as JSON.
    Show { resource: String },
    /// Delete a resource server.
    Remove { resource: String },
}

pub fn run(cmd: ResourceCommand, settings: &Settings) -> anyhow::Result<()> {
    let core = open(settings)?;
    match cmd {
        ResourceCommand::Add { metadata } => {
            let json = read_input(&metadata)?;
            let now = Clock::system().now();
            let registered = core
                .db
                .with_conn(|c| admin::create(c, &json, &By::cli(), now));
            match registered {
                Ok(record) => print_json(&to_json(&record)?),
                Err(ResourceError::Storage(e @ StorageError::Query(_))) => return Err(e.into()),
                Err(e) => {
                    eprintln!("{}", e.to_json());
                    return Err(UsageError(e.to_string()).into());
                }
            }
        }
        ResourceCommand::List { json } => {
            let records = core.db.with_conn(admin::list).map_err(storage_error)?;
            if json {
                print_json(&to_json(&records)?);
            } else {
                println!("{:<48} {:<8} SCOPE", "RESOURCE", "TTL");
                for r in records {
                    let ttl = r
                        .metadata
                        .access_token_ttl
                        .map_or_else(|| "-".to_string(), |t| t.to_string());
                    println!(
                        "{:<48} {:<8} {}",
                        r.metadata.resource, ttl, r.metadata.scope
                    );
                }
            }
        }
        ResourceCommand::Show { resource } => {
            let record = core
                .db
                .with_conn(|c| admin::show(c, &resource))
                .map_err(storage_error)?
                .ok_or_else(|| UsageError(format!("no resource {resource:?}")))?;
            print_json(&to_json(&record)?);
        }
        ResourceCommand::Remove { resource } => {
            let now = Clock::system().now();
            core.db
                .with_conn(|c| admin::remove(c, &resource, &By::cli(), now))
                .map_err(storage_error)?;
            eprintln!("resource {resource} removed");
        }
    }
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(value)?)
}
