//! Client assertion ids already accepted (RFC 7523 §3: "The JWT MAY contain a jti claim … the
//! authorization server may ensure that JWTs are not replayed"): Sigil accepts a jti once per
//! client, and forgets it when the assertion has expired (`storage::maintenance`).

use diesel::prelude::*;

use super::schema::client_assertions::dsl;
use super::{AnyConnection, StorageError};

/// Records the (hashed) jti; `false` when it was already used — a replay.
pub fn first_use(
    conn: &mut AnyConnection,
    client_id: &str,
    jti_hash: &str,
    expires_at: i64,
) -> Result<bool, StorageError> {
    let inserted = diesel::insert_into(dsl::client_assertions)
        .values((
            dsl::client_id.eq(client_id),
            dsl::jti_hash.eq(jti_hash),
            dsl::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
