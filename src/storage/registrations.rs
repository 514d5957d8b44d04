//! Dynamic client registration (RFC 7591, RFC 7592): initial access tokens, and which clients
//! were registered at `/register` with the hash of their registration access token. Tokens are
//! stored only as their SHA-256; expired initial access tokens are purged
//! (`storage::maintenance`); a registration row goes with its client (ON DELETE CASCADE).

use diesel::prelude::*;

use super::schema::initial_access_tokens::dsl as initial;
use super::schema::registered_clients::dsl as registered;
use super::{AnyConnection, StorageError};

/// The lock row every registration takes (migration 000011), so that the count of registered
/// clients and the insert that follows it are one step on every node.
pub const LOCK: &str = "registrations";

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::initial_access_tokens)]
pub struct InitialTokenRow {
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::registered_clients)]
pub struct RegisteredRow {
    pub client_id: String,
    pub access_token_hash: String,
    /// Who registered it (`web::client_address`), for operators.
    pub client_address: String,
    pub created_at: i64,
}

pub fn insert_initial_token(
    conn: &mut AnyConnection,
    row: &InitialTokenRow,
) -> Result<(), StorageError> {
    diesel::insert_into(initial::initial_access_tokens)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Whether `token_hash` is an initial access token that is unused and unexpired at `now`.
pub fn initial_token_is_live(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<bool, StorageError> {
    if !super::storable(token_hash) {
        return Ok(false);
    }
    let found: Option<String> = initial::initial_access_tokens
        .filter(initial::token_hash.eq(token_hash))
        .filter(initial::expires_at.gt(now))
        .select(initial::token_hash)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

/// Uses the initial access token up: true for exactly one of any number of concurrent callers,
/// and only while it is unexpired. Called in the transaction that registers the client, so a
/// registration that fails leaves the token as it was.
pub fn consume_initial_token(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<bool, StorageError> {
    if !super::storable(token_hash) {
        return Ok(false);
    }
    let n = diesel::delete(
        initial::initial_access_tokens
            .filter(initial::token_hash.eq(token_hash))
            .filter(initial::expires_at.gt(now)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

pub fn insert(conn: &mut AnyConnection, row: &RegisteredRow) -> Result<(), StorageError> {
    diesel::insert_into(registered::registered_clients)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// How many dynamically registered clients there are.
pub fn count(conn: &mut AnyConnection) -> Result<i64, StorageError> {
    Ok(registered::registered_clients.count().get_result(conn)?)
}

/// The hash of the registration access token of `client_id`, when it was registered at
/// `/register` (and still exists).
pub fn access_token_hash(
    conn: &mut AnyConnection,
    client_id: &str,
) -> Result<Option<String>, StorageError> {
    if !super::storable(client_id) {
        return Ok(None);
    }
    Ok(registered::registered_clients
        .filter(registered::client_id.eq(client_id))
        .select(registered::access_token_hash)
        .first(conn)
        .optional()?)
}
