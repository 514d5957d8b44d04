//! `sigil user …`

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::{open, print_json, read_input, read_stdin_secret, UsageError};
use crate::admin::users::{self as admin, links, NewUser, UserError};
use crate::audit::{By, Event, EventType};
use crate::clock::{rfc3339, Clock};
use crate::config::Settings;
use crate::crypto::{password, totp};
use crate::factors;
use crate::storage::{atomically, users, StorageError};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input. Prints the user as JSON.
    Add {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        email_verified: bool,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        admin: bool,
        /// A JSON object of further standard claims (given_name, locale, address, …).
        #[arg(long, value_name = "FILE")]
        claims: Option<PathBuf>,
        /// Read the password from standard input.
        #[arg(
            long,
            required_unless_present = "no_password",
            conflicts_with = "no_password"
        )]
        password_stdin: bool,
        /// Create the user without a password: the JSON printed holds a one-time link
        /// (`password_link.url`, valid 24 h) with which they choose one.
        #[arg(long)]
        no_password: bool,
    },
    /// Set a new password, read from standard input (ends the user's sessions and tokens).
    Passwd {
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Refuse sign-in for a user and end their sessions and tokens.
    Disable { username: String },
    /// Allow sign-in again.
    Enable { username: String },
    /// Invalidate every token and session issued to the user before now.
    LogoutEverywhere { username: String },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one user as JSON, with the account's sign-in counter.
    Show { username: String },
    /// Clear the account's sign-in counter (and those of its trusted browsers).
    Unlock { username: String },
    /// Delete a user.
    Remove { username: String },
    /// A new one-time password-set link for the user (replacing an earlier one), printed as
    /// JSON `{"url", "expires_at"}`; valid 24 h, used once.
    PasswordLink { username: String },
    /// The user's TOTP second factor.
    Totp {
        #[command(subcommand)]
        cmd: TotpCommand,
    },
    /// Ten new single-use recovery codes for the user (replacing earlier ones), printed once
    /// as JSON `{"codes": [...]}`.
    RecoveryCodes { username: String },
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Give the user a new TOTP factor, on at once (replacing any earlier one); prints JSON
    /// `{"secret": BASE32, "uri": "otpauth://totp/..."}` for their authenticator app.
    Add { username: String },
    /// Remove the user's TOTP factor and their recovery codes.
    Remove { username: String },
}

/// A password-set link as printed: its URL under the issuer and when it expires.
fn link_json(settings: &Settings, link: &links::IssuedLink) -> Value {
    json!({
        "url": link.url(&settings.issuer),
        "expires_at": rfc3339(link.expires_at),
    })
}

fn user_error(e: UserError) -> anyhow::Error {
    match e {
        UserError::Invalid(m) => UsageError(m).into(),
        UserError::Storage(s) => storage_error(s),
    }
}

pub(crate) fn storage_error(e: StorageError) -> anyhow::Error {
    match e {
        StorageError::NotFound(m) | StorageError::Conflict(m) => UsageError(m).into(),
        other => other.into(),
    }
}

fn find(core: &crate::bootstrap::Core, username: &str) -> anyhow::Result<users::UserRow> {
    core.db
        .with_conn(|c| users::by_username(c, username))
        .map_err(storage_error)?
        .ok_or_else(|| UsageError(format!("no user {username:?}")).into())
}

/// The audit event of a CLI change to the user `username`.
fn event(kind: EventType, username: &str) -> Event {
    By::cli().event(kind).target(username)
}

pub fn run(cmd: UserCommand, settings: &Settings) -> anyhow::Result<()> {
    let core = open(settings)?;
    let now = Clock::system().now();
    match cmd {
        UserCommand::Add {
            username,
            email,
            email_verified,
            name,
            admin,
            claims,
            password_stdin: _,
            no_password,
        } => {
            let claims: Map<String, Value> = match claims {
                Some(path) => serde_json::from_slice(&read_input(&path)?)
                    .map_err(|e| UsageError(format!("--claims must be a JSON object: {e}")))?,
                None => Map::new(),
            };
            let new = NewUser {
                username,
                email,
                email_verified,
                name,
                admin,
                claims,
            };
            let hash = if no_password {
                admin::check_new(&new).map_err(user_error)?;
                None
            } else {
                let secret = read_stdin_secret()?;
                admin::prepare(&new, &secret).map_err(user_error)?;
                Some(password::hash(&secret))
            };
            let created = core
                .db
                .with_conn(|c| admin::create(c, new, hash, links::DEFAULT_TTL, &By::cli(), now))
                .map_err(user_error)?;
            let mut shown = admin::describe(&created.user);
            if let Some(link) = &created.link {
                shown["password_link"] = link_json(settings, link);
            }
            print_json(&shown);
        }
        UserCommand::PasswordLink { username } => {
            let link = core
                .db
                .with_conn(|c| links::issue_for(c, &username, links::DEFAULT_TTL, &By::cli(), now))
                .map_err(storage_error)?;
            print_json(&link_json(settings, &link));
        }
        UserCommand::Passwd { username, .. } => {
            let secret = read_stdin_secret()?;
            core.db
                .with_conn(|c| admin::set_password(c, &username, &secret, &By::cli(), now))
                .map_err(user_error)?;
            eprintln!("password of {username} changed");
        }
        UserCommand::Disable { username } => {
            core.db
                .with_conn(|c| admin::disable(c, &username, &By::cli(), now))
                .map_err(storage_error)?;
            eprintln!("{username} disabled; their sessions and tokens no longer work");
        }
        UserCommand::Enable { username } => {
            core.db
                .with_conn(|c| admin::enable(c, &username, &By::cli(), now))
                .map_err(storage_error)?;
            eprintln!("{username} enabled");
        }
        UserCommand::LogoutEverywhere { username } => {
            core.db
                .with_conn(|c| admin::logout_everywhere(c, &username, &By::cli(), now))
                .map_err(storage_error)?;
            eprintln!(
                "tokens and sessions of {username} issued before {} are no longer valid",
                rfc3339(now)
            );
        }
        UserCommand::List { json } => {
            let rows = core.db.with_conn(users::all).map_err(storage_error)?;
            if json {
                print_json(&Value::Array(rows.iter().map(admin::describe).collect()));
            } else {
                println!(
                    "{:<24} {:<32} {:<6} {:<8} CREATED",
                    "USERNAME", "EMAIL", "ADMIN", "DISABLED"
                );
                for r in rows {
                    println!(
                        "{:<24} {:<32} {:<6} {:<8} {}",
                        r.username,
                        r.email.as_deref().unwrap_or("-"),
                        r.is_admin,
                        r.disabled,
                        rfc3339(r.created_at)
                    );
                }
            }
        }
        UserCommand::Show { username } => {
            let row = find(&core, &username)?;
            let mut shown = admin::describe(&row);
            shown["sign_in"] = core
                .db
                .with_conn(|c| admin::sign_in_state(c, &row, now))
                .map_err(storage_error)?;
            let held = core
                .db
                .with_conn(|c| factors::held(c, &row.id, true))
                .map_err(storage_error)?;
            shown["second_factors"] = serde_json::json!({
                "totp": held.totp,
                "recovery_codes": held.recovery_codes,
                "passkeys": held.passkeys,
            });
            shown["groups"] = core
                .db
                .with_conn(|c| crate::admin::groups::of_user(c, &row.id))
                .map_err(storage_error)?
                .into();
            print_json(&shown);
        }
        UserCommand::Unlock { username } => {
            core.db
                .with_conn(|c| admin::unlock(c, &username, &By::cli(), now))
                .map_err(storage_error)?;
            eprintln!("{username} unlocked: failed sign-ins forgotten");
        }
        UserCommand::Remove { username } => {
            core.db
                .with_conn(|c| admin::remove(c, &username, &By::cli(), now))
                .map_err(storage_error)?;
            eprintln!("{username} removed");
        }
        UserCommand::Totp {
            cmd: TotpCommand::Add { username },
        } => {
            let user = find(&core, &username)?;
            let secret = core
                .db
                .with_conn(|c| {
                    atomically(c, |c| {
                        let secret = factors::enrol_totp(c, &core.master, &user.id, true, now)?;
                        event(EventType::FactorTotpAdded, &username).record(c, now)?;
                        Ok::<_, StorageError>(secret)
                    })
                })
                .map_err(storage_error)?;
            print_json(&serde_json::json!({
                "secret": totp::encode_secret(&secret),
                "uri": totp::uri(&settings.totp_issuer(), &username, &secret),
            }));
        }
        UserCommand::Totp {
            cmd: TotpCommand::Remove { username },
        } => {
            let user = find(&core, &username)?;
            let removed = core
                .db
                .with_conn(|c| {
                    atomically(c, |c| {
                        let removed = factors::remove_totp(c, &user.id)?;
                        if removed {
                            event(EventType::FactorTotpRemoved, &username).record(c, now)?;
                        }
                        Ok::<_, StorageError>(removed)
                    })
                })
                .map_err(storage_error)?;
            if !removed {
                return Err(UsageError(format!("{username} has no TOTP factor")).into());
            }
            eprintln!("TOTP factor and recovery codes of {username} removed");
        }
        UserCommand::RecoveryCodes { username } => {
            let user = find(&core, &username)?;
            let codes = core
                .db
                .with_conn(|c| {
                    atomically(c, |c| {
                        let codes = factors::new_recovery_codes(c, &user.id, now)?;
                        event(EventType::FactorRecoveryCodesIssued, &username).record(c, now)?;
                        Ok::<_, StorageError>(codes)
                    })
                })
                .map_err(storage_error)?;
            print_json(&serde_json::json!({ "codes": codes }));
        }
    }
    Ok(())
}
