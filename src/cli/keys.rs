//! `sigil keys …`

use clap::Subcommand;
use serde_json::{json, Value};

use super::users::storage_error;
use super::{open, print_json, UsageError};
use crate::clock::{rfc3339, Clock};
use crate::config::Settings;
use crate::crypto::keys::SigningAlg;
use crate::crypto::rotation::{self, KeyError, Lifecycle};
use crate::storage::signing_keys::{self, KeyRow};

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
}

fn describe(row: &KeyRow) -> Value {
    let date = |t: Option<i64>| t.map(rfc3339);
    json!({
        "kid": row.kid,
        "alg": row.alg,
        "state": row.state,
        "created_at": rfc3339(row.created_at),
        "activated_at": date(row.activated_at),
        "retiring_at": date(row.retiring_at),
        "retire_after": date(row.retire_after),
        "retired_at": date(row.retired_at),
    })
}

fn key_error(e: KeyError) -> anyhow::Error {
    match e {
        KeyError::Storage(s) => storage_error(s),
        KeyError::Generate(_) => e.into(),
        other => UsageError(other.to_string()).into(),
    }
}

pub fn run(cmd: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    let core = open(settings)?;
    let now = Clock::system().now();
    rotation::ensure_keys(&core.db, &core.master, now).map_err(key_error)?;
    match cmd {
        KeysCommand::List { json } => {
            let rows = core
                .db
                .with_conn(signing_keys::all)
                .map_err(storage_error)?;
            if json {
                print_json(&Value::Array(rows.iter().map(describe).collect()));
            } else {
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
            }
        }
        KeysCommand::Rotate { alg, force } => {
            let algs: Vec<SigningAlg> = alg
                .map(|a| vec![a])
                .unwrap_or_else(|| SigningAlg::ALL.to_vec());
            let done = rotation::rotate(
                &core.db,
                &core.master,
                Lifecycle::from_settings(settings),
                &algs,
                force,
                now,
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
        }
        KeysCommand::Retire { kid } => {
            let row = rotation::retire(&core.db, &core.master, &kid, now).map_err(key_error)?;
            tracing::info!(kid = %row.kid, "retired signing key");
            print_json(&describe(&row));
        }
    }
    Ok(())
}
