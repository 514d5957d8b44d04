//! The ids of accepted DPoP proofs, shared by the nodes of a PostgreSQL deployment (RFC 9449
//! §11.1: a proof is accepted once within its window). Keyed by a hash of the key's thumbprint
//! and the `jti`; forgotten when the proof's window has passed (`storage::maintenance`).

use diesel::prelude::*;

use super::schema::dpop_jtis::dsl;
use super::{AnyConnection, StorageError};

/// Records the (hashed) id; `false` when another request, on any node, recorded it first.
pub fn first_use(
    conn: &mut AnyConnection,
    jti_hash: &str,
    expires_at: i64,
) -> Result<bool, StorageError> {
    let inserted = diesel::insert_into(dsl::dpop_jtis)
        .values((dsl::jti_hash.eq(jti_hash), dsl::expires_at.eq(expires_at)))
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
