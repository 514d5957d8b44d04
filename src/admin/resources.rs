//! Resource server registration (RFC 8707) and lookup, shared by the CLI and the admin API:
//! plain functions over a connection that return the stored record.

use serde::Serialize;
use serde_json::{json, Value};

use crate::audit::{By, EventType};
use crate::oauth::resource_metadata::ResourceMetadata;
use crate::oauth::{ErrorCode, OAuthError};
use crate::storage::resources::{self, ResourceRow};
use crate::storage::{atomically, AnyConnection, StorageError};

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

/// [`register`] with its audit event, in one transaction.
pub fn create(
    conn: &mut AnyConnection,
    metadata_json: &[u8],
    by: &By,
    now: i64,
) -> Result<ResourceRecord, ResourceError> {
    atomically(conn, |conn| {
        let record = register(conn, metadata_json, now)?;
        by.event(EventType::ResourceAdded)
            .target(record.metadata.resource.as_str())
            .details(json!({ "scope": record.metadata.scope }))
            .record(conn, now)?;
        Ok(record)
    })
}

/// Replaces the registration of `resource` with `metadata_json`, checked as at registration;
/// its `resource` must stay the same (the URI is the resource's identity and tokens' `aud`).
pub fn update(
    conn: &mut AnyConnection,
    resource: &str,
    metadata_json: &[u8],
    by: &By,
    now: i64,
) -> Result<ResourceRecord, ResourceError> {
    let metadata = ResourceMetadata::from_json(metadata_json).map_err(ResourceError::Metadata)?;
    if metadata.resource != resource {
        return Err(ResourceError::Metadata(OAuthError::new(
            ErrorCode::InvalidRequest,
            format!("resource must stay {resource:?}; register a new resource server instead"),
        )));
    }
    atomically(conn, |conn| {
        let row = resources::get(conn, resource)?
            .ok_or_else(|| StorageError::NotFound(format!("no resource {resource:?}")))?;
        let stored =
            serde_json::to_string(&metadata).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        resources::update(conn, resource, &stored)?;
        by.event(EventType::ResourceUpdated)
            .target(resource)
            .details(json!({ "scope": metadata.scope }))
            .record(conn, now)?;
        Ok(ResourceRecord {
            metadata,
            created_at: row.created_at,
        })
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
pub fn remove(
    conn: &mut AnyConnection,
    resource: &str,
    by: &By,
    now: i64,
) -> Result<(), StorageError> {
    atomically(conn, |conn| {
        resources::remove(conn, resource)?;
        by.event(EventType::ResourceRemoved)
            .target(resource)
            .record(conn, now)
    })
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
