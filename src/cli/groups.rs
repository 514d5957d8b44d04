//! `sigil group …`

use clap::Subcommand;
use serde_json::Value;

use super::users::storage_error;
use super::{open, print_json, UsageError};
use crate::admin::groups::{self as admin, Added, GroupError};
use crate::audit::By;
use crate::clock::{rfc3339, Clock};
use crate::config::Settings;
use crate::storage::groups::GroupListing;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group (name: 1–64 characters of A–Z a–z 0–9 - _ . : /). Prints it as JSON.
    Add { name: String },
    /// Delete a group and every membership in it.
    Remove { name: String },
    /// Give a group a new name; its members stay.
    Rename { name: String, new_name: String },
    /// List groups with their member counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// List a group's members.
    Members {
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// Add or remove members.
    Member {
        #[command(subcommand)]
        cmd: MemberCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Make a user a member of a group (nothing changes when they already are one).
    Add { group: String, username: String },
    /// End a user's membership of a group.
    Remove { group: String, username: String },
}

fn group_error(e: GroupError) -> anyhow::Error {
    match e {
        GroupError::Invalid(m) => UsageError(m).into(),
        GroupError::Storage(s) => storage_error(s),
    }
}

pub fn run(cmd: GroupCommand, settings: &Settings) -> anyhow::Result<()> {
    let core = open(settings)?;
    let now = Clock::system().now();
    match cmd {
        GroupCommand::Add { name } => {
            let row = core
                .db
                .with_conn(|c| admin::add(c, &name, &By::cli(), now))
                .map_err(group_error)?;
            print_json(&admin::describe(&GroupListing {
                group: row,
                members: 0,
            }));
        }
        GroupCommand::Remove { name } => {
            core.db
                .with_conn(|c| admin::remove(c, &name, &By::cli(), now))
                .map_err(group_error)?;
            eprintln!("group {name} removed");
        }
        GroupCommand::Rename { name, new_name } => {
            core.db
                .with_conn(|c| admin::rename(c, &name, &new_name, &By::cli(), now))
                .map_err(group_error)?;
            eprintln!("group {name} renamed to {new_name}");
        }
        GroupCommand::List { json } => {
            let rows = core.db.with_conn(admin::list).map_err(storage_error)?;
            if json {
                print_json(&Value::Array(rows.iter().map(admin::describe).collect()));
            } else {
                println!("{:<40} {:>8} CREATED", "NAME", "MEMBERS");
                for r in rows {
                    println!(
                        "{:<40} {:>8} {}",
                        r.group.name,
                        r.members,
                        rfc3339(r.group.created_at)
                    );
                }
            }
        }
        GroupCommand::Members { group, json } => {
            let members = core
                .db
                .with_conn(|c| admin::members(c, &group))
                .map_err(storage_error)?;
            if json {
                print_json(&Value::Array(
                    members.iter().map(admin::describe_member).collect(),
                ));
            } else {
                println!("{:<40} ADDED", "USERNAME");
                for m in members {
                    println!("{:<40} {}", m.username, rfc3339(m.added_at));
                }
            }
        }
        GroupCommand::Member {
            cmd: MemberCommand::Add { group, username },
        } => {
            let added = core
                .db
                .with_conn(|c| admin::add_member(c, &group, &username, &By::cli(), now))
                .map_err(group_error)?;
            match added {
                Added::Now => eprintln!("{username} added to {group}"),
                Added::Already => eprintln!("{username} was already a member of {group}"),
            }
        }
        GroupCommand::Member {
            cmd: MemberCommand::Remove { group, username },
        } => {
            core.db
                .with_conn(|c| admin::remove_member(c, &group, &username, &By::cli(), now))
                .map_err(group_error)?;
            eprintln!("{username} removed from {group}");
        }
    }
    Ok(())
}
