//! Storage with diesel: SQLite (embedded, the default) or PostgreSQL, chosen by the URL scheme,
//! behind one connection type so that every query is written once.

pub mod auth_requests;
pub mod client_assertions;
pub mod clients;
pub mod consents;
pub mod grants;
pub mod login_failures;
pub mod resources;
pub mod revisions;
pub mod revoked_tokens;
pub mod schema;
pub mod sessions;
pub mod signing_keys;
pub mod users;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection to whichever backend the URL named.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database connection: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database connection: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations: {0}")]
    Migration(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("stored data: {0}")]
    Corrupt(String),
    #[error("the blocking pool is gone")]
    Canceled,
}

/// The database URL, parsed: `sqlite://PATH`, `sqlite:PATH` or `postgres(ql)://…`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            // The URL may carry a password.
            Self::Postgres(_) => f.write_str("postgres://[redacted]"),
        }
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| "database_url must start with sqlite:// or postgres://".to_string())?;
        if path.is_empty() || path.contains(":memory:") {
            return Err("database_url: SQLite needs a file path (sqlite://sigil.db)".into());
        }
        Ok(Self::Sqlite(path.into()))
    }
}

/// Opens connections for the pool and sets SQLite up for concurrent use.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    busy_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn =
                    SqliteConnection::establish(&path).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

pub type Pool = r2d2::Pool<Manager>;

/// The pool, shared by the server (through `web::Data`) and the CLI.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    url: DatabaseUrl,
}

impl Database {
    /// `min_idle` connections are kept open; the CLI keeps none, so that no connection is
    /// being opened in the pool's background thread while the process exits.
    pub fn connect(
        url: &DatabaseUrl,
        max_connections: u32,
        min_idle: u32,
        busy_timeout: Duration,
    ) -> Result<Self, StorageError> {
        let manager = Manager {
            url: url.clone(),
            busy_timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(min_idle.min(max_connections)))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Self {
            pool,
            url: url.clone(),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Runs `f` with a pooled connection on the calling thread (the CLI, start-up).
    pub fn with_conn<T, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.pool.get().map_err(StorageError::from)?;
        f(&mut conn)
    }

    /// Runs `f` on the blocking pool, never on an async worker.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().map_err(StorageError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| E::from(StorageError::Canceled))?
    }

    /// Applies pending migrations; several nodes starting at once take turns.
    pub fn migrate(&self) -> Result<Vec<String>, StorageError> {
        self.with_conn(|conn| -> Result<_, StorageError> {
            let applied = match conn {
                AnyConnection::Sqlite(c) => c
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(|m| m.to_string()).collect()),
                AnyConnection::Postgresql(c) => {
                    c.batch_execute("SELECT pg_advisory_lock(7355608)")?;
                    let result = c
                        .run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map(|v| v.iter().map(|m| m.to_string()).collect());
                    c.batch_execute("SELECT pg_advisory_unlock(7355608)")?;
                    result
                }
            };
            applied.map_err(|e| StorageError::Migration(e.to_string()))
        })
    }

    /// `SELECT 1` for `/readyz`.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.run(|conn| -> Result<(), StorageError> { Ok(conn.batch_execute("SELECT 1")?) })
            .await
    }
}

/// Takes the named lock for the rest of the current transaction by writing its row first.
pub fn lock(conn: &mut AnyConnection, name: &str, now: i64) -> Result<(), StorageError> {
    use schema::locks::dsl;
    let n = diesel::update(dsl::locks.filter(dsl::name.eq(name)))
        .set(dsl::touched_at.eq(now))
        .execute(conn)?;
    if n != 1 {
        return Err(StorageError::Corrupt(format!(
            "lock row {name:?} is missing"
        )));
    }
    Ok(())
}

/// Unique-constraint violations become a clear conflict message.
pub(crate) fn conflict_on_unique(
    e: diesel::result::Error,
    what: impl FnOnce() -> String,
) -> StorageError {
    match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => StorageError::Conflict(what()),
        other => StorageError::Query(other),
    }
}

/// Whether `text` can be a stored value: PostgreSQL refuses NUL in text ("invalid byte
/// sequence for encoding UTF8: 0x00"), so nothing stored holds one, and a lookup by a value
/// from outside that does is answered "not found" without a query (found by fuzzing: a client
/// id with NUL was a 500 on PostgreSQL).
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn urls_pick_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://sigil.db").unwrap(),
            DatabaseUrl::Sqlite("sigil.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/sigil/sigil.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/sigil/sigil.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u:p@db/sigil").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert_eq!(
            format!(
                "{:?}",
                DatabaseUrl::parse("postgres://u:secret@db/sigil").unwrap()
            ),
            "postgres://[redacted]"
        );
    }
}
