//! Second factors at rest: one TOTP factor per user (the secret sealed under the master key by
//! the caller) and single-use recovery codes (SHA-256 hashes: each code carries about 49
//! random bits and every guess goes through the sign-in throttle).

use diesel::prelude::*;

use super::schema::{recovery_codes, totp_factors};
use diesel::sql_types::{BigInt, Binary, Nullable, Text};

use super::{numbered_sql, AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = totp_factors)]
pub struct TotpRow {
    pub user_id: String,
    pub secret_sealed: Vec<u8>,
    /// `None` while an enrolment waits for its first code.
    pub confirmed_at: Option<i64>,
    /// The last time step accepted.
    pub last_step: i64,
    pub created_at: i64,
}

/// The user's TOTP factor, confirmed or not.
pub fn totp(conn: &mut AnyConnection, user_id: &str) -> Result<Option<TotpRow>, StorageError> {
    Ok(totp_factors::table
        .filter(totp_factors::user_id.eq(user_id))
        .first(conn)
        .optional()?)
}

/// Every user's TOTP factor (for `sigil keys rewrap`, which re-seals each secret).
pub fn all_totp(conn: &mut AnyConnection) -> Result<Vec<TotpRow>, StorageError> {
    Ok(totp_factors::table
        .order(totp_factors::user_id)
        .load(conn)?)
}

/// Replaces the sealed secret of the user's TOTP factor, leaving the rest as it is.
pub fn reseal_totp(
    conn: &mut AnyConnection,
    user_id: &str,
    sealed: &[u8],
) -> Result<(), StorageError> {
    diesel::update(totp_factors::table.filter(totp_factors::user_id.eq(user_id)))
        .set(totp_factors::secret_sealed.eq(sealed))
        .execute(conn)?;
    Ok(())
}

/// Placeholders: $1 user_id, $2 secret_sealed, $3 confirmed_at, $4 last_step, $5 created_at.
const PUT_TOTP: &str = "\
INSERT INTO totp_factors (user_id, secret_sealed, confirmed_at, last_step, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id) DO UPDATE SET secret_sealed = $2, confirmed_at = $3, last_step = $4,
created_at = $5";

/// Replaces the user's TOTP factor with `row`: one statement, so that the same user starting
/// an enrolment many times at once ends with exactly one factor (the last one written) and no
/// request fails on the primary key.
pub fn put_totp(conn: &mut AnyConnection, row: &TotpRow) -> Result<(), StorageError> {
    numbered_sql(conn, PUT_TOTP)
        .bind::<Text, _>(&row.user_id)
        .bind::<Binary, _>(&row.secret_sealed)
        .bind::<Nullable<BigInt>, _>(row.confirmed_at)
        .bind::<BigInt, _>(row.last_step)
        .bind::<BigInt, _>(row.created_at)
        .execute(conn)?;
    Ok(())
}

/// Turns an enrolment on; false when there was none waiting.
pub fn confirm_totp(
    conn: &mut AnyConnection,
    user_id: &str,
    step: i64,
    now: i64,
) -> Result<bool, StorageError> {
    Ok(diesel::update(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::confirmed_at.is_null()),
    )
    .set((
        totp_factors::confirmed_at.eq(now),
        totp_factors::last_step.eq(step),
    ))
    .execute(conn)?
        == 1)
}

/// Accepts the code of `step` once: true only for the one caller that moves `last_step`
/// forward past it (a code, or an older one, given again or concurrently is refused).
pub fn use_totp_step(
    conn: &mut AnyConnection,
    user_id: &str,
    step: i64,
) -> Result<bool, StorageError> {
    Ok(diesel::update(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::confirmed_at.is_not_null())
            .filter(totp_factors::last_step.lt(step)),
    )
    .set(totp_factors::last_step.eq(step))
    .execute(conn)?
        == 1)
}

/// Removes the user's TOTP factor; true when there was one.
pub fn remove_totp(conn: &mut AnyConnection, user_id: &str) -> Result<bool, StorageError> {
    Ok(
        diesel::delete(totp_factors::table.filter(totp_factors::user_id.eq(user_id)))
            .execute(conn)?
            == 1,
    )
}

/// Replaces the user's recovery codes with these hashes.
pub fn replace_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
    hashes: &[String],
    now: i64,
) -> Result<(), StorageError> {
    crate::storage::transaction(conn, |conn| {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .execute(conn)?;
        for hash in hashes {
            diesel::insert_into(recovery_codes::table)
                .values((
                    recovery_codes::user_id.eq(user_id),
                    recovery_codes::code_hash.eq(hash),
                    recovery_codes::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Spends a recovery code: true only for the one caller that marks it used.
pub fn use_recovery_code(
    conn: &mut AnyConnection,
    user_id: &str,
    hash: &str,
    now: i64,
) -> Result<bool, StorageError> {
    Ok(diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)?
        == 1)
}

/// How many of the user's recovery codes are unused.
pub fn unused_recovery_codes(conn: &mut AnyConnection, user_id: &str) -> Result<i64, StorageError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}

/// Placeholder: $1 user_id.
const FACTOR_COUNTS: &str = "\
SELECT
  (SELECT COUNT(*) FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL) AS totp,
  (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL) AS recovery_codes,
  (SELECT COUNT(*) FROM passkeys WHERE user_id = $1) AS passkeys";

/// How many of each second factor the user holds: confirmed TOTP factors (0 or 1), unused
/// recovery codes and passkeys, in one round trip (every password sign-in asks).
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct FactorCounts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub totp: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub recovery_codes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub passkeys: i64,
}

pub fn counts(conn: &mut AnyConnection, user_id: &str) -> Result<FactorCounts, StorageError> {
    Ok(numbered_sql(conn, FACTOR_COUNTS)
        .bind::<Text, _>(user_id)
        .get_result(conn)?)
}

/// Removes every recovery code of the user.
pub fn remove_recovery_codes(conn: &mut AnyConnection, user_id: &str) -> Result<(), StorageError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    Ok(())
}
