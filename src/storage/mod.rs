//! Storage with diesel: SQLite (embedded, the default) or PostgreSQL, chosen by the URL scheme,
//! behind one connection type so that every query is written once.

pub mod audit;
pub mod auth_requests;
pub mod client_assertions;
pub mod clients;
pub mod consents;
pub mod device_codes;
pub mod devices;
pub mod dpop_jtis;
pub mod factors;
pub mod grants;
pub mod groups;
pub mod login_failures;
pub mod maintenance;
pub mod passkeys;
pub mod password_links;
mod pool;
pub mod pushed_requests;
pub mod registrations;
pub mod resources;
pub mod revisions;
pub mod revoked_tokens;
pub mod schema;
pub mod schema_version;
pub mod sessions;
pub mod signing_keys;
pub mod transfer;
pub mod users;
mod waits;

use pool::QuietErrors;
pub use pool::{Manager, Pool};
pub use waits::PoolReport;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2;
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
    #[error(transparent)]
    Schema(#[from] schema_version::SchemaMismatch),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("stored data: {0}")]
    Corrupt(String),
    #[error("the blocking pool is gone")]
    Canceled,
    #[error("every database connection stayed busy for the wait")]
    Busy,
}

impl StorageError {
    /// Whether the database cannot be used for now — no connection within the wait (it is
    /// down, unreachable, or every connection is busy), a connection lost mid-query, SQLite's
    /// lock held past `busy_timeout` — as opposed to a fault of the query or the data. Such an
    /// error is answered 503 with `Retry-After`, never 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Busy => true,
            Self::Connect(e) => matches!(
                e,
                diesel::ConnectionError::BadConnection(_)
                    | diesel::ConnectionError::CouldntSetupConfiguration(_)
            ),
            Self::Query(e) => query_unavailable(e),
            _ => false,
        }
    }
}

fn query_unavailable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match e {
        // libpq: the connection is gone (diesel maps SQLSTATE class 08 and CONNECTION_BAD here).
        Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _) => true,
        // SQLITE_BUSY / SQLITE_LOCKED after busy_timeout: contention, not a fault.
        Error::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("database is locked") || m.contains("database table is locked")
        }
        Error::BrokenTransactionManager => true,
        Error::RollbackErrorOnCommit {
            rollback_error,
            commit_error,
        } => query_unavailable(rollback_error) || query_unavailable(commit_error),
        _ => false,
    }
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

/// The pool, shared by the server (through `web::Data`) and the CLI.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    url: DatabaseUrl,
    acquire_timeout: Duration,
    reachable: Arc<Reachable>,
    /// One permit per connection: a request waits for its turn here, asynchronously, before
    /// it takes a blocking thread, so a flood holds as many threads as there are connections
    /// instead of one thread (a stack and a malloc arena) per waiting request.
    turns: Arc<tokio::sync::Semaphore>,
    max_connections: u32,
    waits: Arc<waits::Waits>,
}

/// Whether the last attempt to get a connection succeeded: an outage is logged once at WARN
/// when it starts and once at INFO when it ends, not once per request.
#[derive(Debug)]
struct Reachable(AtomicBool);

impl Reachable {
    fn up(&self) {
        if !self.0.load(Ordering::Relaxed) && !self.0.swap(true, Ordering::Relaxed) {
            tracing::info!("database connections work again");
        }
    }

    fn down(&self, wait: Duration, error: &r2d2::PoolError) {
        if self.0.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                %error,
                wait_ms = wait.as_millis() as u64,
                "no database connection within the wait (the database is down, unreachable, \
                 or every connection is busy); requests are answered 503 until one is had"
            );
        }
    }
}

impl Database {
    /// `min_idle` connections are kept open; the CLI keeps none, so that no connection is
    /// being opened in the pool's background thread while the process exits. A caller waits
    /// at most `acquire_timeout` for a connection (r2d2 keeps retrying in the background, at
    /// least every `acquire_timeout / 2`, so connections come back by themselves when the
    /// database does).
    pub fn connect(
        url: &DatabaseUrl,
        max_connections: u32,
        min_idle: u32,
        busy_timeout: Duration,
        acquire_timeout: Duration,
    ) -> Result<Self, StorageError> {
        // OpenSSL is set up here first, the way the `openssl` crate does it: without an atexit
        // cleanup. Left to libpq, the first TLS connection to PostgreSQL would register that
        // cleanup, which then frees OpenSSL's state at process exit while pool threads may
        // still be using it (a test run ended in SIGSEGV after its last test).
        openssl::init();
        let manager = Manager {
            url: url.clone(),
            busy_timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(min_idle.min(max_connections)))
            .connection_timeout(acquire_timeout)
            .error_handler(Box::new(QuietErrors))
            .build(manager)?;
        Ok(Self {
            pool,
            url: url.clone(),
            acquire_timeout,
            reachable: Arc::new(Reachable(AtomicBool::new(true))),
            turns: Arc::new(tokio::sync::Semaphore::new(max_connections as usize)),
            max_connections,
            waits: Default::default(),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The connections open and idle now, and the waits for one since start (`/metrics`).
    pub fn pool_report(&self) -> PoolReport {
        PoolReport::new(self.pool.state(), self.max_connections, &self.waits)
    }

    /// False from a failed wait for a connection until the next connection is had: background
    /// tasks log their failures below WARN meanwhile, since the outage itself was logged once.
    pub fn is_reachable(&self) -> bool {
        self.reachable.0.load(Ordering::Relaxed)
    }

    /// Runs `f` with a pooled connection on the calling thread (the CLI, start-up, background
    /// tasks).
    pub fn with_conn<T, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let called = Instant::now();
        let mut conn = self.acquire(called, called + self.acquire_timeout, false)?;
        f(&mut conn)
    }

    /// Runs `f` on the blocking pool, never on an async worker, waiting at most
    /// `database.acquire_timeout` for a connection.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        self.run_within(self.acquire_timeout, f).await
    }

    /// `run` with its own wait for a connection. The wait is counted from the call, not from
    /// when a blocking thread picks the closure up: during an outage every closure holds its
    /// thread for the whole wait, and a burst queues behind them; a closure whose wait has
    /// passed in the queue tries once for an idle connection and gives up at once, so no
    /// request waits longer than its wait however many arrive.
    pub async fn run_within<T, E, F>(&self, wait: Duration, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    {
        let called = Instant::now();
        let deadline = called + wait;
        // The semaphore is never closed; a turn free at once is taken even at the deadline.
        let (turn, waited) = match self.turns.clone().try_acquire_owned() {
            Ok(turn) => (turn, false),
            Err(_) => {
                let turn =
                    tokio::time::timeout_at(deadline.into(), self.turns.clone().acquire_owned())
                        .await;
                let Ok(turn) = turn else {
                    self.waits.record(called.elapsed(), true);
                    return Err(E::from(StorageError::Busy));
                };
                (turn.map_err(|_| E::from(StorageError::Canceled))?, true)
            }
        };
        let db = self.clone();
        actix_web::web::block(move || {
            let _turn = turn;
            let mut conn = db.acquire(called, deadline, waited)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| E::from(StorageError::Canceled))?
    }

    /// A connection by `deadline` for a call made at `called`, which `waited` for its turn.
    fn acquire(
        &self,
        called: Instant,
        deadline: Instant,
        waited: bool,
    ) -> Result<r2d2::PooledConnection<Manager>, StorageError> {
        // An idle connection at once: the common case, where no wait is counted.
        let idle = self.pool.try_get();
        if idle.is_some() && waited {
            self.waits.record(called.elapsed(), false);
        }
        // Even past the deadline an idle connection is taken (r2d2 tests it first).
        let got = idle.map(Ok).unwrap_or_else(|| {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let got = self.pool.get_timeout(wait);
            self.waits.record(called.elapsed(), got.is_err());
            got
        });
        match got {
            Ok(conn) => {
                self.reachable.up();
                Ok(conn)
            }
            Err(e) => {
                self.reachable.down(self.acquire_timeout, &e);
                Err(StorageError::Pool(e))
            }
        }
    }

    /// Applies pending migrations; several nodes starting at once take turns. A schema newer
    /// than this binary knows is refused and left as it is.
    pub fn migrate(&self) -> Result<Vec<String>, StorageError> {
        self.with_conn(|conn| -> Result<_, StorageError> {
            let postgres = matches!(conn, AnyConnection::Postgresql(_));
            if postgres {
                conn.batch_execute("SELECT pg_advisory_lock(7355608)")?;
            }
            let result = run_migrations(conn);
            if postgres {
                conn.batch_execute("SELECT pg_advisory_unlock(7355608)")?;
            }
            result
        })
    }

    /// How the schema stands against this binary's migrations, changing nothing.
    pub fn schema_state(&self) -> Result<schema_version::SchemaState, StorageError> {
        self.with_conn(schema_version::state)
    }

    /// `SELECT 1` for `/readyz`, waiting at most `wait` for a connection.
    pub async fn ping(&self, wait: Duration) -> Result<(), StorageError> {
        self.run_within(wait, |conn| -> Result<(), StorageError> {
            Ok(conn.batch_execute("SELECT 1")?)
        })
        .await
    }
}

fn run_migrations(conn: &mut AnyConnection) -> Result<Vec<String>, StorageError> {
    if let schema_version::SchemaState::Newer(unknown) = schema_version::state(conn)? {
        return Err(schema_version::SchemaMismatch::Newer(unknown).into());
    }
    let applied = match conn {
        AnyConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.to_string()).collect()),
        AnyConnection::Postgresql(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.iter().map(|m| m.to_string()).collect()),
    };
    applied.map_err(|e| StorageError::Migration(e.to_string()))
}

/// A statement diesel's DSL cannot express on [`AnyConnection`] (an upsert with a condition),
/// written once with numbered placeholders (`$1`, `$2`, …, each may repeat): PostgreSQL reads
/// them as they are, and SQLite reads the same numbers as `?1`, `?2`, …. The text must hold no
/// other `$`.
pub(crate) fn numbered_sql(conn: &AnyConnection, text: &str) -> diesel::query_builder::SqlQuery {
    match conn {
        AnyConnection::Postgresql(_) => diesel::sql_query(text),
        AnyConnection::Sqlite(_) => diesel::sql_query(text.replace('$', "?")),
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

/// `conn.transaction(f)`, except that on SQLite an outermost transaction begins `IMMEDIATE`,
/// taking the write lock (waiting up to `busy_timeout` for it) before its first statement. A
/// deferred one that reads and then writes fails at once with "database is locked" when
/// another connection wrote meanwhile — SQLite cannot wait there without risking a deadlock —
/// so thirty concurrent changes of one row got 503s. Every transaction of Sigil's writes, so
/// every one begins this way.
pub fn transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let AnyConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    let outermost = AnsiTransactionManager::transaction_manager_status_mut(sqlite)
        .transaction_depth()?
        .is_none();
    if !outermost {
        return conn.transaction(f);
    }
    AnsiTransactionManager::begin_transaction_sql(&mut *sqlite, "BEGIN IMMEDIATE")?;
    // Committed or rolled back through the connection's own manager, which hands it to
    // SQLite's (the one that began it).
    type Manager = <AnyConnection as Connection>::TransactionManager;
    match f(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            Manager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// Runs `change` in one transaction (a savepoint inside an open one), for callers whose error
/// type is not diesel's: a change and its audit event commit together or not at all.
pub fn atomically<T, E: From<StorageError>>(
    conn: &mut AnyConnection,
    change: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E> {
    enum Failed<E> {
        Change(E),
        Database(diesel::result::Error),
    }
    impl<E> From<diesel::result::Error> for Failed<E> {
        fn from(e: diesel::result::Error) -> Self {
            Self::Database(e)
        }
    }
    transaction::<T, Failed<E>, _>(conn, |c| change(c).map_err(Failed::Change)).map_err(|e| match e
    {
        Failed::Change(e) => e,
        Failed::Database(e) => StorageError::Query(e).into(),
    })
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
    use std::time::{Duration, Instant};

    use diesel::result::{DatabaseErrorKind, Error};

    use super::{Database, DatabaseUrl, StorageError};

    fn db_error(kind: DatabaseErrorKind, message: &str) -> StorageError {
        StorageError::Query(Error::DatabaseError(kind, Box::new(message.to_string())))
    }

    #[test]
    fn unavailability_is_told_apart_from_faults() {
        for unavailable in [
            db_error(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection",
            ),
            db_error(
                DatabaseErrorKind::UnableToSendCommand,
                "no connection to the server",
            ),
            db_error(DatabaseErrorKind::Unknown, "database is locked"),
            StorageError::Query(Error::BrokenTransactionManager),
            StorageError::Connect(diesel::ConnectionError::BadConnection("refused".into())),
        ] {
            assert!(unavailable.is_unavailable(), "{unavailable}");
        }
        for fault in [
            db_error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            db_error(DatabaseErrorKind::Unknown, "no such table: users"),
            StorageError::Query(Error::NotFound),
            StorageError::Corrupt("bad row".into()),
            StorageError::Canceled,
            StorageError::Connect(diesel::ConnectionError::InvalidConnectionUrl("x".into())),
        ] {
            assert!(!fault.is_unavailable(), "{fault}");
        }
    }

    /// A burst while no connection can be had (here: the pool's only one is held) queues on
    /// the blocking pool; each request's wait counts from its call, so the queue drains at
    /// once instead of every request waiting in turn (8 × 250 ms through one blocking thread).
    #[test]
    fn waits_for_a_connection_count_from_the_call_not_from_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let wait = Duration::from_millis(250);
        let db = Database::connect(&url, 1, 0, Duration::from_secs(1), wait).unwrap();
        let held = db.pool.get().unwrap();
        let probe = db.clone();
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(1)
                .build()
                .unwrap()
        };
        let (took, failed) = actix_web::rt::System::with_tokio_rt(runtime).block_on(async move {
            let started = Instant::now();
            let pings: Vec<_> = (0..8)
                .map(|_| {
                    let db = db.clone();
                    actix_web::rt::spawn(async move { db.ping(wait).await })
                })
                .collect();
            let mut failed = 0;
            for p in pings {
                let result = p.await.unwrap();
                failed += usize::from(result.is_err_and(|e| e.is_unavailable()));
            }
            (started.elapsed(), failed)
        });
        assert_eq!(failed, 8, "every ping is refused as unavailable");
        assert!(took < 4 * wait, "8 queued waits took {took:?}");
        assert!(!probe.is_reachable(), "the outage is remembered");
        drop(held);
        probe
            .with_conn(|_| Ok::<_, super::StorageError>(()))
            .unwrap();
        assert!(
            probe.is_reachable(),
            "and forgotten with the next connection"
        );
    }

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
