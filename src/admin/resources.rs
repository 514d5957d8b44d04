//! Resource server registration (RFC 8707) and lookup, shared by the CLI and the admin API:
//! plain functions over a connection that return the stored record.

use serde::Serialize;
use serde_json::{json, Value};

use crate::oauth::resource_metadata::ResourceMetadata;
use crate::oauth::{ErrorCode, OAuthError};
use crate::storage::resources::{self, ResourceRow};
use crate::storage::{AnyConnection, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{0}")]
    Metadata(OAuthError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ResourceError {
    /// An RFC 6749 §5.2-shaped error body for the admin API.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Metadata(e) => e.to_json(),
            Self::Storage(StorageError::Conflict(m) | StorageError::NotFound(m)) => {
                json!({"error": ErrorCode::InvalidRequest, "error_description": m})
            }
            Self::Storage(e) => {
                json!({"error": "server_error", "error_description": e.to_string()})
            }
        }
    }
}

/// A registered resource as stored and shown: its metadata plus when it was registered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceRecord {
    #[serde(flatten)]
    pub metadata: ResourceMetadata,
    pub created_at: i64,
}

impl ResourceRecord {
    fn from_row(row: &ResourceRow) -> Result<Self, StorageError> {
        Ok(Self {
            metadata: metadata_of(row)?,
            created_at: row.created_at,
        })
    }
}

fn metadata_of(row: &ResourceRow) -> Result<ResourceMetadata, StorageError> {
    serde_json::from_str(&row.metadata)
        .map_err(|e| StorageError::Corrupt(format!("resource {}: {e}", row.resource)))
}

/// Registers a resource server from its metadata JSON; a resource already registered is a
/// conflict.
pub fn register(
    conn: &mut AnyConnection,
    metadata_json: &[u8],
    now: i64,
) -> Result<ResourceRecord, ResourceError> {
    let metadata = ResourceMetadata::from_json(metadata_json).map_err(ResourceError::Metadata)?;
    let row = ResourceRow {
        resource: metadata.resource.clone(),
        metadata: serde_json::to_string(&metadata)
            .map_err(|e| StorageError::Corrupt(e.to_string()))?,
        created_at: now,
    };
    resources::insert(conn, &row)?;
    Ok(ResourceRecord {
        metadata,
        created_at: now,
    })
}

/// Every registered resource, ordered by URI.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<ResourceRecord>, StorageError> {
    resources::all(conn)?
        .iter()
        .map(ResourceRecord::from_row)
        .collect()
}

pub fn show(
    conn: &mut AnyConnection,
    resource: &str,
) -> Result<Option<ResourceRecord>, StorageError> {
    resources::get(conn, resource)?
        .as_ref()
        .map(ResourceRecord::from_row)
        .transpose()
}

/// Removes a resource; tokens already issued for it stay valid until they expire, and grants
/// that named it can no longer be refreshed (the resource is unknown: `invalid_target`).
pub fn remove(conn: &mut AnyConnection, resource: &str) -> Result<(), StorageError> {
    resources::remove(conn, resource)
}

/// The metadata of a registered resource, for the protocol.
pub fn load(
    conn: &mut AnyConnection,
    resource: &str,
) -> Result<Option<ResourceMetadata>, StorageError> {
    resources::get(conn, resource)?
        .as_ref()
        .map(metadata_of)
        .transpose()
}

/// Recently loaded resources: a token request naming a resource needs no database read.
pub type ResourceCache = super::cache::TtlCache<ResourceMetadata>;
