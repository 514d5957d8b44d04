//! Browsers trusted for an account: the hash of a `sigil_device` cookie and the user it signed
//! in as. One browser can be trusted for several accounts; the per-account lockout does not
//! apply to it (its own `device:` counter does).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::schema::trusted_devices::dsl;
use super::{numbered_sql, AnyConnection, StorageError};

/// About a year.
pub const LIFETIME: i64 = 365 * 24 * 3600;

/// Browsers remembered per user: signing in from one more forgets the one used least recently,
/// so that no one can grow the table without bound by signing in again and again.
pub const MAX_PER_USER: i64 = 32;

/// Whether the browser whose cookie hashes to `device_hash` signed in as `user_id` within the
/// last [`LIFETIME`].
pub fn is_trusted(
    conn: &mut AnyConnection,
    device_hash: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let n: i64 = dsl::trusted_devices
        .filter(dsl::device_hash.eq(device_hash))
        .filter(dsl::user_id.eq(user_id))
        .filter(dsl::expires_at.gt(now))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Placeholders: $1 device_hash, $2 user_id, $3 now, $4 expires_at.
const TRUST: &str = "\
INSERT INTO trusted_devices (device_hash, user_id, created_at, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (device_hash, user_id) DO UPDATE SET expires_at = $4";

/// Trusts the browser for the user for another [`LIFETIME`] from `now` (one statement, so that
/// two sign-ins of the same browser at once both succeed).
fn trust(
    conn: &mut AnyConnection,
    device_hash: &str,
    user_id: &str,
    now: i64,
) -> Result<(), StorageError> {
    numbered_sql(conn, TRUST)
        .bind::<Text, _>(device_hash)
        .bind::<Text, _>(user_id)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(now + LIFETIME)
        .execute(conn)?;
    Ok(())
}

/// A successful sign-in as `user_id`: the browser's trust moves from its old id (if any) to
/// its new one, and it is trusted for this user for another [`LIFETIME`].
pub fn renew(
    conn: &mut AnyConnection,
    old_hash: Option<&str>,
    new_hash: &str,
    user_id: &str,
    now: i64,
) -> Result<(), StorageError> {
    if let Some(old) = old_hash {
        diesel::update(
            dsl::trusted_devices
                .filter(dsl::device_hash.eq(old))
                .filter(dsl::expires_at.gt(now)),
        )
        .set(dsl::device_hash.eq(new_hash))
        .execute(conn)?;
    }
    trust(conn, new_hash, user_id, now)?;
    // This browser stays; of the others, the most recently used.
    let beyond: Vec<String> = dsl::trusted_devices
        .filter(dsl::user_id.eq(user_id))
        .filter(dsl::device_hash.ne(new_hash))
        .order((dsl::expires_at.desc(), dsl::device_hash))
        .select(dsl::device_hash)
        .limit(MAX_PER_USER)
        .offset(MAX_PER_USER - 1)
        .load(conn)?;
    if !beyond.is_empty() {
        diesel::delete(
            dsl::trusted_devices
                .filter(dsl::user_id.eq(user_id))
                .filter(dsl::device_hash.eq_any(&beyond)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The hashes of the browsers trusted for the user now.
pub fn of_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, StorageError> {
    Ok(dsl::trusted_devices
        .filter(dsl::user_id.eq(user_id))
        .filter(dsl::expires_at.gt(now))
        .select(dsl::device_hash)
        .load(conn)?)
}
