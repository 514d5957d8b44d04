//! Client registration (RFC 7591 metadata in, RFC 7591 response out) and lookup.

use serde_json::{json, Value};

use crate::crypto::master_key::MasterKey;
use crate::crypto::random;
use crate::oauth::client_auth::ClientSecret;
use crate::oauth::client_metadata::{Client, ClientMetadata};
use crate::oauth::{ErrorCode, OAuthError};
use crate::storage::clients::{self, ClientRow};
use crate::storage::{AnyConnection, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Metadata(OAuthError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ClientError {
    /// The RFC 7591 §3.2.2 error body.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Metadata(e) => e.to_json(),
            Self::Storage(StorageError::Conflict(m)) => {
                json!({"error": ErrorCode::InvalidClientMetadata, "error_description": m})
            }
            Self::Storage(e) => {
                json!({"error": "server_error", "error_description": e.to_string()})
            }
        }
    }
}

/// RFC 6749 §2.2 / RFC 7591: client ids are VSCHAR; Sigil keeps them to a URL-safe set.
fn check_client_id(id: &str) -> Result<(), ClientError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ClientError::Metadata(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "client_id must be 1–128 characters of A–Z a–z 0–9 - . _ ~ :",
        )))
    }
}

/// Registers a client. The secret (for the secret-based methods; a `private_key_jwt` client
/// has keys instead) appears only in the returned JSON.
pub fn register(
    conn: &mut AnyConnection,
    master: &MasterKey,
    metadata_json: &[u8],
    client_id: Option<String>,
    now: i64,
) -> Result<Value, ClientError> {
    let metadata = ClientMetadata::from_json(metadata_json).map_err(ClientError::Metadata)?;
    let client_id = client_id.unwrap_or_else(random::id_128);
    check_client_id(&client_id)?;
    let secret = metadata
        .token_endpoint_auth_method
        .uses_secret()
        .then(random::secret_256);
    let secret_sealed = secret
        .as_ref()
        .map(|s| master.seal(s.as_bytes(), client_id.as_bytes()))
        .transpose()
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let row = ClientRow {
        client_id: client_id.clone(),
        secret_sealed,
        metadata: serde_json::to_string(&metadata)
            .map_err(|e| StorageError::Corrupt(e.to_string()))?,
        created_at: now,
    };
    clients::insert(conn, &row)?;
    let mut response = describe(&row, &metadata);
    if let Some(secret) = secret {
        // RFC 7591 §3.2.1: 0 means the secret does not expire.
        response["client_secret"] = secret.into();
        response["client_secret_expires_at"] = 0.into();
    }
    Ok(response)
}

/// The client's registered metadata plus `client_id` and `client_id_issued_at`, never the
/// secret.
pub fn describe(row: &ClientRow, metadata: &ClientMetadata) -> Value {
    let mut v = serde_json::to_value(metadata).unwrap_or_else(|_| json!({}));
    v["client_id"] = row.client_id.clone().into();
    v["client_id_issued_at"] = row.created_at.into();
    v
}

pub fn metadata_of(row: &ClientRow) -> Result<ClientMetadata, StorageError> {
    serde_json::from_str(&row.metadata)
        .map_err(|e| StorageError::Corrupt(format!("client {}: {e}", row.client_id)))
}

/// Loads a client with its secret opened, for authentication.
pub fn load(
    conn: &mut AnyConnection,
    master: &MasterKey,
    client_id: &str,
) -> Result<Option<Client>, StorageError> {
    let Some(row) = clients::get(conn, client_id)? else {
        return Ok(None);
    };
    let metadata = metadata_of(&row)?;
    let secret = row
        .secret_sealed
        .as_ref()
        .map(|sealed| {
            master
                .open(sealed, row.client_id.as_bytes())
                .map_err(|e| StorageError::Corrupt(format!("client {}: {e}", row.client_id)))
                .and_then(|plain| {
                    String::from_utf8(plain).map_err(|_| {
                        StorageError::Corrupt(format!("client {}: secret", row.client_id))
                    })
                })
                .map(ClientSecret::new)
        })
        .transpose()?;
    Ok(Some(Client {
        client_id: row.client_id,
        metadata,
        secret,
    }))
}

/// Recently loaded clients: the token endpoint's hot path (client_credentials) needs no
/// database read.
pub type ClientCache = super::cache::TtlCache<Client>;
