//! Brute-force protection for sign-in: failures are counted per account and per client
//! address within `login.window`; at `login.max_failures` the key is locked for one window,
//! doubling with each further failure (capped at 64 windows). A locked key refuses every
//! attempt, the right password too.

use crate::config::LoginSettings;
use crate::storage::login_failures::{self, FailureRow};
use crate::storage::{AnyConnection, StorageError};

pub fn account_key(username: &str) -> String {
    format!("user:{username}")
}

pub fn address_key(addr: &str) -> String {
    format!("ip:{addr}")
}

/// Seconds until the first of `keys` unlocks, if any is locked.
pub fn locked_for(
    conn: &mut AnyConnection,
    keys: &[String],
    now: i64,
) -> Result<Option<i64>, StorageError> {
    let mut wait = None;
    for key in keys {
        if let Some(row) = login_failures::get(conn, key)? {
            if row.locked_until > now {
                wait = Some(wait.map_or(row.locked_until - now, |w: i64| {
                    w.max(row.locked_until - now)
                }));
            }
        }
    }
    Ok(wait)
}

pub fn record_failure(
    conn: &mut AnyConnection,
    key: &str,
    now: i64,
    rules: &LoginSettings,
) -> Result<(), StorageError> {
    let window = rules.window.as_secs() as i64;
    let max = rules.max_failures as i32;
    let mut row = match login_failures::get(conn, key)? {
        Some(r) if now - r.window_start < window || r.locked_until > now => r,
        _ => FailureRow {
            key: key.to_string(),
            failures: 0,
            window_start: now,
            locked_until: 0,
            lockouts: 0,
            expires_at: now + window,
        },
    };
    row.failures += 1;
    if row.failures >= max {
        let doublings = (row.failures - max).min(6) as u32;
        row.locked_until = now + window * 2i64.pow(doublings);
        row.window_start = now;
    }
    login_failures::put(conn, &row)
}

pub fn clear(conn: &mut AnyConnection, key: &str) -> Result<(), StorageError> {
    login_failures::clear(conn, key)
}
