//! `sigil audit …`: the stored audit log.

use clap::Subcommand;
use serde_json::Value;

use super::users::storage_error;
use super::{open, print_json, UsageError};
use crate::admin::audit::{self as admin, Query};
use crate::clock::{rfc3339, Clock};
use crate::config::Settings;
use crate::storage::audit as stored;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first: time, actor, client address, type, target, outcome.
    List {
        /// One JSON array (each event with its details) instead of a table.
        #[arg(long)]
        json: bool,
        /// Only events of the last DURATION (1h, 7d), or since an RFC 3339 time.
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Only events by this actor: a username, a user or client id, `cli` or `scheduler`.
        #[arg(long, value_name = "A", allow_hyphen_values = true)]
        actor: Option<String>,
        /// Only events of this type (user.created, signin.failed, keys.rotated, ...).
        #[arg(long = "type", value_name = "T")]
        event_type: Option<String>,
        /// Only events on this target (a username, client id, resource URI or key id).
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        target: Option<String>,
        /// At most N events (default 100, at most 1000).
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
    },
}

pub fn run(cmd: AuditCommand, settings: &Settings) -> anyhow::Result<()> {
    let AuditCommand::List {
        json,
        since,
        actor,
        event_type,
        target,
        limit,
    } = cmd;
    let query = Query {
        actor,
        target,
        event_type,
        since,
        until: None,
        before: None,
        limit,
    };
    // The filters are checked before the database is opened.
    let filter = query.filter(Clock::system().now()).map_err(UsageError)?;
    let core = open(settings)?;
    let rows = core
        .db
        .with_conn(|c| stored::list(c, &filter))
        .map_err(storage_error)?;
    if json {
        print_json(&Value::Array(rows.iter().map(admin::describe).collect()));
        return Ok(());
    }
    println!(
        "{:<20} {:<24} {:<39} {:<30} {:<32} OUTCOME",
        "TIME", "ACTOR", "ADDRESS", "TYPE", "TARGET"
    );
    for r in rows {
        let actor = match (&r.actor_name, r.actor_kind.as_str()) {
            (Some(name), _) => name.clone(),
            (None, "client") => format!("client:{}", r.actor),
            (None, _) => r.actor.clone(),
        };
        println!(
            "{:<20} {:<24} {:<39} {:<30} {:<32} {}",
            rfc3339(r.time),
            actor,
            r.client_address.as_deref().unwrap_or("-"),
            r.event_type,
            r.target.as_deref().unwrap_or("-"),
            r.outcome
        );
    }
    Ok(())
}
