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
    /// RFC 9449 §5: the thumbprint of the key a public client's token is bound to; refreshing
    /// it takes a DPoP proof with that key.
    pub dpop_jkt: Option<String>,
}

/// A new grant and its code, together.
pub fn insert_with_code(
    conn: &mut AnyConnection,
    grant: &GrantRow,
    code: &CodeRow,
) -> Result<(), StorageError> {
    crate::storage::transaction::<_, StorageError, _>(conn, |conn| {
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

/// Revokes a grant: its refresh tokens and the access tokens issued under it stop working. The
/// grant may be purged once its last access token is dead: `horizon` seconds from now (the
/// longest access-token lifetime plus the clock skew). True only when this call revoked it, so
/// that caches are dropped for a real revocation and never for a request that changed nothing.
pub fn revoke_grant(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
    horizon: i64,
) -> Result<bool, StorageError> {
    let n = diesel::update(
        grants::table
            .filter(grants::id.eq(id))
            .filter(grants::revoked_at.is_null()),
    )
    .set((
        grants::revoked_at.eq(now),
        grants::expires_at.eq(now + horizon),
    ))
    .execute(conn)?;
    if n > 0 {
        revisions::bump(conn, revisions::TOKENS)?;
    }
    Ok(n > 0)
}

/// Every grant made during the IdP session `sid` (index `grants_sid`): the clients that took
/// part in it (OIDC Back-Channel Logout 1.0 §2.7).
pub fn by_sid(conn: &mut AnyConnection, sid: &str) -> Result<Vec<GrantRow>, StorageError> {
    Ok(grants::table.filter(grants::sid.eq(sid)).load(conn)?)
}

/// Every grant `user_id` gave `client_id` (index `grants_user`).
pub fn of_user_for_client(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Vec<GrantRow>, StorageError> {
    Ok(grants::table
        .filter(grants::user_id.eq(user_id))
        .filter(grants::client_id.eq(client_id))
        .load(conn)?)
}

pub fn code(conn: &mut AnyConnection, code_hash: &str) -> Result<Option<CodeRow>, StorageError> {
    Ok(codes::table
        .filter(codes::code_hash.eq(code_hash))
        .first(conn)
        .optional()?)
}

/// Forgets every answer kept for `tokens.refresh_grace` (a master-key rewrap: they were sealed
/// under the old key, and a retry within the grace is all they were for). Returns how many.
pub fn forget_kept_answers(conn: &mut AnyConnection) -> Result<usize, StorageError> {
    Ok(
        diesel::update(refresh::table.filter(refresh::successor_sealed.is_not_null()))
            .set(refresh::successor_sealed.eq(None::<Vec<u8>>))
            .execute(conn)?,
    )
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

/// What a token response spends: a code, or a refresh token (with, while
/// `tokens.refresh_grace` lasts, the response of its rotation, sealed).
pub enum Spend<'a> {
    Code {
        code_hash: &'a str,
    },
    Refresh {
        token_hash: &'a str,
        successor_sealed: Option<Vec<u8>>,
    },
    /// An approved device code (RFC 8628 §3.5).
    Device {
        device_code_hash: &'a str,
    },
}

/// How a `redeem` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// Spent, the new refresh token stored, the grant's expiry moved: send the response.
    Committed,
    /// Someone spent it first (a replay, or a concurrent twin); nothing was written.
    AlreadyUsed,
    /// It expired (or was purged) since it was checked; nothing was written.
    Expired,
    /// The grant was revoked since it was checked; nothing was written.
    GrantRevoked,
}

/// The only write of a code redemption or a refresh, done after the whole response was built:
/// in one transaction the code or refresh token is spent (`UPDATE … WHERE … IS NULL`, exactly
/// one row: RFC 6749 §4.1.2, §6; of concurrent callers one wins, the others wait for its row
/// lock on PostgreSQL or for the write lock on SQLite and then find it spent), the new refresh
/// token is stored, and the grant, still live, is kept until at least `grant_until`. Anything
/// but `Committed` leaves the database as it was.
pub fn redeem(
    conn: &mut AnyConnection,
    spend: Spend<'_>,
    grant: &GrantRow,
    grant_until: i64,
    new_refresh: Option<&RefreshRow>,
    now: i64,
) -> Result<Redeemed, StorageError> {
    enum Abort {
        Revoked,
        Storage(StorageError),
    }
    impl From<diesel::result::Error> for Abort {
        fn from(e: diesel::result::Error) -> Self {
            Self::Storage(e.into())
        }
    }
    let done = crate::storage::transaction::<_, Abort, _>(conn, |conn| {
        // First statement of the transaction is the write: SQLite takes its write lock here
        // (waiting out `busy_timeout`), so no stale read snapshot can be upgraded.
        let spent = match &spend {
            Spend::Code { code_hash } => diesel::update(
                codes::table
                    .filter(codes::code_hash.eq(code_hash))
                    .filter(codes::consumed_at.is_null())
                    .filter(codes::expires_at.gt(now)),
            )
            .set(codes::consumed_at.eq(now))
            .execute(conn)?,
            Spend::Refresh {
                token_hash,
                successor_sealed,
            } => diesel::update(
                refresh::table
                    .filter(refresh::token_hash.eq(token_hash))
                    .filter(refresh::used_at.is_null())
                    .filter(refresh::expires_at.gt(now)),
            )
            .set((
                refresh::used_at.eq(now),
                refresh::successor_sealed.eq(successor_sealed.as_deref()),
            ))
            .execute(conn)?,
            Spend::Device { device_code_hash } => {
                super::device_codes::spend(conn, device_code_hash, now)?
            }
        };
        if spent != 1 {
            return Ok(false);
        }
        // Only this transaction can extend the grant now (the one live code or refresh token
        // of a grant is what it just spent), so the expiry read before is current; a
        // revocation meanwhile is seen through `revoked_at`.
        let live = diesel::update(
            grants::table
                .filter(grants::id.eq(&grant.id))
                .filter(grants::revoked_at.is_null()),
        )
        .set(grants::expires_at.eq(grant.expires_at.max(grant_until)))
        .execute(conn)?;
        if live != 1 {
            return Err(Abort::Revoked);
        }
        if let Some(row) = new_refresh {
            insert_refresh(conn, row).map_err(Abort::Storage)?;
        }
        Ok(true)
    });
    match done {
        Ok(true) => Ok(Redeemed::Committed),
        Err(Abort::Revoked) => Ok(Redeemed::GrantRevoked),
        Err(Abort::Storage(e)) => Err(e),
        // Not spent: used by someone else, or expired. Read after the winner committed.
        Ok(false) => {
            let used = match spend {
                Spend::Code { code_hash } => code(conn, code_hash)?.and_then(|c| c.consumed_at),
                Spend::Refresh { token_hash, .. } => {
                    refresh_token(conn, token_hash)?.and_then(|r| r.used_at)
                }
                Spend::Device { device_code_hash } => {
                    super::device_codes::by_device_code(conn, device_code_hash)?
                        .and_then(|r| r.consumed_at)
                }
            };
            Ok(match used {
                Some(_) => Redeemed::AlreadyUsed,
                None => Redeemed::Expired,
            })
        }
    }
}
