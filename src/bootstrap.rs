//! What the server and every CLI command open first: the database and the master key.
//!
//! Only `serve` and `migrate` change the schema. Every other command finds it as this binary
//! expects or refuses to run (`SchemaMismatch`: run `sigil migrate`), and nothing, `migrate`
//! included, touches a schema newer than this binary knows.

use std::path::PathBuf;

use crate::config::Settings;
use crate::crypto::master_key::MasterKey;
use crate::storage::schema_version::SchemaMismatch;
use crate::storage::{Database, DatabaseUrl};

pub const MASTER_KEY_FILE: &str = "sigil.master.key";

pub struct Core {
    pub db: Database,
    pub master: MasterKey,
}

impl Core {
    /// For the server: `database.min_idle` connections kept ready (default one); migrates.
    pub fn open(settings: &Settings) -> anyhow::Result<Self> {
        Self::open_migrating(settings, settings.database.min_idle)
    }

    /// For `sigil migrate`: connections opened on demand only; migrates.
    pub fn open_to_migrate(settings: &Settings) -> anyhow::Result<Self> {
        Self::open_migrating(settings, 0)
    }

    /// For any other command: connections opened on demand only, and a schema exactly as
    /// this binary expects it, else a [`SchemaMismatch`] before anything is created.
    pub fn open_for_command(settings: &Settings) -> anyhow::Result<Self> {
        let url = parse_url(settings)?;
        if let DatabaseUrl::Sqlite(path) = &url {
            if !path.exists() {
                return Err(SchemaMismatch::Empty.into());
            }
        }
        let db = connect(settings, &url, 0)?;
        db.schema_state()?.require_current()?;
        let master = master_key(settings, &url)?;
        Ok(Self { db, master })
    }

    fn open_migrating(settings: &Settings, min_idle: u32) -> anyhow::Result<Self> {
        let url = parse_url(settings)?;
        let master = master_key(settings, &url)?;
        let db = connect(settings, &url, min_idle)?;
        let applied = db.migrate()?;
        for m in applied {
            tracing::info!(migration = %m, "applied migration");
        }
        Ok(Self { db, master })
    }
}

fn parse_url(settings: &Settings) -> anyhow::Result<DatabaseUrl> {
    DatabaseUrl::parse(settings.database_url.expose()).map_err(anyhow::Error::msg)
}

fn connect(settings: &Settings, url: &DatabaseUrl, min_idle: u32) -> anyhow::Result<Database> {
    Ok(Database::connect(
        url,
        settings.database.max_connections,
        min_idle,
        settings.database.busy_timeout.0,
        settings.database.acquire_timeout.0,
    )?)
}

/// The schema mismatch inside `e`, if that is what it is.
pub fn schema_mismatch(e: &anyhow::Error) -> Option<&SchemaMismatch> {
    e.downcast_ref::<SchemaMismatch>().or_else(|| {
        match e.downcast_ref::<crate::storage::StorageError>() {
            Some(crate::storage::StorageError::Schema(m)) => Some(m),
            _ => None,
        }
    })
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
