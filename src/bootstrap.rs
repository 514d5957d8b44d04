//! What the server and every CLI command open first: the database (migrated) and the master
//! key.

use std::path::PathBuf;

use crate::config::Settings;
use crate::crypto::master_key::MasterKey;
use crate::storage::{Database, DatabaseUrl};

pub const MASTER_KEY_FILE: &str = "sigil.master.key";

pub struct Core {
    pub db: Database,
    pub master: MasterKey,
}

impl Core {
    /// For the server: `database.min_idle` connections kept ready (default one).
    pub fn open(settings: &Settings) -> anyhow::Result<Self> {
        Self::open_with(settings, settings.database.min_idle)
    }

    /// For a one-shot command: connections opened on demand only.
    pub fn open_for_command(settings: &Settings) -> anyhow::Result<Self> {
        Self::open_with(settings, 0)
    }

    fn open_with(settings: &Settings, min_idle: u32) -> anyhow::Result<Self> {
        let url = DatabaseUrl::parse(settings.database_url.expose()).map_err(anyhow::Error::msg)?;
        let master = master_key(settings, &url)?;
        let db = Database::connect(
            &url,
            settings.database.max_connections,
            min_idle,
            settings.database.busy_timeout.0,
            settings.database.acquire_timeout.0,
        )?;
        let applied = db.migrate()?;
        for m in applied {
            tracing::info!(migration = %m, "applied migration");
        }
        Ok(Self { db, master })
    }
}

/// `master_key`, else `master_key_file`, else (SQLite only) `sigil.master.key` beside the
/// database file, created on first use.
fn master_key(settings: &Settings, url: &DatabaseUrl) -> anyhow::Result<MasterKey> {
    if let Some(key) = &settings.master_key {
        return Ok(MasterKey::from_base64(key.expose())?);
    }
    if let Some(path) = &settings.master_key_file {
        return Ok(MasterKey::read_file(path)?);
    }
    let DatabaseUrl::Sqlite(db_path) = url else {
        anyhow::bail!(
            "PostgreSQL needs master_key or master_key_file: every node sharing the database \
             must use the same master key"
        );
    };
    let path: PathBuf = db_path
        .parent()
        .map(|dir| dir.join(MASTER_KEY_FILE))
        .unwrap_or_else(|| MASTER_KEY_FILE.into());
    if path.exists() {
        return Ok(MasterKey::read_file(&path)?);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let key = MasterKey::create_file(&path)?;
    tracing::warn!(
        path = %path.display(),
        "created a new master key (mode 0600); back it up with the database: without it the \
         signing keys and client secrets cannot be opened"
    );
    Ok(key)
}
