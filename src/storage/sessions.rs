//! IdP sessions, keyed by the SHA-256 of the cookie's session id.

use diesel::prelude::*;

use super::schema::sessions::dsl;
use super::{AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::sessions)]
pub struct SessionRow {
    pub id_hash: String,
    pub sid: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: String,
    pub acr: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    /// The browser's `User-Agent` when it signed in (cut to 256 bytes), for the account page.
    pub user_agent: String,
    /// The client address it signed in from (after trusted proxies).
    pub client_address: String,
}

pub fn insert(conn: &mut AnyConnection, row: &SessionRow) -> Result<(), StorageError> {
    diesel::insert_into(dsl::sessions)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A session that has not ended and has not passed its absolute lifetime.
pub fn live(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: i64,
) -> Result<Option<SessionRow>, StorageError> {
    Ok(dsl::sessions
        .filter(dsl::id_hash.eq(id_hash))
        .filter(dsl::ended_at.is_null())
        .filter(dsl::expires_at.gt(now))
        .first(conn)
        .optional()?)
}

/// Every live session of `user_id` (index `sessions_user`).
pub fn live_of_user(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<Vec<SessionRow>, StorageError> {
    Ok(dsl::sessions
        .filter(dsl::user_id.eq(user_id))
        .filter(dsl::ended_at.is_null())
        .filter(dsl::expires_at.gt(now))
        .load(conn)?)
}

pub fn touch(conn: &mut AnyConnection, id_hash: &str, now: i64) -> Result<(), StorageError> {
    diesel::update(dsl::sessions.filter(dsl::id_hash.eq(id_hash)))
        .set(dsl::last_seen_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// A stronger sign-in on a live session: new methods, level and authentication time.
pub fn strengthen(
    conn: &mut AnyConnection,
    id_hash: &str,
    amr: &str,
    acr: &str,
    now: i64,
) -> Result<(), StorageError> {
    diesel::update(
        dsl::sessions
            .filter(dsl::id_hash.eq(id_hash))
            .filter(dsl::ended_at.is_null()),
    )
    .set((
        dsl::amr.eq(amr),
        dsl::acr.eq(acr),
        dsl::auth_time.eq(now),
        dsl::last_seen_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Ends the session; its `expires_at` becomes the end, so that the purge finds it by the
/// expiry index (`storage::maintenance`).
pub fn end(conn: &mut AnyConnection, id_hash: &str, now: i64) -> Result<(), StorageError> {
    diesel::update(
        dsl::sessions
            .filter(dsl::id_hash.eq(id_hash))
            .filter(dsl::ended_at.is_null()),
    )
    .set((dsl::ended_at.eq(now), dsl::expires_at.eq(now)))
    .execute(conn)?;
    Ok(())
}

/// The live session whose public id (`sid`, as in ID tokens) is `sid`.
pub fn live_by_sid(
    conn: &mut AnyConnection,
    sid: &str,
    now: i64,
) -> Result<Option<SessionRow>, StorageError> {
    if !super::storable(sid) {
        return Ok(None);
    }
    Ok(dsl::sessions
        .filter(dsl::sid.eq(sid))
        .filter(dsl::ended_at.is_null())
        .filter(dsl::expires_at.gt(now))
        .first(conn)
        .optional()?)
}

/// One page of live sessions, newest first, of one user or of everyone: keyset pagination on
/// `(created_at, sid)` (index `sessions_created`), starting below `before`.
pub fn live_page(
    conn: &mut AnyConnection,
    user_id: Option<&str>,
    before: Option<(i64, &str)>,
    limit: i64,
    now: i64,
) -> Result<Vec<SessionRow>, StorageError> {
    let mut query = dsl::sessions
        .filter(dsl::ended_at.is_null())
        .filter(dsl::expires_at.gt(now))
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(dsl::user_id.eq(user_id.to_string()));
    }
    if let Some((created_at, sid)) = before {
        query = query.filter(
            dsl::created_at.lt(created_at).or(dsl::created_at
                .eq(created_at)
                .and(dsl::sid.lt(sid.to_string()))),
        );
    }
    Ok(query
        .order((dsl::created_at.desc(), dsl::sid.desc()))
        .limit(limit)
        .load(conn)?)
}
