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
    let text = searched(&row.username, row.email.as_deref(), row.name.as_deref());
    reindex(conn, &row.id, false, Some(&text))
}

/// The text the users page searches, as the trigram indexes hold it.
fn searched(username: &str, email: Option<&str>, name: Option<&str>) -> String {
    format!(
        "{username} {} {}",
        email.unwrap_or_default(),
        name.unwrap_or_default()
    )
    .to_lowercase()
}

/// SQLite's search index (FTS5, migration 000009) follows a change of the searched columns, on
/// the change's connection and so in its transaction: `old` removes the user's entry, `text`
/// adds the new one. PostgreSQL's GIN index is on `users` itself and needs nothing.
fn reindex(
    conn: &mut AnyConnection,
    id: &str,
    old: bool,
    text: Option<&str>,
) -> Result<(), StorageError> {
    use diesel::sql_types::Text;
    if let AnyConnection::Sqlite(_) = conn {
        if old {
            diesel::sql_query("DELETE FROM users_search WHERE user_id = ?")
                .bind::<Text, _>(id)
                .execute(conn)?;
        }
        if let Some(text) = text {
            diesel::sql_query("INSERT INTO users_search (user_id, text) VALUES (?, ?)")
                .bind::<Text, _>(id)
                .bind::<Text, _>(text)
                .execute(conn)?;
        }
    }
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

/// The text the users page searches, as both backends' trigram indexes hold it (migration
/// 000009: FTS5 on SQLite, pg_trgm on PostgreSQL).
const SEARCHED: &str = "lower(username || ' ' || coalesce(email, '') || ' ' || coalesce(name, ''))";

/// How many trigram hits still count as a rare term (see [`page`]).
const RARE: i64 = 1000;
/// How many users in username order a search reads first, hoping to fill its page from them.
const WINDOW: i64 = 2000;

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = diesel::sql_types::Text)]
    user_id: String,
}

/// One page of users in username order, after `after` (keyset pagination on the unique
/// username index), at most `limit`. With `search`, only users whose username, email or name
/// contains it, case-insensitively. For a term of 3 characters or more, the next [`WINDOW`]
/// users in username order are read first, and a term common enough to fill the page there is
/// answered from them; else each backend's trigram index (migration 000009) is asked for at
/// most [`RARE`] hits: a rare term is then read
/// by id, while a common one (as dense as 1 % of users or more) — and any shorter term — walks
/// the username index and stops at `limit` matches, instead of gathering every hit to sort
/// them. (Left to itself PostgreSQL's planner sometimes walked the username index for a rare
/// term too: 100 ms instead of 10.)
pub fn page(
    conn: &mut AnyConnection,
    search: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, StorageError> {
    use diesel::sql_types::{BigInt, Text};
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
        // The trigram index, asked for at most RARE hits: each backend's own (the one place
        // the query differs).
        let probe = match conn {
            AnyConnection::Sqlite(_) => {
                "SELECT user_id FROM users_search WHERE text LIKE ? LIMIT ?".to_string()
            }
            AnyConnection::Postgresql(_) => {
                format!("SELECT id AS user_id FROM users WHERE {SEARCHED} LIKE $1 LIMIT $2")
            }
        };
        // First the next WINDOW users in username order: a common term fills the page from
        // them (PostgreSQL's trigram index would otherwise gather every one of its hits —
        // a third of the users for a surname — before the page is cut: 100 ms at 100,000).
        let walked: Vec<Hit> = if indexed {
            let window = match conn {
                AnyConnection::Sqlite(_) => format!(
                    "SELECT id AS user_id FROM (SELECT id, username, email, name FROM users \
                     WHERE username > ? ORDER BY username LIMIT ?) w WHERE {SEARCHED} LIKE ? \
                     ORDER BY username LIMIT ?"
                ),
                AnyConnection::Postgresql(_) => format!(
                    "SELECT id AS user_id FROM (SELECT id, username, email, name FROM users \
                     WHERE username > $1 ORDER BY username LIMIT $2) w WHERE {SEARCHED} LIKE $3 \
                     ORDER BY username LIMIT $4"
                ),
            };
            diesel::sql_query(window)
                .bind::<Text, _>(after.unwrap_or(""))
                .bind::<BigInt, _>(WINDOW)
                .bind::<Text, _>(&within)
                .bind::<BigInt, _>(limit)
                .load(conn)?
        } else {
            Vec::new()
        };
        if indexed && walked.len() as i64 >= limit {
            let ids: Vec<String> = walked.into_iter().map(|h| h.user_id).collect();
            return Ok(dsl::users
                .filter(dsl::id.eq_any(ids))
                .order(dsl::username.asc())
                .limit(limit)
                .load(conn)?);
        }
        let hits: Vec<Hit> = if indexed {
            diesel::sql_query(probe)
                .bind::<Text, _>(&within)
                .bind::<BigInt, _>(RARE)
                .load(conn)?
        } else {
            Vec::new()
        };
        query = if indexed && (hits.len() as i64) < RARE {
            let ids: Vec<String> = hits.into_iter().map(|h| h.user_id).collect();
            query.filter(dsl::id.eq_any(ids))
        } else {
            query.filter(scan)
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
    let id: Option<String> = dsl::users
        .filter(dsl::username.eq(username))
        .select(dsl::id)
        .first(conn)
        .optional()?;
    let n = diesel::update(dsl::users.filter(dsl::username.eq(username)))
        .set(profile)
        .execute(conn)?;
    // Claims in tokens and UserInfo come from the row; cached verdicts name no claims.
    found(n, username)?;
    if let Some(id) = id {
        let text = searched(username, profile.email.as_deref(), profile.name.as_deref());
        reindex(conn, &id, true, Some(&text))?;
    }
    Ok(())
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
    let id: Option<String> = dsl::users
        .filter(dsl::username.eq(username))
        .select(dsl::id)
        .first(conn)
        .optional()?;
    let n = diesel::delete(dsl::users.filter(dsl::username.eq(username))).execute(conn)?;
    if let Some(id) = id {
        reindex(conn, &id, true, None)?;
    }
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
