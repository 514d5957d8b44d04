//! User rows. Passwords are stored only as argon2id PHC strings.

use diesel::prelude::*;

use super::schema::users::dsl;
use super::{conflict_on_unique, revisions, AnyConnection, StorageError};

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = super::schema::users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub claims: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub tokens_valid_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn insert(conn: &mut AnyConnection, row: &UserRow) -> Result<(), StorageError> {
    diesel::insert_into(dsl::users)
        .values(row)
        .execute(conn)
        .map_err(|e| conflict_on_unique(e, || format!("user {:?} already exists", row.username)))?;
    Ok(())
}

pub fn by_username(
    conn: &mut AnyConnection,
    username: &str,
) -> Result<Option<UserRow>, StorageError> {
    if !super::storable(username) {
        return Ok(None);
    }
    Ok(dsl::users
        .filter(dsl::username.eq(username))
        .first(conn)
        .optional()?)
}

pub fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<UserRow>, StorageError> {
    Ok(dsl::users.filter(dsl::id.eq(id)).first(conn).optional()?)
}

/// How many users there are.
pub fn count(conn: &mut AnyConnection) -> Result<i64, StorageError> {
    Ok(dsl::users.count().get_result(conn)?)
}

pub fn all(conn: &mut AnyConnection) -> Result<Vec<UserRow>, StorageError> {
    Ok(dsl::users.order(dsl::username.asc()).load(conn)?)
}

diesel::define_sql_function! {
    /// SQL `lower()`: case-insensitive matching written once for both backends (PostgreSQL's
    /// LIKE is case-sensitive, SQLite's is not for ASCII).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

diesel::define_sql_function! {
    /// SQL `coalesce()` of a nullable text column and a default.
    fn coalesce(
        x: diesel::sql_types::Nullable<diesel::sql_types::Text>,
        y: diesel::sql_types::Text
    ) -> diesel::sql_types::Text;
}

/// `text` as a LIKE pattern that matches itself literally (`\` escapes `%`, `_` and `\`).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One page of users in username order, after `after` (keyset pagination on the unique
/// username index), at most `limit`. With `search`, only users whose username starts with it
/// or whose email or name contains it, case-insensitively: the scan walks the username index
/// and stops at `limit` matches, so a common term answers at once and a rare one reads each
/// row once.
pub fn page(
    conn: &mut AnyConnection,
    search: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, StorageError> {
    let mut query = dsl::users.into_boxed();
    if let Some(after) = after {
        query = query.filter(dsl::username.gt(after.to_string()));
    }
    if let Some(term) = search.map(|s| like_literal(&s.to_lowercase())) {
        let (prefix, within) = (format!("{term}%"), format!("%{term}%"));
        query = query.filter(
            lower(dsl::username)
                .like(prefix)
                .escape('\\')
                .or(lower(coalesce(dsl::email, ""))
                    .like(within.clone())
                    .escape('\\'))
                .or(lower(coalesce(dsl::name, "")).like(within).escape('\\')),
        );
    }
    Ok(query.order(dsl::username.asc()).limit(limit).load(conn)?)
}

/// The editable profile of a user (`admin::users::update`).
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = super::schema::users, treat_none_as_null = true)]
pub struct Profile {
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub claims: String,
    pub is_admin: bool,
    pub updated_at: i64,
}

pub fn update_profile(
    conn: &mut AnyConnection,
    username: &str,
    profile: &Profile,
) -> Result<(), StorageError> {
    let n = diesel::update(dsl::users.filter(dsl::username.eq(username)))
        .set(profile)
        .execute(conn)?;
    // Claims in tokens and UserInfo come from the row; cached verdicts name no claims.
    found(n, username)
}

pub fn set_password(
    conn: &mut AnyConnection,
    username: &str,
    hash: &str,
    now: i64,
) -> Result<(), StorageError> {
    let n = diesel::update(dsl::users.filter(dsl::username.eq(username)))
        .set((dsl::password_hash.eq(hash), dsl::updated_at.eq(now)))
        .execute(conn)?;
    found(n, username)
}

pub fn set_disabled(
    conn: &mut AnyConnection,
    username: &str,
    disabled: bool,
    now: i64,
) -> Result<(), StorageError> {
    let n = diesel::update(dsl::users.filter(dsl::username.eq(username)))
        .set((dsl::disabled.eq(disabled), dsl::updated_at.eq(now)))
        .execute(conn)?;
    tokens_changed(conn, n, username)
}

/// "Log out everywhere": tokens issued before `now` stop being accepted.
pub fn set_tokens_valid_after(
    conn: &mut AnyConnection,
    username: &str,
    now: i64,
) -> Result<(), StorageError> {
    let n = diesel::update(dsl::users.filter(dsl::username.eq(username)))
        .set((dsl::tokens_valid_after.eq(now), dsl::updated_at.eq(now)))
        .execute(conn)?;
    tokens_changed(conn, n, username)
}

pub fn remove(conn: &mut AnyConnection, username: &str) -> Result<(), StorageError> {
    let n = diesel::delete(dsl::users.filter(dsl::username.eq(username))).execute(conn)?;
    tokens_changed(conn, n, username)
}

/// Like `found`, and moves the tokens revision: the user's tokens may have stopped being valid.
fn tokens_changed(conn: &mut AnyConnection, n: usize, username: &str) -> Result<(), StorageError> {
    found(n, username)?;
    revisions::bump(conn, revisions::TOKENS)
}

fn found(n: usize, username: &str) -> Result<(), StorageError> {
    if n == 0 {
        Err(StorageError::NotFound(format!("no user {username:?}")))
    } else {
        Ok(())
    }
}

/// The usernames of the users with these ids (for lists of sessions).
pub fn usernames(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, StorageError> {
    Ok(dsl::users
        .filter(dsl::id.eq_any(ids))
        .select((dsl::id, dsl::username))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}
