//! `sigil keys …`

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use super::users::storage_error;
use super::{open, print_json, UsageError};
use crate::audit::By;
use crate::bootstrap::Core;
use crate::clock::{rfc3339, Clock};
use crate::config::Settings;
use crate::crypto::keys::SigningAlg;
use crate::crypto::master_key::MasterKey;
use crate::crypto::rewrap::{self, RewrapError};
use crate::crypto::rotation::{self, KeyError, Lifecycle};
use crate::storage::signing_keys;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys: kid, algorithm, state and dates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Promote the next key to active and the active key to retiring, and prepare a new next key.
    Rotate {
        /// Only this algorithm (RS256, PS256, ES256, EdDSA); all of them by default.
        #[arg(long)]
        alg: Option<SigningAlg>,
        /// Activate a next key that has not been published for 2 × keys.jwks_max_age yet
        /// (for a compromised key: clients with a cached JWKS will refetch it).
        #[arg(long)]
        force: bool,
    },
    /// Remove a next or retiring key from the JWKS now.
    Retire {
        /// The key id (it may start with "-").
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Re-encrypt every private key and client secret under a new master key, in one
    /// transaction; then point master_key_file at the new file on every node and restart them.
    Rewrap {
        /// The new master key: 32 random bytes, base64 (e.g. `openssl rand -base64 32`).
        #[arg(long, value_name = "FILE")]
        new_master_key_file: PathBuf,
    },
}

pub use crate::admin::keys::describe;

fn key_error(e: KeyError) -> anyhow::Error {
    match e {
        KeyError::Storage(s) => storage_error(s),
        KeyError::Generate(_) => e.into(),
        other => UsageError(other.to_string()).into(),
    }
}

fn rewrap_error(e: RewrapError) -> anyhow::Error {
    match e {
        RewrapError::Storage(s) => storage_error(s),
        other => UsageError(other.to_string()).into(),
    }
}

/// `keys rewrap`: the new key file is read before the database is opened, so a malformed one
/// changes nothing.
fn rewrap(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let new = MasterKey::read_file(file).map_err(|e| UsageError(e.to_string()))?;
    let core = open(settings)?;
    let done = rewrap::rewrap(&core.db, &core.master, &new, Clock::system().now())
        .map_err(rewrap_error)?;
    tracing::info!(
        signing_keys = done.signing_keys,
        client_secrets = done.client_secrets,
        already = done.already_under_new_key,
        "re-encrypted under a new master key"
    );
    print_json(&serde_json::to_value(&done)?);
    eprintln!(
        "everything is now sealed under {}: set master_key_file to it on every node and restart \
         them; keep the old key until they all run with the new one",
        file.display()
    );
    Ok(())
}

pub fn run(cmd: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { json } => list(&prepared(settings)?, json),
        KeysCommand::Rotate { alg, force } => rotate(&prepared(settings)?, settings, alg, force),
        KeysCommand::Retire { kid } => retire(&prepared(settings)?, &kid),
        KeysCommand::Rewrap {
            new_master_key_file,
        } => rewrap(settings, &new_master_key_file),
    }
}

/// The database, opened with every algorithm's active and next key in place.
fn prepared(settings: &Settings) -> anyhow::Result<Core> {
    let core = open(settings)?;
    rotation::ensure_keys(&core.db, &core.master, Clock::system().now()).map_err(key_error)?;
    Ok(core)
}

fn list(core: &Core, json: bool) -> anyhow::Result<()> {
    let rows = core
        .db
        .with_conn(signing_keys::all)
        .map_err(storage_error)?;
    if json {
        print_json(&Value::Array(rows.iter().map(describe).collect()));
        return Ok(());
    }
    println!(
        "{:<44} {:<6} {:<9} {:<21} {:<21} RETIRE AFTER",
        "KID", "ALG", "STATE", "CREATED", "ACTIVATED"
    );
    for r in rows {
        println!(
            "{:<44} {:<6} {:<9} {:<21} {:<21} {}",
            r.kid,
            r.alg,
            r.state,
            rfc3339(r.created_at),
            r.activated_at.map(rfc3339).unwrap_or_else(|| "-".into()),
            r.retire_after.map(rfc3339).unwrap_or_else(|| "-".into()),
        );
    }
    Ok(())
}

fn rotate(
    core: &Core,
    settings: &Settings,
    alg: Option<SigningAlg>,
    force: bool,
) -> anyhow::Result<()> {
    let algs: Vec<SigningAlg> = alg
        .map(|a| vec![a])
        .unwrap_or_else(|| SigningAlg::ALL.to_vec());
    let done = rotation::rotate(
        &core.db,
        &core.master,
        Lifecycle::from_settings(settings),
        &algs,
        force,
        Clock::system().now(),
        &By::cli(),
    )
    .map_err(key_error)?;
    for r in &done {
        tracing::info!(alg = %r.alg, activated = %r.activated, retiring = ?r.retiring, next = %r.next, "rotated signing key");
    }
    print_json(&serde_json::to_value(&done)?);
    eprintln!(
        "running servers switch within keys.refresh_interval ({})",
        settings.keys.refresh_interval
    );
    Ok(())
}

fn retire(core: &Core, kid: &str) -> anyhow::Result<()> {
    let row = rotation::retire(
        &core.db,
        &core.master,
        kid,
        Clock::system().now(),
        &By::cli(),
    )
    .map_err(key_error)?;
    tracing::info!(kid = %row.kid, "retired signing key");
    print_json(&describe(&row));
    Ok(())
}
