//! Passkeys (WebAuthn credentials) and the ceremonies in progress between a ceremony's options
//! and its answer. A ceremony is keyed by the SHA-256 of the id the browser carries, used once
//! (whoever deletes it answers), capped per client address and purged when expired
//! (`storage::maintenance`).

use diesel::prelude::*;

use super::schema::passkeys::dsl as pk;
use super::schema::webauthn_ceremonies::dsl as wc;
use super::{AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::passkeys)]
pub struct PasskeyRow {
    /// The credential id, base64url without padding.
    pub credential_id: String,
    pub user_id: String,
    /// The name its user gave it (1–64 characters).
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON: public key, counter and flags (public data).
    pub credential: String,
    /// Synced between devices (amr `swk`), or bound to one (amr `hwk`).
    pub backup_eligible: bool,
    /// The highest signature counter seen (0: the authenticator keeps none).
    pub sign_count: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Why a passkey was not added.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    Yes,
    /// The user holds `max` already.
    Full,
    /// The credential id is registered already (to this user or another).
    Taken,
}

/// The user's passkeys, oldest first (index `passkeys_user`).
pub fn of_user(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<PasskeyRow>, StorageError> {
    Ok(pk::passkeys
        .filter(pk::user_id.eq(user_id))
        .order((pk::created_at.asc(), pk::credential_id.asc()))
        .load(conn)?)
}

/// How many passkeys the user holds.
pub fn count_of_user(conn: &mut AnyConnection, user_id: &str) -> Result<i64, StorageError> {
    Ok(pk::passkeys
        .filter(pk::user_id.eq(user_id))
        .count()
        .get_result(conn)?)
}

pub fn by_credential_id(
    conn: &mut AnyConnection,
    credential_id: &str,
) -> Result<Option<PasskeyRow>, StorageError> {
    if !super::storable(credential_id) {
        return Ok(None);
    }
    Ok(pk::passkeys
        .filter(pk::credential_id.eq(credential_id))
        .first(conn)
        .optional()?)
}

/// Adds `row` unless its user holds `max` passkeys already. The user's row is written first, so
/// that two enrolments of one user take turns (PostgreSQL row lock; SQLite's write lock) and
/// the count cannot be passed.
pub fn insert_limited(
    conn: &mut AnyConnection,
    row: &PasskeyRow,
    max: i64,
) -> Result<Added, StorageError> {
    use super::schema::users::dsl as u;
    conn.transaction(|conn| {
        diesel::update(u::users.filter(u::id.eq(&row.user_id)))
            .set(u::updated_at.eq(u::updated_at))
            .execute(conn)?;
        let held: i64 = pk::passkeys
            .filter(pk::user_id.eq(&row.user_id))
            .count()
            .get_result(conn)?;
        if held >= max {
            return Ok(Added::Full);
        }
        if by_credential_id(conn, &row.credential_id)?.is_some() {
            return Ok(Added::Taken);
        }
        match diesel::insert_into(pk::passkeys).values(row).execute(conn) {
            Ok(_) => Ok(Added::Yes),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Ok(Added::Taken),
            Err(e) => Err(e.into()),
        }
    })
}

/// Removes one of the user's passkeys; true when it was there.
pub fn remove(
    conn: &mut AnyConnection,
    user_id: &str,
    credential_id: &str,
) -> Result<bool, StorageError> {
    if !super::storable(credential_id) {
        return Ok(false);
    }
    Ok(diesel::delete(
        pk::passkeys
            .filter(pk::user_id.eq(user_id))
            .filter(pk::credential_id.eq(credential_id)),
    )
    .execute(conn)?
        == 1)
}

/// Records a use whose authenticator reported `sign_count`: the new `credential` JSON and the
/// counter are stored only if the counter moved forward (or both are 0, an authenticator
/// without a counter). False when it did not: another use with this counter or a higher one
/// came first — a cloned key, or a replay racing its original (WebAuthn L2 §6.1.1).
pub fn record_use(
    conn: &mut AnyConnection,
    credential_id: &str,
    credential: &str,
    sign_count: i64,
    backup_eligible: bool,
    now: i64,
) -> Result<bool, StorageError> {
    let target = pk::passkeys.filter(pk::credential_id.eq(credential_id));
    let changes = (
        pk::credential.eq(credential),
        pk::sign_count.eq(sign_count),
        pk::backup_eligible.eq(backup_eligible),
        pk::last_used_at.eq(now),
    );
    let n = if sign_count == 0 {
        diesel::update(target.filter(pk::sign_count.eq(0)))
            .set(changes)
            .execute(conn)?
    } else {
        diesel::update(target.filter(pk::sign_count.lt(sign_count)))
            .set(changes)
            .execute(conn)?
    };
    Ok(n == 1)
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::webauthn_ceremonies)]
pub struct CeremonyRow {
    pub id_hash: String,
    /// `register` or `authenticate`.
    pub kind: String,
    /// Who the ceremony is for; `None` for a discoverable (passwordless) authentication.
    pub user_id: Option<String>,
    /// webauthn-rs's ceremony state, serialized.
    pub state: String,
    /// Who started it (`web::client_address` bucket), for the cap per address.
    pub client_address: String,
    pub expires_at: i64,
}

/// Stores `row`; the oldest ceremonies of the same client address beyond `cap` give way, so
/// one address can keep at most `cap` rows (SECURITY.md 27). Every ceremony lives as long, so
/// the order of `expires_at` is the order of creation.
pub fn insert_ceremony_capped(
    conn: &mut AnyConnection,
    row: &CeremonyRow,
    cap: i64,
) -> Result<(), StorageError> {
    conn.transaction(|conn| {
        diesel::insert_into(wc::webauthn_ceremonies)
            .values(row)
            .execute(conn)?;
        let beyond_cap: Vec<String> = wc::webauthn_ceremonies
            .filter(wc::client_address.eq(&row.client_address))
            .filter(wc::id_hash.ne(&row.id_hash))
            .order((wc::expires_at.desc(), wc::id_hash.desc()))
            .select(wc::id_hash)
            .offset(cap - 1)
            .load(conn)?;
        if !beyond_cap.is_empty() {
            diesel::delete(wc::webauthn_ceremonies.filter(wc::id_hash.eq_any(&beyond_cap)))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Takes the ceremony out: `Some` only for the one caller whose delete removed it, and only
/// while it is live, so each ceremony is answered at most once.
pub fn take_ceremony(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: i64,
) -> Result<Option<CeremonyRow>, StorageError> {
    let Some(row) = wc::webauthn_ceremonies
        .filter(wc::id_hash.eq(id_hash))
        .first::<CeremonyRow>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let removed =
        diesel::delete(wc::webauthn_ceremonies.filter(wc::id_hash.eq(id_hash))).execute(conn)?;
    Ok((removed == 1 && row.expires_at > now).then_some(row))
}

/// Removes every passkey of the user (an administrator's reset); how many there were.
pub fn remove_all_of_user(conn: &mut AnyConnection, user_id: &str) -> Result<usize, StorageError> {
    Ok(diesel::delete(pk::passkeys.filter(pk::user_id.eq(user_id))).execute(conn)?)
}
