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
    crate::storage::transaction::<_, StorageError, _>(conn, |conn| {
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

/// A remembered consent, as the account page lists it.
#[derive(Debug, Clone, Queryable)]
pub struct ConsentRow {
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
}

/// Every consent `user_id` gave, oldest first (the primary key starts with the user).
pub fn of_user(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<ConsentRow>, StorageError> {
    Ok(dsl::consents
        .filter(dsl::user_id.eq(user_id))
        .select((dsl::client_id, dsl::scope, dsl::granted_at))
        .order((dsl::granted_at.asc(), dsl::client_id.asc()))
        .load(conn)?)
}

/// Forgets the consent; true when there was one.
pub fn forget(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> Result<bool, StorageError> {
    let n = diesel::delete(
        dsl::consents
            .filter(dsl::user_id.eq(user_id))
            .filter(dsl::client_id.eq(client_id)),
    )
    .execute(conn)?;
    Ok(n > 0)
}
