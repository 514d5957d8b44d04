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
}

pub fn insert(conn: &mut AnyConnection, row: &AuthRequestRow) -> Result<(), StorageError> {
    diesel::insert_into(dsl::auth_requests)
        .values(row)
        .execute(conn)?;
    Ok(())
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

/// Removes the request; true when this call removed it (it is answered once).
pub fn take(conn: &mut AnyConnection, id_hash: &str) -> Result<bool, StorageError> {
    Ok(diesel::delete(dsl::auth_requests.filter(dsl::id_hash.eq(id_hash))).execute(conn)? == 1)
}
