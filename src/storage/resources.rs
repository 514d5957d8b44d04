//! Resource server rows (RFC 8707): the registration as JSON, keyed by the resource URI.

use diesel::prelude::*;

use super::schema::resources::dsl;
use super::{conflict_on_unique, AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::resources)]
pub struct ResourceRow {
    pub resource: String,
    pub metadata: String,
    pub created_at: i64,
}

pub fn insert(conn: &mut AnyConnection, row: &ResourceRow) -> Result<(), StorageError> {
    diesel::insert_into(dsl::resources)
        .values(row)
        .execute(conn)
        .map_err(|e| {
            conflict_on_unique(e, || format!("resource {:?} already exists", row.resource))
        })?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, resource: &str) -> Result<Option<ResourceRow>, StorageError> {
    if !super::storable(resource) {
        return Ok(None);
    }
    Ok(dsl::resources
        .filter(dsl::resource.eq(resource))
        .first(conn)
        .optional()?)
}

pub fn all(conn: &mut AnyConnection) -> Result<Vec<ResourceRow>, StorageError> {
    Ok(dsl::resources.order(dsl::resource.asc()).load(conn)?)
}

pub fn remove(conn: &mut AnyConnection, resource: &str) -> Result<(), StorageError> {
    let n = diesel::delete(dsl::resources.filter(dsl::resource.eq(resource))).execute(conn)?;
    if n == 0 {
        return Err(StorageError::NotFound(format!("no resource {resource:?}")));
    }
    Ok(())
}

pub fn update(
    conn: &mut AnyConnection,
    resource: &str,
    metadata: &str,
) -> Result<(), StorageError> {
    let n = diesel::update(dsl::resources.filter(dsl::resource.eq(resource)))
        .set(dsl::metadata.eq(metadata))
        .execute(conn)?;
    if n == 0 {
        return Err(StorageError::NotFound(format!("no resource {resource:?}")));
    }
    Ok(())
}
