//! Authorization requests waiting for the login or consent page, keyed by the SHA-256 of the
//! id the browser carries in the form. Expired ones are purged (`storage::maintenance`).

use diesel::prelude::*;

use super::schema::auth_requests::dsl;
use super::{AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::auth_requests)]
pub struct AuthRequestRow {
    pub id_hash: String,
    pub client_id: String,
    pub request: String,
    pub csrf_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Who parked it (`web::client_address`), for the cap per address.
    pub client_address: String,
    /// The session (`sid`) that signed in on the login page for this request.
    pub signed_in_sid: Option<String>,
    /// Who gave the right password (or holds a session too weak for the request) and must now
    /// give a second factor; `pending_amr` the methods given so far, `pending_at` since when.
    pub pending_user_id: Option<String>,
    pub pending_amr: Option<String>,
    pub pending_at: Option<i64>,
}

/// Parks `row`; the oldest requests of the same client address beyond `cap` give way, so one
/// address can keep at most `cap` rows (SECURITY.md 27).
pub fn insert_capped(
    conn: &mut AnyConnection,
    row: &AuthRequestRow,
    cap: i64,
) -> Result<(), StorageError> {
    crate::storage::transaction(conn, |conn| {
        diesel::insert_into(dsl::auth_requests)
            .values(row)
            .execute(conn)?;
        // The new row stays; of the others the newest `cap - 1` do. At most one row is beyond
        // the cap, unless the cap was lowered.
        let beyond_cap: Vec<String> = dsl::auth_requests
            .filter(dsl::client_address.eq(&row.client_address))
            .filter(dsl::id_hash.ne(&row.id_hash))
            .order((dsl::created_at.desc(), dsl::id_hash.desc()))
            .select(dsl::id_hash)
            .offset(cap - 1)
            .load(conn)?;
        if !beyond_cap.is_empty() {
            diesel::delete(dsl::auth_requests.filter(dsl::id_hash.eq_any(&beyond_cap)))
                .execute(conn)?;
        }
        Ok(())
    })
}

pub fn live(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: i64,
) -> Result<Option<AuthRequestRow>, StorageError> {
    Ok(dsl::auth_requests
        .filter(dsl::id_hash.eq(id_hash))
        .filter(dsl::expires_at.gt(now))
        .first(conn)
        .optional()?)
}

/// Records that `user_id` gave the factors `amr` at `now` and must give a second one; the
/// sign-in recorded for an earlier step is cleared (only the finished sign-in counts).
pub fn mark_pending(
    conn: &mut AnyConnection,
    id_hash: &str,
    user_id: &str,
    amr: &str,
    now: i64,
) -> Result<(), StorageError> {
    diesel::update(dsl::auth_requests.filter(dsl::id_hash.eq(id_hash)))
        .set((
            dsl::pending_user_id.eq(user_id),
            dsl::pending_amr.eq(amr),
            dsl::pending_at.eq(now),
            dsl::signed_in_sid.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records that the session `sid` finished signing in for this request (after its second
/// factor, if it needed one); the pending step, if any, is done.
pub fn finish_second_step(
    conn: &mut AnyConnection,
    id_hash: &str,
    sid: &str,
) -> Result<(), StorageError> {
    diesel::update(dsl::auth_requests.filter(dsl::id_hash.eq(id_hash)))
        .set((
            dsl::signed_in_sid.eq(sid),
            dsl::pending_user_id.eq(None::<String>),
            dsl::pending_amr.eq(None::<String>),
            dsl::pending_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes the request; true when this call removed it (it is answered once).
pub fn take(conn: &mut AnyConnection, id_hash: &str) -> Result<bool, StorageError> {
    Ok(diesel::delete(dsl::auth_requests.filter(dsl::id_hash.eq(id_hash))).execute(conn)? == 1)
}
