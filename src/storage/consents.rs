//! Remembered consents: one row per user and client with the scope set allowed.

use diesel::prelude::*;

use super::schema::consents::dsl;
use super::{AnyConnection, StorageError};

pub fn scope_of(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<String>, StorageError> {
    Ok(dsl::consents
        .filter(dsl::user_id.eq(user_id))
        .filter(dsl::client_id.eq(client_id))
        .select(dsl::scope)
        .first(conn)
        .optional()?)
}

/// Replaces the remembered consent (both backends: delete then insert, in one transaction).
pub fn remember(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    scope: &str,
    now: i64,
) -> Result<(), StorageError> {
    conn.transaction::<_, StorageError, _>(|conn| {
        diesel::delete(
            dsl::consents
                .filter(dsl::user_id.eq(user_id))
                .filter(dsl::client_id.eq(client_id)),
        )
        .execute(conn)?;
        diesel::insert_into(dsl::consents)
            .values((
                dsl::user_id.eq(user_id),
                dsl::client_id.eq(client_id),
                dsl::scope.eq(scope),
                dsl::granted_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    })
}
