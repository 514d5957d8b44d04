//! Client registration (RFC 7591 metadata in, RFC 7591 response out) and lookup.

use serde_json::{json, Value};

use crate::audit::{By, EventType};
use crate::crypto::master_key::MasterKey;
use crate::crypto::random;
use crate::oauth::client_auth::ClientSecret;
use crate::oauth::client_metadata::{Client, ClientMetadata};
use crate::oauth::{ErrorCode, OAuthError};
use crate::storage::clients::{self, ClientRow};
use crate::storage::{atomically, AnyConnection, StorageError};

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
        .map(|s| seal(master, &client_id, s))
        .transpose()?;
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

fn no_client(client_id: &str) -> ClientError {
    ClientError::Storage(StorageError::NotFound(format!("no client {client_id:?}")))
}

fn seal(master: &MasterKey, client_id: &str, secret: &str) -> Result<Vec<u8>, StorageError> {
    master
        .seal(secret.as_bytes(), client_id.as_bytes())
        .map_err(|e| StorageError::Corrupt(e.to_string()))
}

/// Every client, as [`describe`] shows it, ordered by id.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<Value>, StorageError> {
    clients::all(conn)?
        .iter()
        .map(|row| metadata_of(row).map(|m| describe(row, &m)))
        .collect()
}

/// One client as [`describe`] shows it.
pub fn show(conn: &mut AnyConnection, client_id: &str) -> Result<Option<Value>, StorageError> {
    clients::get(conn, client_id)?
        .map(|row| metadata_of(&row).map(|m| describe(&row, &m)))
        .transpose()
}

/// [`register`] with its audit event, in one transaction.
pub fn create(
    conn: &mut AnyConnection,
    master: &MasterKey,
    metadata_json: &[u8],
    client_id: Option<String>,
    by: &By,
    now: i64,
) -> Result<Value, ClientError> {
    atomically(conn, |conn| {
        let response = register(conn, master, metadata_json, client_id, now)?;
        by.event(EventType::ClientAdded)
            .target(response["client_id"].as_str().unwrap_or_default())
            .details(json!({
                "grant_types": response["grant_types"],
                "scope": response["scope"],
            }))
            .record(conn, now)?;
        Ok(response)
    })
}

/// Replaces the client's whole registration with `metadata_json`, checked exactly as at
/// registration; the id stays. A client that keeps authenticating with a secret keeps it; one
/// that starts to gets a new one (in the answer, once); one that stops loses it.
pub fn update(
    conn: &mut AnyConnection,
    master: &MasterKey,
    client_id: &str,
    metadata_json: &[u8],
    by: &By,
    now: i64,
) -> Result<Value, ClientError> {
    let metadata = ClientMetadata::from_json(metadata_json).map_err(ClientError::Metadata)?;
    atomically(conn, |conn| {
        let row = clients::get(conn, client_id)?.ok_or_else(|| no_client(client_id))?;
        let mut new_secret = None;
        let sealed = match (
            metadata.token_endpoint_auth_method.uses_secret(),
            row.secret_sealed,
        ) {
            (true, Some(sealed)) => Some(sealed),
            (true, None) => {
                let secret = random::secret_256();
                let sealed = seal(master, client_id, &secret)?;
                new_secret = Some(secret);
                Some(sealed)
            }
            (false, _) => None,
        };
        let stored =
            serde_json::to_string(&metadata).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        clients::update(conn, client_id, &stored, sealed.as_deref())?;
        by.event(EventType::ClientUpdated)
            .target(client_id)
            .details(json!({ "new_secret": new_secret.is_some() }))
            .record(conn, now)?;
        let row = ClientRow {
            secret_sealed: sealed,
            metadata: stored,
            ..row
        };
        let mut response = describe(&row, &metadata);
        if let Some(secret) = new_secret {
            response["client_secret"] = secret.into();
            response["client_secret_expires_at"] = 0.into();
        }
        Ok(response)
    })
}

/// A new secret for a client that authenticates with one; the old one stops working at once
/// (on other nodes within `clients.cache_ttl`). The secret is in the answer only.
pub fn rotate_secret(
    conn: &mut AnyConnection,
    master: &MasterKey,
    client_id: &str,
    by: &By,
    now: i64,
) -> Result<Value, ClientError> {
    atomically(conn, |conn| {
        let row = clients::get(conn, client_id)?.ok_or_else(|| no_client(client_id))?;
        let metadata = metadata_of(&row)?;
        if !metadata.token_endpoint_auth_method.uses_secret() {
            return Err(ClientError::Metadata(OAuthError::new(
                ErrorCode::InvalidRequest,
                format!("client {client_id:?} authenticates without a client secret"),
            )));
        }
        let secret = random::secret_256();
        let sealed = seal(master, client_id, &secret)?;
        clients::update(conn, client_id, &row.metadata, Some(&sealed))?;
        by.event(EventType::ClientSecretRotated)
            .target(client_id)
            .record(conn, now)?;
        Ok(json!({
            "client_id": client_id,
            "client_secret": secret,
            "client_secret_expires_at": 0,
        }))
    })
}

/// Removes the client with its grants and consents (ON DELETE CASCADE); its tokens stop being
/// accepted.
pub fn remove(
    conn: &mut AnyConnection,
    client_id: &str,
    by: &By,
    now: i64,
) -> Result<(), StorageError> {
    atomically(conn, |conn| {
        clients::remove(conn, client_id)?;
        by.event(EventType::ClientRemoved)
            .target(client_id)
            .record(conn, now)
    })
}
