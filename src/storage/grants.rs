//! Grants, authorization codes and refresh tokens: what a user's sign-in to a client produced.
//! Codes and refresh tokens are stored as hashes and used once, atomically.

use diesel::prelude::*;

use super::schema::{authorization_codes as codes, grants, refresh_tokens as refresh};
use super::{revisions, AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::grants)]
pub struct GrantRow {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub sid: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub acr: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The resource server (RFC 8707) the grant's access tokens are for, if one was asked for.
    pub resource: Option<String>,
    /// After this no token of the grant can be valid: the maintenance task may delete it.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::authorization_codes)]
pub struct CodeRow {
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::refresh_tokens)]
pub struct RefreshRow {
    pub token_hash: String,
    pub grant_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The response of the refresh that used this token, sealed, while `tokens.refresh_grace`
    /// lets a retry have it again.
    pub successor_sealed: Option<Vec<u8>>,
}

/// A new grant and its code, together.
pub fn insert_with_code(
    conn: &mut AnyConnection,
    grant: &GrantRow,
    code: &CodeRow,
) -> Result<(), StorageError> {
    conn.transaction::<_, StorageError, _>(|conn| {
        diesel::insert_into(grants::table)
            .values(grant)
            .execute(conn)?;
        diesel::insert_into(codes::table)
            .values(code)
            .execute(conn)?;
        Ok(())
    })
}

pub fn grant(conn: &mut AnyConnection, id: &str) -> Result<Option<GrantRow>, StorageError> {
    Ok(grants::table
        .filter(grants::id.eq(id))
        .first(conn)
        .optional()?)
}

/// Revokes a grant: its refresh tokens and the access tokens issued under it stop working.
pub fn revoke_grant(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), StorageError> {
    let n = diesel::update(
        grants::table
            .filter(grants::id.eq(id))
            .filter(grants::revoked_at.is_null()),
    )
    .set(grants::revoked_at.eq(now))
    .execute(conn)?;
    if n > 0 {
        revisions::bump(conn, revisions::TOKENS)?;
    }
    Ok(())
}

/// Every grant made during the IdP session `sid` (index `grants_sid`): the clients that took
/// part in it (OIDC Back-Channel Logout 1.0 §2.7).
pub fn by_sid(conn: &mut AnyConnection, sid: &str) -> Result<Vec<GrantRow>, StorageError> {
    Ok(grants::table.filter(grants::sid.eq(sid)).load(conn)?)
}

pub fn code(conn: &mut AnyConnection, code_hash: &str) -> Result<Option<CodeRow>, StorageError> {
    Ok(codes::table
        .filter(codes::code_hash.eq(code_hash))
        .first(conn)
        .optional()?)
}

/// Marks the code used; true only for the one caller that changed the row (RFC 6749 §4.1.2:
/// a code is used once).
pub fn consume_code(
    conn: &mut AnyConnection,
    code_hash: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let n = diesel::update(
        codes::table
            .filter(codes::code_hash.eq(code_hash))
            .filter(codes::consumed_at.is_null())
            .filter(codes::expires_at.gt(now)),
    )
    .set(codes::consumed_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn insert_refresh(conn: &mut AnyConnection, row: &RefreshRow) -> Result<(), StorageError> {
    diesel::insert_into(refresh::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn refresh_token(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<RefreshRow>, StorageError> {
    Ok(refresh::table
        .filter(refresh::token_hash.eq(token_hash))
        .first(conn)
        .optional()?)
}

/// Marks a refresh token used (rotation); true only for the one caller that changed the row.
pub fn use_refresh(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let n = diesel::update(
        refresh::table
            .filter(refresh::token_hash.eq(token_hash))
            .filter(refresh::used_at.is_null())
            .filter(refresh::expires_at.gt(now)),
    )
    .set(refresh::used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}
