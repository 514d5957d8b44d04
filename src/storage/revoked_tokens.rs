//! The access-token deny-list (RFC 7009): revoked JWTs by `jti`, each kept only until the token
//! would have expired anyway, then purged (`storage::maintenance`).

use diesel::prelude::*;

use super::schema::revoked_tokens::dsl;
use super::{revisions, AnyConnection, StorageError};

/// Adds `jti` to the deny-list until `expires_at`; revoking twice is not an error.
pub fn revoke(conn: &mut AnyConnection, jti: &str, expires_at: i64) -> Result<(), StorageError> {
    let inserted = diesel::insert_into(dsl::revoked_tokens)
        .values((dsl::jti.eq(jti), dsl::expires_at.eq(expires_at)))
        .execute(conn);
    match inserted {
        Ok(_) => revisions::bump(conn, revisions::TOKENS),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn is_revoked(conn: &mut AnyConnection, jti: &str) -> Result<bool, StorageError> {
    let found: Option<String> = dsl::revoked_tokens
        .filter(dsl::jti.eq(jti))
        .select(dsl::jti)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}
