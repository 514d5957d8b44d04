//! Client rows: the RFC 7591 metadata as JSON, and the client secret sealed under the master
//! key (a later grant, `client_secret_jwt`, needs the secret itself, so it cannot be a hash).

use diesel::prelude::*;

use super::schema::clients::dsl;
use super::{conflict_on_unique, revisions, AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::clients)]
pub struct ClientRow {
    pub client_id: String,
    pub secret_sealed: Option<Vec<u8>>,
    pub metadata: String,
    pub created_at: i64,
}

pub fn insert(conn: &mut AnyConnection, row: &ClientRow) -> Result<(), StorageError> {
    diesel::insert_into(dsl::clients)
        .values(row)
        .execute(conn)
        .map_err(|e| {
            conflict_on_unique(e, || format!("client {:?} already exists", row.client_id))
        })?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, client_id: &str) -> Result<Option<ClientRow>, StorageError> {
    if !super::storable(client_id) {
        return Ok(None);
    }
    Ok(dsl::clients
        .filter(dsl::client_id.eq(client_id))
        .first(conn)
        .optional()?)
}

pub fn all(conn: &mut AnyConnection) -> Result<Vec<ClientRow>, StorageError> {
    Ok(dsl::clients.order(dsl::client_id.asc()).load(conn)?)
}

pub fn remove(conn: &mut AnyConnection, client_id: &str) -> Result<(), StorageError> {
    let n = diesel::delete(dsl::clients.filter(dsl::client_id.eq(client_id))).execute(conn)?;
    if n == 0 {
        return Err(StorageError::NotFound(format!("no client {client_id:?}")));
    }
    // The client's tokens stop being valid with it.
    revisions::bump(conn, revisions::TOKENS)
}

/// Replaces the sealed secret (master key rotation).
pub fn reseal(
    conn: &mut AnyConnection,
    client_id: &str,
    sealed: &[u8],
) -> Result<(), StorageError> {
    diesel::update(dsl::clients.filter(dsl::client_id.eq(client_id)))
        .set(dsl::secret_sealed.eq(sealed))
        .execute(conn)?;
    Ok(())
}

/// Replaces the client's metadata and sealed secret (`None`: the client has no secret).
pub fn update(
    conn: &mut AnyConnection,
    client_id: &str,
    metadata: &str,
    secret_sealed: Option<&[u8]>,
) -> Result<(), StorageError> {
    let n = diesel::update(dsl::clients.filter(dsl::client_id.eq(client_id)))
        .set((
            dsl::metadata.eq(metadata),
            dsl::secret_sealed.eq(secret_sealed),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(StorageError::NotFound(format!("no client {client_id:?}")));
    }
    // Tokens check the client's registration: moved so that every node reloads it.
    revisions::bump(conn, revisions::TOKENS)
}
