//! Signing key rows. Private parts arrive already sealed under the master key.

use diesel::prelude::*;

use super::schema::signing_keys::dsl;
use super::{AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::signing_keys)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub public_jwk: String,
    pub private_sealed: Vec<u8>,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retiring_at: Option<i64>,
    pub retire_after: Option<i64>,
    pub retired_at: Option<i64>,
}

pub fn insert(conn: &mut AnyConnection, row: &KeyRow) -> Result<(), StorageError> {
    diesel::insert_into(dsl::signing_keys)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Every key, oldest first.
pub fn all(conn: &mut AnyConnection) -> Result<Vec<KeyRow>, StorageError> {
    Ok(dsl::signing_keys
        .order((dsl::created_at.asc(), dsl::kid.asc()))
        .load(conn)?)
}

/// The keys in the JWKS (`next`, `active`, `retiring`), oldest first.
pub fn published(conn: &mut AnyConnection) -> Result<Vec<KeyRow>, StorageError> {
    Ok(dsl::signing_keys
        .filter(dsl::state.ne("retired"))
        .order((dsl::created_at.asc(), dsl::kid.asc()))
        .load(conn)?)
}

/// `(kid, state)` of every published key: a cheap way for a node to notice a change.
pub fn published_states(conn: &mut AnyConnection) -> Result<Vec<(String, String)>, StorageError> {
    Ok(dsl::signing_keys
        .filter(dsl::state.ne("retired"))
        .select((dsl::kid, dsl::state))
        .order(dsl::kid.asc())
        .load(conn)?)
}

pub fn with_state(
    conn: &mut AnyConnection,
    alg: &str,
    state: &str,
) -> Result<Vec<KeyRow>, StorageError> {
    Ok(dsl::signing_keys
        .filter(dsl::alg.eq(alg))
        .filter(dsl::state.eq(state))
        .order(dsl::created_at.asc())
        .load(conn)?)
}

pub fn get(conn: &mut AnyConnection, kid: &str) -> Result<Option<KeyRow>, StorageError> {
    Ok(dsl::signing_keys
        .filter(dsl::kid.eq(kid))
        .first(conn)
        .optional()?)
}

/// `next` → `active`.
pub fn activate(conn: &mut AnyConnection, kid: &str, now: i64) -> Result<(), StorageError> {
    let n = diesel::update(
        dsl::signing_keys
            .filter(dsl::kid.eq(kid))
            .filter(dsl::state.eq("next")),
    )
    .set((dsl::state.eq("active"), dsl::activated_at.eq(now)))
    .execute(conn)?;
    expect_one(n, kid)
}

/// `active` → `retiring`, published until `retire_after`.
pub fn start_retiring(
    conn: &mut AnyConnection,
    kid: &str,
    now: i64,
    retire_after: i64,
) -> Result<(), StorageError> {
    let n = diesel::update(
        dsl::signing_keys
            .filter(dsl::kid.eq(kid))
            .filter(dsl::state.eq("active")),
    )
    .set((
        dsl::state.eq("retiring"),
        dsl::retiring_at.eq(now),
        dsl::retire_after.eq(retire_after),
    ))
    .execute(conn)?;
    expect_one(n, kid)
}

/// Any published, non-active key → `retired`.
pub fn retire(conn: &mut AnyConnection, kid: &str, now: i64) -> Result<(), StorageError> {
    let n = diesel::update(
        dsl::signing_keys
            .filter(dsl::kid.eq(kid))
            .filter(dsl::state.eq_any(["next", "retiring"])),
    )
    .set((dsl::state.eq("retired"), dsl::retired_at.eq(now)))
    .execute(conn)?;
    expect_one(n, kid)
}

/// Retires every `retiring` key whose tokens have all expired; returns how many.
pub fn retire_expired(conn: &mut AnyConnection, now: i64) -> Result<usize, StorageError> {
    Ok(diesel::update(
        dsl::signing_keys
            .filter(dsl::state.eq("retiring"))
            .filter(dsl::retire_after.le(now)),
    )
    .set((dsl::state.eq("retired"), dsl::retired_at.eq(now)))
    .execute(conn)?)
}

/// Replaces the sealed private part (master key rotation).
pub fn reseal(conn: &mut AnyConnection, kid: &str, sealed: &[u8]) -> Result<(), StorageError> {
    let n = diesel::update(dsl::signing_keys.filter(dsl::kid.eq(kid)))
        .set(dsl::private_sealed.eq(sealed))
        .execute(conn)?;
    expect_one(n, kid)
}

fn expect_one(n: usize, kid: &str) -> Result<(), StorageError> {
    if n == 1 {
        Ok(())
    } else {
        Err(StorageError::Conflict(format!(
            "key {kid} changed state meanwhile; nothing was done"
        )))
    }
}
