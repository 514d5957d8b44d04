//! Purging (DESIGN.md "Maintenance", SECURITY.md 27): every table with expiring rows is kept the
//! size of its live data. Each purge is listed once below: the table and the rows that can no
//! longer have any effect, found through an index (migration 000004 added the expiry indexes).
//! Rows go in batches: one `DELETE` of at most `maintenance.batch_size` rows per statement, and
//! so one short transaction per batch, so SQLite's write lock is held for milliseconds; a bounded
//! number of batches per run, so one run cannot take forever; a pause between batches as long as
//! the batch took, so writers waiting for the lock get it. On PostgreSQL the batch skips rows
//! another node is deleting (`FOR UPDATE SKIP LOCKED`), so nodes purging at the same moment share
//! the work and never wait for, or deadlock on, each other.

use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel::RunQueryDsl;

use super::{AnyConnection, Database, StorageError};

/// One kind of row that has expired, and how to find it.
#[derive(Debug)]
pub struct Purge {
    /// The table, as logged and counted (`sigil_purged_rows_total{table=…}`).
    pub table: &'static str,
    /// Which rows go; `$1` is the cutoff. Every purge reads an index on its first column.
    expired: &'static str,
    cutoff: Cutoff,
}

/// What `$1` is for a purge.
#[derive(Debug, Clone, Copy)]
enum Cutoff {
    /// The current time.
    Now,
    /// The current time less `sessions.idle_timeout`.
    IdleSince,
    /// The current time less `audit.retention`.
    RetainedSince,
}

/// Every purge, in the order a run makes them: first what unauthenticated requests create, then
/// what sign-ins leave. Grants come before codes and refresh tokens, which their deletion
/// cascades to (indexes `authorization_codes_grant`, `refresh_tokens_grant`).
pub const PURGES: [Purge; 17] = [
    // Parked authorization requests nobody finished: what unauthenticated requests create most.
    Purge {
        table: "auth_requests",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Pushed authorization requests (RFC 9126) nobody came for: they live 60 seconds.
    Purge {
        table: "pushed_requests",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Device authorizations (RFC 8628) past their lifetime, decided or not (index
    // `device_codes_expiry`): anyone can start one for a public client.
    Purge {
        table: "device_codes",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // WebAuthn ceremonies nobody finished (five minutes; index `webauthn_ceremonies_expiry`):
    // the login page's passkey button starts one without any sign-in.
    Purge {
        table: "webauthn_ceremonies",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // RFC 7523 §3 assertion ids, kept until the assertion's `exp` plus the clock skew.
    Purge {
        table: "client_assertions",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // RFC 9449 §11.1 DPoP proof ids (PostgreSQL), kept while their proof could be accepted
    // (index `dpop_jtis_expiry`): any client can send proofs.
    Purge {
        table: "dpop_jtis",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // RFC 7009 deny-list entries past the token's own `exp`: the token is refused by it alone.
    Purge {
        table: "revoked_tokens",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Failure counters past their window. A key still locked stays, whatever its
    // `expires_at` says: purging must never lift a lockout.
    Purge {
        table: "login_failures",
        expired: "expires_at <= $1 AND locked_until <= $1",
        cutoff: Cutoff::Now,
    },
    // Sessions past their absolute lifetime, and ended ones (`sessions::end` moves `expires_at`
    // to the end).
    Purge {
        table: "sessions",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Sessions idle past `sessions.idle_timeout`: `web::session` no longer accepts them.
    Purge {
        table: "sessions",
        expired: "last_seen_at <= $1",
        cutoff: Cutoff::IdleSince,
    },
    // Grants after which no token of theirs can be valid: every token expired, or revoked that
    // long ago (`grants.expires_at`, moved forward by each token the grant issues and by its
    // revocation). Their codes and refresh tokens go with them (ON DELETE CASCADE).
    Purge {
        table: "grants",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Codes live 60 s (RFC 6749 §4.1.2 "a maximum authorization code lifetime of 10 minutes");
    // an expired one is refused whatever its row says.
    Purge {
        table: "authorization_codes",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Refresh tokens past their lifetime, used or not: an expired one is refused.
    Purge {
        table: "refresh_tokens",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Browsers trusted for an account (the `sigil_device` cookie) past their year.
    Purge {
        table: "trusted_devices",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // One-time password-set links past their expiry (index `password_links_expiry`): an
    // expired link is refused whatever its row says.
    Purge {
        table: "password_links",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Initial access tokens for dynamic registration (RFC 7591 §3) past their expiry, unused
    // (index `initial_access_tokens_expiry`): an expired one is refused whatever its row says.
    Purge {
        table: "initial_access_tokens",
        expired: "expires_at <= $1",
        cutoff: Cutoff::Now,
    },
    // Audit events older than `audit.retention` (index `audit_events_time`).
    Purge {
        table: "audit_events",
        expired: "time <= $1",
        cutoff: Cutoff::RetainedSince,
    },
];

/// The moment a run purges for.
#[derive(Debug, Clone, Copy)]
pub struct Horizon {
    pub now: i64,
    /// `sessions.idle_timeout`, in seconds.
    pub idle_timeout: i64,
    /// `audit.retention`, in seconds.
    pub audit_retention: i64,
}

/// How much one run may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows per statement (`maintenance.batch_size`).
    pub batch_size: u32,
    /// Statements per table and run.
    pub max_batches: u32,
}

/// Statements per table and run: with the default batch of 1000, up to 100,000 rows of a table
/// a run, far above what a flood can park in one interval.
pub const MAX_BATCHES_PER_RUN: u32 = 100;

impl Purge {
    /// The batch statement for the backend of `conn`; `$1` the cutoff, `$2` the batch size
    /// (SQLite numbers `$N` parameters in order of appearance, as PostgreSQL does). The batch's
    /// rows are found through the expiry index and deleted by their physical row id: SQLite's
    /// `rowid` (a B-tree key); PostgreSQL's `ctid`, handed over as an array so that the delete
    /// is a TID scan of exactly those rows — with `key IN (SELECT key … LIMIT n)` PostgreSQL
    /// hashes the batch and scans the whole table for it (104 ms instead of 1.4 ms a batch of
    /// 1000 in 200,000 rows). The rows are locked (`FOR UPDATE`), so their `ctid` holds until
    /// the delete; rows another node has locked are skipped, not waited for.
    pub fn statement(&self, conn: &AnyConnection) -> String {
        let (table, expired) = (self.table, self.expired);
        match conn {
            AnyConnection::Sqlite(_) => format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE {expired} LIMIT $2)"
            ),
            AnyConnection::Postgresql(_) => format!(
                "DELETE FROM {table} WHERE ctid = ANY(ARRAY(\
                 SELECT ctid FROM {table} WHERE {expired} LIMIT $2 FOR UPDATE SKIP LOCKED))"
            ),
        }
    }

    /// The value of `$1` at `at`.
    pub fn cutoff(&self, at: &Horizon) -> i64 {
        match self.cutoff {
            Cutoff::Now => at.now,
            Cutoff::IdleSince => at.now.saturating_sub(at.idle_timeout),
            Cutoff::RetainedSince => at.now.saturating_sub(at.audit_retention),
        }
    }

    /// Deletes at most `limit` expired rows; returns how many went.
    pub fn batch(
        &self,
        conn: &mut AnyConnection,
        at: &Horizon,
        limit: u32,
    ) -> Result<usize, StorageError> {
        Ok(diesel::sql_query(self.statement(conn))
            .bind::<BigInt, _>(self.cutoff(at))
            .bind::<BigInt, _>(i64::from(limit))
            .execute(conn)?)
    }

    /// Batches until the table holds no expired row or `limits.max_batches` ran. Between
    /// batches `pause` gets the last batch's duration and says whether to go on (false: the
    /// node is stopping).
    pub fn run(
        &self,
        db: &Database,
        at: &Horizon,
        limits: Limits,
        mut pause: impl FnMut(Duration) -> bool,
    ) -> Result<usize, StorageError> {
        let mut total = 0;
        let mut last = Duration::ZERO;
        for i in 0..limits.max_batches {
            if i > 0 && !pause(last) {
                break;
            }
            let started = Instant::now();
            let n = db.with_conn(|conn| self.batch(conn, at, limits.batch_size))?;
            last = started.elapsed();
            total += n;
            if n < limits.batch_size as usize {
                break;
            }
        }
        Ok(total)
    }
}

/// The purged tables, each once, in run order.
pub fn tables() -> impl Iterator<Item = &'static str> {
    PURGES
        .iter()
        .enumerate()
        .filter(|(i, p)| PURGES[..*i].iter().all(|q| q.table != p.table))
        .map(|(_, p)| p.table)
}

/// What one purge did in a run.
#[derive(Debug)]
pub struct Outcome {
    pub table: &'static str,
    pub result: Result<usize, StorageError>,
}

/// One run: every purge in turn, each on its own, so that one that fails (logged and counted by
/// the caller, retried at the next run) leaves the others to do their work. Only when no
/// connection can be had at all does the run end early: every other purge would wait for the
/// pool in vain.
pub fn run(
    db: &Database,
    at: impl Fn() -> Horizon,
    limits: Limits,
    mut pause: impl FnMut(Duration) -> bool,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(PURGES.len());
    for purge in &PURGES {
        let result = purge.run(db, &at(), limits, &mut pause);
        let unavailable = result.as_ref().is_err_and(StorageError::is_unavailable);
        outcomes.push(Outcome {
            table: purge.table,
            result,
        });
        if unavailable {
            break;
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;

    fn sqlite() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = super::super::DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let db =
            Database::connect(&url, 2, 0, Duration::from_secs(5), Duration::from_secs(2)).unwrap();
        db.migrate().unwrap();
        (dir, db)
    }

    fn count(db: &Database, table: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        db.with_conn(|c| {
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<N>(c)
                .map_err(StorageError::from)
        })
        .unwrap()
        .n
    }

    /// A database holding deny-list entries that expire at the given times, and the purge of
    /// that table.
    fn deny_list(expiries: &[i64]) -> (tempfile::TempDir, Database, &'static Purge) {
        let (dir, db) = sqlite();
        let mut sql = String::new();
        for (i, exp) in expiries.iter().enumerate() {
            sql += &format!("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('j{i}', {exp});");
        }
        db.with_conn(|c| c.batch_execute(&sql).map_err(StorageError::from))
            .unwrap();
        let purge = PURGES.iter().find(|p| p.table == "revoked_tokens").unwrap();
        (dir, db, purge)
    }

    fn at(now: i64) -> Horizon {
        Horizon {
            now,
            idle_timeout: 0,
            audit_retention: 0,
        }
    }

    #[test]
    fn a_run_takes_at_most_its_batches_and_the_next_run_goes_on() {
        let (_dir, db, purge) = deny_list(&[[100; 10].as_slice(), &[1000]].concat());
        let limits = Limits {
            batch_size: 2,
            max_batches: 3,
        };
        let mut pauses = 0;
        let first = purge.run(&db, &at(500), limits, |_| {
            pauses += 1;
            true
        });
        assert_eq!(first.unwrap(), 6, "three batches of two");
        assert_eq!(pauses, 2, "a pause between batches");
        assert_eq!(count(&db, "revoked_tokens"), 5);
        assert_eq!(purge.run(&db, &at(500), limits, |_| true).unwrap(), 4);
        assert_eq!(purge.run(&db, &at(500), limits, |_| true).unwrap(), 0);
        assert_eq!(count(&db, "revoked_tokens"), 1, "the live entry stays");
    }

    #[test]
    fn a_stopping_node_ends_the_run_between_batches() {
        let (_dir, db, purge) = deny_list(&[1, 1, 1]);
        let limits = Limits {
            batch_size: 1,
            max_batches: 10,
        };
        assert_eq!(purge.run(&db, &at(5), limits, |_| false).unwrap(), 1);
        assert_eq!(count(&db, "revoked_tokens"), 2);
    }

    #[test]
    fn every_table_is_listed_once_and_idle_sessions_are_cut_off_by_the_timeout() {
        let listed: Vec<_> = tables().collect();
        let distinct: std::collections::BTreeSet<_> = PURGES.iter().map(|p| p.table).collect();
        assert_eq!(listed.len(), distinct.len());
        let at = Horizon {
            now: 10_000,
            idle_timeout: 600,
            audit_retention: 5_000,
        };
        let cutoffs: Vec<_> = PURGES
            .iter()
            .filter(|p| p.table == "sessions")
            .map(|p| p.cutoff(&at))
            .collect();
        assert_eq!(cutoffs, [10_000, 9_400]);
        let audit = PURGES.iter().find(|p| p.table == "audit_events").unwrap();
        assert_eq!(audit.cutoff(&at), 5_000);
    }
}
