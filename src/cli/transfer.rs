//! `sigil export`, `sigil import`, `sigil backup`: moving Sigil's data between databases
//! (SQLite → PostgreSQL, or back) and copying a live SQLite database.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{open, read_input, UsageError};
use crate::admin::transfer::{self, ImportError};
use crate::clock::Clock;
use crate::config::Settings;
use crate::storage::{transfer as stored, DatabaseUrl, StorageError};

#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// Write users, groups, clients, resource servers and consents (secrets still sealed
    /// under the master key) as one JSON document; import it with the same master key.
    Export {
        /// Include the signing keys, so that tokens issued before a move still verify.
        #[arg(long)]
        with_keys: bool,
        /// Write to FILE (mode 0600) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Load an export into a database that holds no users, clients or resource servers yet
    /// (its signing keys give way to the document's, if it has any).
    Import {
        /// The export document, or - for standard input.
        file: PathBuf,
        /// Add to a database already in use; any conflict is reported and nothing changes.
        #[arg(long)]
        merge: bool,
    },
    /// Copy the live SQLite database to FILE, consistently, while Sigil runs (PostgreSQL:
    /// use pg_dump).
    Backup {
        /// Where the copy goes; must not exist yet.
        file: PathBuf,
    },
}

/// The clients Sigil registers for itself, which an export leaves out and an import skips.
fn first_party() -> [&'static str; 2] {
    [
        crate::web::account::SITE.client_id,
        crate::web::console::SITE.client_id,
    ]
}

pub fn run(cmd: TransferCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        TransferCommand::Export { with_keys, output } => export(settings, with_keys, output),
        TransferCommand::Import { file, merge } => import(settings, &file, merge),
        TransferCommand::Backup { file } => backup(settings, &file),
    }
}

/// Creates (or truncates) `path` readable by its owner only.
fn private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    Ok(options.open(path)?)
}

fn export(settings: &Settings, with_keys: bool, output: Option<PathBuf>) -> anyhow::Result<()> {
    let core = open(settings)?;
    let now = Clock::system().now();
    let (doc, snapshot) = core
        .db
        .with_conn(|c| transfer::export(c, with_keys, &first_party(), now))?;
    let mut text = serde_json::to_vec_pretty(&doc)?;
    text.push(b'\n');
    match &output {
        Some(path) => {
            let mut file = private_file(path)?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        None => std::io::stdout().write_all(&text)?,
    }
    eprintln!(
        "exported {}{}; secrets are sealed under this database's master key: import with the \
         same master key",
        transfer::summary(&snapshot),
        if with_keys {
            ""
        } else {
            " (no signing keys: tokens issued here will not verify there)"
        }
    );
    Ok(())
}

fn import(settings: &Settings, file: &Path, merge: bool) -> anyhow::Result<()> {
    let bytes = read_input(file)?;
    let core = open(settings)?;
    let now = Clock::system().now();
    let fp = first_party();
    let outcome = transfer::parse(&bytes)
        .and_then(|doc| transfer::to_snapshot(doc, &core.master, &fp))
        .and_then(|s| transfer::import(&core.db, &s, merge, &fp, now).map(|()| s));
    match outcome {
        Ok(s) => {
            super::print_json(&serde_json::json!({ "imported": transfer::summary(&s) }));
            if s.signing_keys.is_some() {
                eprintln!(
                    "the signing keys were replaced by the document's; running nodes load them \
                     within keys.refresh_interval"
                );
            }
            Ok(())
        }
        Err(ImportError::Storage(e)) => Err(e.into()),
        Err(e) => Err(UsageError(e.to_string()).into()),
    }
}

fn backup(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    if let Ok(DatabaseUrl::Postgres(_)) = DatabaseUrl::parse(settings.database_url.expose()) {
        return Err(UsageError(
            "sigil backup copies SQLite databases; back up PostgreSQL with pg_dump \
             (pg_dump --format=custom --file=sigil.dump DATABASE_URL) and keep the master key \
             apart from it"
                .into(),
        )
        .into());
    }
    if file.exists() {
        return Err(UsageError(format!(
            "{} exists already; name a new file",
            file.display()
        ))
        .into());
    }
    let target = file
        .to_str()
        .ok_or_else(|| UsageError("the backup path must be UTF-8".into()))?;
    let core = open(settings)?;
    // Created empty with mode 0600 first: VACUUM INTO fills an empty file and keeps its mode.
    drop(private_file(file)?);
    let copied = core.db.with_conn(|c| stored::backup_sqlite(c, target));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(file);
        return Err(match e {
            StorageError::Conflict(m) => UsageError(m).into(),
            e => e.into(),
        });
    }
    eprintln!(
        "backed up to {}; the master key is not in it: keep a copy of it (master_key_file, or \
         sigil.master.key beside the database) apart from the backup",
        file.display()
    );
    Ok(())
}
