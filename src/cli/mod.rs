//! The `sigil` command line. Every command reads the same configuration as the server, so the
//! CLI and a running server see the same database.

pub mod audit;
pub mod clients;
pub mod config;
pub mod groups;
pub mod keys;
pub mod resources;
pub mod transfer;
pub mod users;

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::bootstrap::Core;
use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "sigil",
    version = crate::VERSION_LINE,
    about = "Sigil, an OpenID Connect identity provider"
)]
pub struct Cli {
    /// Configuration file (default: sigil.toml when present; also SIGIL_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the identity provider (migrates the database and creates signing keys on first start).
    Serve,
    /// Apply pending database migrations and prepare signing keys, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(users::UserCommand),
    /// Manage groups and their members (the `groups` claim).
    #[command(subcommand)]
    Group(groups::GroupCommand),
    /// Manage OAuth clients (RFC 7591 metadata).
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage resource servers (RFC 8707 resource indicators).
    #[command(subcommand)]
    Resource(resources::ResourceCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run Sigil with two demo relying parties on two origins and a demo user.
    Demo(crate::demo::DemoArgs),
    /// Check the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    #[command(flatten)]
    Transfer(transfer::TransferCommand),
}

/// A failure the user can act on; printed without a backtrace, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Cli {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        Ok(self.load_settings()?.settings)
    }

    /// The settings and the `SIGIL_*` variables they ignored.
    pub fn load_settings(&self) -> anyhow::Result<crate::config::Loaded> {
        let file = self
            .config
            .clone()
            .or_else(|| std::env::var_os("SIGIL_CONFIG").map(PathBuf::from));
        Ok(Settings::load_reporting(file.as_deref())?)
    }
}

/// Opens the database for a management command; a schema behind or ahead of this binary is
/// refused (status 2) with what to do.
pub fn open(settings: &Settings) -> anyhow::Result<Core> {
    Core::open_for_command(settings).map_err(usage_on_schema)
}

/// Opens the database for `sigil migrate`, migrating it.
pub fn open_to_migrate(settings: &Settings) -> anyhow::Result<Core> {
    Core::open_to_migrate(settings).map_err(usage_on_schema)
}

fn usage_on_schema(e: anyhow::Error) -> anyhow::Error {
    match crate::bootstrap::schema_mismatch(&e) {
        Some(m) => UsageError(m.to_string()).into(),
        None => e,
    }
}

/// Reads all of standard input and drops one trailing newline.
pub fn read_stdin_secret() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    if let Some(stripped) = text.strip_suffix('\n') {
        text = stripped.strip_suffix('\r').unwrap_or(stripped).to_string();
    }
    Ok(text)
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
