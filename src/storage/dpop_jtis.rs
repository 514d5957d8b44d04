//! The ids of accepted DPoP proofs, shared by the nodes of a PostgreSQL deployment (RFC 9449
//! §11.1: a proof is accepted once within its window). Keyed by a hash of the key's thumbprint
//! and the `jti`; forgotten when the proof's window has passed (`storage::maintenance`).

use diesel::sql_types::{BigInt, Text};
use diesel::RunQueryDsl;

use super::{AnyConnection, StorageError};

/// Records the (hashed) id; `false` when another request, on any node, recorded it first. A
/// replay is no error for the database (`ON CONFLICT DO NOTHING`: nothing in its log).
pub fn first_use(
    conn: &mut AnyConnection,
    jti_hash: &str,
    expires_at: i64,
) -> Result<bool, StorageError> {
    let inserted = diesel::sql_query(
        "INSERT INTO dpop_jtis (jti_hash, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(jti_hash)
    .bind::<BigInt, _>(expires_at)
    .execute(conn)?;
    Ok(inserted == 1)
}
