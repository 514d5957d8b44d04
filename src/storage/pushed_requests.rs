//! Pushed authorization requests (RFC 9126), keyed by the SHA-256 of the random part of their
//! `request_uri`. Each is taken once, by the client that pushed it, before it expires; expired
//! ones are purged (`storage::maintenance`).

use diesel::prelude::*;

use super::schema::pushed_requests::dsl;
use super::{AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::pushed_requests)]
pub struct PushedRequestRow {
    pub id_hash: String,
    pub client_id: String,
    /// The request's parameters as a JSON object, client authentication removed.
    pub params: String,
    /// Who pushed it (`web::client_address`), for the cap per address.
    pub client_address: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Stores `row`. With a `cap`, the oldest requests pushed from the same client address beyond
/// it give way (a public client's requests can be pushed by anyone: SECURITY.md 27).
pub fn insert(
    conn: &mut AnyConnection,
    row: &PushedRequestRow,
    cap: Option<i64>,
) -> Result<(), StorageError> {
    super::transaction(conn, |conn| {
        diesel::insert_into(dsl::pushed_requests)
            .values(row)
            .execute(conn)?;
        let Some(cap) = cap else {
            return Ok(());
        };
        let beyond_cap: Vec<String> = dsl::pushed_requests
            .filter(dsl::client_address.eq(&row.client_address))
            .filter(dsl::id_hash.ne(&row.id_hash))
            .order((dsl::created_at.desc(), dsl::id_hash.desc()))
            .select(dsl::id_hash)
            .offset(cap.max(1) - 1)
            .load(conn)?;
        if !beyond_cap.is_empty() {
            diesel::delete(dsl::pushed_requests.filter(dsl::id_hash.eq_any(&beyond_cap)))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Takes the live request `id_hash` of `client_id` out (its parameters), so it is used once:
/// of concurrent takes exactly one gets it. Someone else's, expired or used: `None`.
pub fn take(
    conn: &mut AnyConnection,
    id_hash: &str,
    client_id: &str,
    now: i64,
) -> Result<Option<String>, StorageError> {
    super::transaction(conn, |conn| {
        let found: Option<String> = dsl::pushed_requests
            .filter(dsl::id_hash.eq(id_hash))
            .filter(dsl::client_id.eq(client_id))
            .filter(dsl::expires_at.gt(now))
            .select(dsl::params)
            .first(conn)
            .optional()?;
        let Some(params) = found else {
            return Ok(None);
        };
        let taken = diesel::delete(
            dsl::pushed_requests
                .filter(dsl::id_hash.eq(id_hash))
                .filter(dsl::client_id.eq(client_id)),
        )
        .execute(conn)?;
        Ok((taken == 1).then_some(params))
    })
}
