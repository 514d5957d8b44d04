//! One-time password-set links: the SHA-256 of each token, one link a user. A new link
//! replaces the old; using one deletes it in the same statement that finds it, so a link works
//! once even when two requests race (DESIGN.md / STYLE.md 8: single use is atomic).

use diesel::prelude::*;

use super::schema::password_links::dsl;
use super::{AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::password_links)]
pub struct LinkRow {
    pub user_id: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Stores the user's link, replacing any earlier one (delete then insert: both backends).
pub fn replace(conn: &mut AnyConnection, row: &LinkRow) -> Result<(), StorageError> {
    diesel::delete(dsl::password_links.filter(dsl::user_id.eq(&row.user_id))).execute(conn)?;
    diesel::insert_into(dsl::password_links)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The live link with this token hash, if any (expired links are not found).
pub fn live(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<LinkRow>, StorageError> {
    if !super::storable(token_hash) {
        return Ok(None);
    }
    Ok(dsl::password_links
        .filter(dsl::token_hash.eq(token_hash))
        .filter(dsl::expires_at.gt(now))
        .first(conn)
        .optional()?)
}

/// Uses the live link of `user_id` with this hash: true when exactly this call deleted it.
pub fn consume(
    conn: &mut AnyConnection,
    token_hash: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let n = diesel::delete(
        dsl::password_links
            .filter(dsl::token_hash.eq(token_hash))
            .filter(dsl::user_id.eq(user_id))
            .filter(dsl::expires_at.gt(now)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// When the user's link expires, if they have a live one.
pub fn expiry_of(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<Option<i64>, StorageError> {
    Ok(dsl::password_links
        .filter(dsl::user_id.eq(user_id))
        .filter(dsl::expires_at.gt(now))
        .select(dsl::expires_at)
        .first(conn)
        .optional()?)
}
