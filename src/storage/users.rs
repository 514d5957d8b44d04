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

/// The text the users page searches, as both backends' trigram indexes hold it (migration
/// 000009: FTS5 on SQLite, pg_trgm on PostgreSQL).
const SEARCHED: &str = "lower(username || ' ' || coalesce(email, '') || ' ' || coalesce(name, ''))";

/// How many trigram hits on SQLite still count as a rare term (see [`page`]).
const RARE: i64 = 1000;

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = diesel::sql_types::Text)]
    user_id: String,
}

/// One page of users in username order, after `after` (keyset pagination on the unique
/// username index), at most `limit`. With `search`, only users whose username, email or name
/// contains it, case-insensitively. A term of 3 characters or more goes through each backend's
/// trigram index (migration 000009), the one place the query differs: PostgreSQL's planner
/// weighs the GIN index against the username order itself; on SQLite the FTS5 index is asked
/// for at most [`RARE`] hits first — a rare term is then read by id, while a common one (as
/// dense as 1 % of users or more) walks the username index and stops at `limit` matches,
/// instead of gathering every hit to sort them.
pub fn page(
    conn: &mut AnyConnection,
    search: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, StorageError> {
    use diesel::sql_types::{BigInt, Bool, Text};
    let mut query = dsl::users.into_boxed();
    if let Some(after) = after {
        query = query.filter(dsl::username.gt(after.to_string()));
    }
    if let Some(term) = search.map(str::to_lowercase) {
        let indexed = term.chars().count() >= 3 && !term.contains(['%', '_', '\\']);
        let within = format!("%{}%", like_literal(&term));
        let scan = lower(dsl::username)
            .like(within.clone())
            .escape('\\')
            .or(lower(coalesce(dsl::email, ""))
                .like(within.clone())
                .escape('\\'))
            .or(lower(coalesce(dsl::name, ""))
                .like(within.clone())
                .escape('\\'));
        query = match conn {
            AnyConnection::Postgresql(_) if indexed => query.filter(
                diesel::dsl::sql::<Bool>(&format!("{SEARCHED} LIKE ")).bind::<Text, _>(within),
            ),
            AnyConnection::Sqlite(_) if indexed => {
                let hits: Vec<Hit> =
                    diesel::sql_query("SELECT user_id FROM users_search WHERE text LIKE ? LIMIT ?")
                        .bind::<Text, _>(&within)
                        .bind::<BigInt, _>(RARE)
                        .load(conn)?;
                if (hits.len() as i64) < RARE {
                    let ids: Vec<String> = hits.into_iter().map(|h| h.user_id).collect();
                    query.filter(dsl::id.eq_any(ids))
                } else {
                    query.filter(scan)
                }
            }
            _ => query.filter(scan),
        };
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
