//! Which migrations a database has, against the ones this binary embeds: read only, so that a
//! command can look before it touches anything (diesel's own harness creates its table first).

use std::collections::BTreeSet;

use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_migrations::EmbeddedMigrations;

use super::{AnyConnection, StorageError, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

/// diesel's bookkeeping table: one row per applied migration, keyed by its version.
pub const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// How the database's schema stands against this binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every embedded migration applied, nothing else.
    Current,
    /// No migration applied at all: a new database.
    Empty,
    /// Some embedded migrations not applied yet (their names, oldest first).
    Behind(Vec<String>),
    /// Migrations applied that this binary does not know (their versions): a newer Sigil has
    /// been here.
    Newer(Vec<String>),
}

/// A schema a command cannot work on, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaMismatch {
    #[error(
        "the database has no Sigil schema yet; run `sigil migrate` (or start `sigil serve`) \
         to create it"
    )]
    Empty,
    #[error(
        "the database schema is older than this version of Sigil ({} pending: {}); run \
         `sigil migrate` to upgrade it",
        .0.len(),
        .0.join(", ")
    )]
    Behind(Vec<String>),
    #[error(
        "the database schema is newer than this version of Sigil (unknown migrations: {}): \
         a newer Sigil has upgraded it; run that version (this is sigil {})",
        .0.join(", "),
        crate::VERSION_LINE
    )]
    Newer(Vec<String>),
}

impl SchemaState {
    /// `Ok` when a command may use the database as it is.
    pub fn require_current(self) -> Result<(), SchemaMismatch> {
        match self {
            Self::Current => Ok(()),
            Self::Empty => Err(SchemaMismatch::Empty),
            Self::Behind(pending) => Err(SchemaMismatch::Behind(pending)),
            Self::Newer(unknown) => Err(SchemaMismatch::Newer(unknown)),
        }
    }
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    present: bool,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

/// Reads the applied versions and compares them with the embedded migrations; writes nothing.
pub fn state(conn: &mut AnyConnection) -> Result<SchemaState, StorageError> {
    let (exists, embedded) = match conn {
        AnyConnection::Sqlite(_) => (
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = '__diesel_schema_migrations') AS present",
            embedded::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS)?,
        ),
        AnyConnection::Postgresql(_) => (
            "SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS present",
            embedded::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS)?,
        ),
    };
    let present = diesel::sql_query(exists)
        .get_result::<Exists>(conn)?
        .present;
    let applied: BTreeSet<String> = if present {
        diesel::sql_query(format!("SELECT version FROM {MIGRATIONS_TABLE}"))
            .load::<Version>(conn)?
            .into_iter()
            .map(|v| v.version)
            .collect()
    } else {
        BTreeSet::new()
    };
    Ok(compare(&applied, &embedded))
}

/// The embedded migrations as (version, name), oldest first.
fn embedded<DB: diesel::backend::Backend>(
    source: &EmbeddedMigrations,
) -> Result<Vec<(String, String)>, StorageError> {
    let mut all: Vec<(String, String)> = MigrationSource::<DB>::migrations(source)
        .map_err(|e| StorageError::Migration(e.to_string()))?
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect();
    all.sort();
    Ok(all)
}

fn compare(applied: &BTreeSet<String>, embedded: &[(String, String)]) -> SchemaState {
    let known: BTreeSet<&str> = embedded.iter().map(|(v, _)| v.as_str()).collect();
    let unknown: Vec<String> = applied
        .iter()
        .filter(|v| !known.contains(v.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return SchemaState::Newer(unknown);
    }
    if applied.is_empty() {
        return SchemaState::Empty;
    }
    let pending: Vec<String> = embedded
        .iter()
        .filter(|(v, _)| !applied.contains(v))
        .map(|(_, name)| name.clone())
        .collect();
    if pending.is_empty() {
        SchemaState::Current
    } else {
        SchemaState::Behind(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(versions: &[&str]) -> BTreeSet<String> {
        versions.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn applied_versions_are_compared_with_the_embedded_ones() {
        let embedded = vec![
            ("1".to_string(), "m1_first".to_string()),
            ("2".to_string(), "m2_second".to_string()),
        ];
        assert_eq!(compare(&set(&["1", "2"]), &embedded), SchemaState::Current);
        assert_eq!(compare(&set(&[]), &embedded), SchemaState::Empty);
        assert_eq!(
            compare(&set(&["1"]), &embedded),
            SchemaState::Behind(vec!["m2_second".into()])
        );
        assert_eq!(
            compare(&set(&["1", "2", "3"]), &embedded),
            SchemaState::Newer(vec!["3".into()])
        );
        // Newer wins over behind: the binary must not touch a schema it does not know.
        assert_eq!(
            compare(&set(&["1", "3"]), &embedded),
            SchemaState::Newer(vec!["3".into()])
        );
    }

    #[test]
    fn both_trees_embed_the_same_versions() {
        let sqlite = embedded::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS).unwrap();
        let postgres = embedded::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS).unwrap();
        assert_eq!(sqlite, postgres);
        assert!(sqlite
            .iter()
            .all(|(v, _)| v.bytes().all(|b| b.is_ascii_digit())));
    }
}
