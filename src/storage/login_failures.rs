//! Sign-in counters per key (`user:NAME`, `ip:ADDRESS`, `device:HASH`) for brute-force
//! protection. `failures` counts the checks that failed *and those still in flight* within the
//! window that began at `window_start` (`pending` says how many are in flight): a check takes
//! its slot before it hashes, so concurrency cannot outrun the limit, and a key is locked only
//! when its slots are all real failures. The row is the truth, written only by single atomic statements, so
//! several nodes on one PostgreSQL agree; nothing in memory decides.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use super::schema::login_failures::dsl;
use super::{numbered_sql, AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::login_failures)]
pub struct FailureRow {
    pub key: String,
    pub failures: i32,
    pub pending: i32,
    pub window_start: i64,
    pub locked_until: i64,
    pub lockouts: i32,
    pub expires_at: i64,
}

/// The limits, in seconds and counts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Slots (failed or in-flight checks) per key and window.
    pub max_failures: i32,
    pub window: i64,
    /// The longest lock, however often it doubled.
    pub max_lockout: i64,
}

pub fn account_key(username: &str) -> String {
    format!("user:{username}")
}

pub fn address_key(bucket: &str) -> String {
    format!("ip:{bucket}")
}

pub fn device_key(device_hash: &str) -> String {
    format!("device:{device_hash}")
}

/// A slot taken on one key, in the window that began at `window_start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub key: String,
    pub window_start: i64,
}

/// Takes a slot on every key or on none.
#[derive(Debug)]
pub enum Reserved {
    All(Vec<Slot>),
    /// A key is locked, or its slots are all taken: seconds until the longest such wait ends.
    Refused(i64),
}

/// Takes one slot on each key, in one transaction: each is one atomic upsert whose row count
/// says whether the slot was free (the key neither locked nor full, or its window or lock has
/// passed). If any key refuses, nothing is taken. Keys are written in sorted order, so that two
/// transactions never wait on each other's rows in a cycle.
pub fn reserve(
    conn: &mut AnyConnection,
    keys: &[String],
    now: i64,
    limits: Limits,
) -> Result<Reserved, StorageError> {
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    let outcome = crate::storage::transaction::<_, Rollback, _>(conn, |conn| {
        let mut slots = Vec::with_capacity(sorted.len());
        for key in &sorted {
            match take(conn, key, now, limits)? {
                Some(window_start) => slots.push(Slot {
                    key: key.clone(),
                    window_start,
                }),
                None => return Err(Rollback::Refused),
            }
        }
        Ok(slots)
    });
    match outcome {
        Ok(slots) => Ok(Reserved::All(slots)),
        // Read after the rollback, so that the slots this attempt held for a moment count
        // for nothing.
        Err(Rollback::Refused) => Ok(Reserved::Refused(longest_wait(conn, &sorted, now, limits)?)),
        Err(Rollback::Storage(e)) => Err(e),
    }
}

enum Rollback {
    Refused,
    Storage(StorageError),
}

impl From<diesel::result::Error> for Rollback {
    fn from(e: diesel::result::Error) -> Self {
        Self::Storage(e.into())
    }
}

impl From<StorageError> for Rollback {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

#[derive(QueryableByName)]
struct WindowStart {
    #[diesel(sql_type = BigInt)]
    window_start: i64,
}

/// One slot on `key`, or `None` when the key refuses. A row whose lock has passed, or whose
/// window has passed, starts a fresh window (keeping `lockouts`, so that an attacker who keeps
/// going doubles his lock); a row past `expires_at` also forgets its `lockouts`.
/// Placeholders: $1 key, $2 now, $3 window, $4 max_failures.
const TAKE: &str = "\
INSERT INTO login_failures (key, failures, pending, window_start, locked_until, lockouts, expires_at)
VALUES ($1, 1, 1, $2, 0, 0, $2 + $3)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN login_failures.locked_until <> 0
                      OR login_failures.window_start + $3 <= $2
                    THEN 1 ELSE login_failures.failures + 1 END,
    pending = CASE WHEN login_failures.locked_until <> 0
                     OR login_failures.window_start + $3 <= $2
                   THEN 1 ELSE login_failures.pending + 1 END,
    window_start = CASE WHEN login_failures.locked_until <> 0
                          OR login_failures.window_start + $3 <= $2
                        THEN $2 ELSE login_failures.window_start END,
    locked_until = 0,
    lockouts = CASE WHEN login_failures.expires_at <= $2
                    THEN 0 ELSE login_failures.lockouts END,
    expires_at = CASE WHEN login_failures.locked_until <> 0
                        OR login_failures.window_start + $3 <= $2
                      THEN $2 ELSE login_failures.window_start END + $3
WHERE login_failures.locked_until <= $2
  AND (login_failures.locked_until <> 0
       OR login_failures.window_start + $3 <= $2
       OR login_failures.failures < $4)
RETURNING window_start";

fn take(
    conn: &mut AnyConnection,
    key: &str,
    now: i64,
    limits: Limits,
) -> Result<Option<i64>, StorageError> {
    let rows: Vec<WindowStart> = numbered_sql(conn, TAKE)
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(limits.window)
        .bind::<Integer, _>(limits.max_failures)
        .load(conn)?;
    Ok(rows.first().map(|r| r.window_start))
}

/// How long until every refusing key among `keys` takes attempts again (at least 1 s).
fn longest_wait(
    conn: &mut AnyConnection,
    keys: &[String],
    now: i64,
    limits: Limits,
) -> Result<i64, StorageError> {
    let rows: Vec<FailureRow> = dsl::login_failures
        .filter(dsl::key.eq_any(keys))
        .load(conn)?;
    let wait = rows
        .iter()
        .map(|row| {
            if row.locked_until > now {
                row.locked_until - now
            } else if row.failures >= limits.max_failures {
                row.window_start + limits.window - now
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0);
    Ok(wait.max(1))
}

/// A failed check keeps its slot, no longer in flight. If the key's slots are now all real
/// failures, the key is locked for `min(window × 2^lockouts, max_lockout)` and `lockouts` grows
/// by one — once per window, however many failures finish together: the update applies only
/// while the row is still in the slot's window and unlocked (compare-and-set). A check still in
/// flight may yet succeed, so it never locks anyone. True when this call locked the key.
/// Placeholders: $1 now, $2 window, $3 max_lockout, $4 key, $5 window_start, $6 max_failures.
const LOCK_WHEN_FULL: &str = "\
UPDATE login_failures SET
    lockouts = lockouts + 1,
    locked_until = $1 + CASE WHEN lockouts >= 32 OR ($2 << lockouts) >= $3
                             THEN $3 ELSE ($2 << lockouts) END,
    expires_at = $1 + CASE WHEN lockouts >= 32 OR ($2 << lockouts) >= $3
                           THEN $3 ELSE ($2 << lockouts) END + $2
WHERE key = $4 AND window_start = $5 AND locked_until = 0 AND failures - pending >= $6";

pub fn failed(
    conn: &mut AnyConnection,
    slot: &Slot,
    now: i64,
    limits: Limits,
) -> Result<bool, StorageError> {
    diesel::update(in_window(slot).filter(dsl::pending.gt(0)))
        .set(dsl::pending.eq(dsl::pending - 1))
        .execute(conn)?;
    let n = numbered_sql(conn, LOCK_WHEN_FULL)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(limits.window)
        .bind::<BigInt, _>(limits.max_lockout)
        .bind::<Text, _>(&slot.key)
        .bind::<BigInt, _>(slot.window_start)
        .bind::<Integer, _>(limits.max_failures)
        .execute(conn)?;
    Ok(n == 1)
}

/// Gives a slot back (a check that succeeded on a shared key, or that was never run). A slot
/// of a window that has since been replaced is gone already.
pub fn release(conn: &mut AnyConnection, slot: &Slot) -> Result<(), StorageError> {
    diesel::update(
        in_window(slot)
            .filter(dsl::failures.gt(0))
            .filter(dsl::pending.gt(0)),
    )
    .set((
        dsl::failures.eq(dsl::failures - 1),
        dsl::pending.eq(dsl::pending - 1),
    ))
    .execute(conn)?;
    Ok(())
}

type ByKey<'a> =
    diesel::dsl::Filter<super::schema::login_failures::table, diesel::dsl::Eq<dsl::key, &'a str>>;
type InWindow<'a> = diesel::dsl::Filter<ByKey<'a>, diesel::dsl::Eq<dsl::window_start, i64>>;

/// The row of `slot`'s key while it is still in the slot's window (a slot of a window that has
/// since been replaced, or of a row cleared meanwhile, is gone already).
fn in_window(slot: &Slot) -> InWindow<'_> {
    dsl::login_failures
        .filter(dsl::key.eq(slot.key.as_str()))
        .filter(dsl::window_start.eq(slot.window_start))
}

pub fn get(conn: &mut AnyConnection, key: &str) -> Result<Option<FailureRow>, StorageError> {
    Ok(dsl::login_failures
        .filter(dsl::key.eq(key))
        .first(conn)
        .optional()?)
}

/// Forgets `keys` entirely (a successful sign-in on its own key, `sigil user unlock`).
pub fn clear(conn: &mut AnyConnection, keys: &[String]) -> Result<usize, StorageError> {
    Ok(diesel::delete(dsl::login_failures.filter(dsl::key.eq_any(keys))).execute(conn)?)
}
