//! Reading users for the users page, the admin API and `sigil user show`: one page of a search
//! (fast at 100,000 users: keyset pages on the username index) and one user's whole picture.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{existing, sign_in_state, UserError};
use crate::factors;
use crate::storage::users::{self, UserRow};
use crate::storage::{consents, password_links, sessions, AnyConnection, StorageError};

/// Users a page unless asked otherwise, and the most one page holds.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// A user as listed: fixed fields, flags and the standard claims held.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub admin: bool,
    pub disabled: bool,
    /// False for a user created without a password who has not used their link yet.
    pub password_set: bool,
    /// Further standard claims (given_name, locale, address, …).
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// Tokens issued before this time (Unix seconds) are refused; 0: none.
    pub tokens_valid_after: i64,
}

impl From<&UserRow> for UserSummary {
    fn from(row: &UserRow) -> Self {
        Self {
            id: row.id.clone(),
            username: row.username.clone(),
            email: row.email.clone(),
            email_verified: row.email_verified,
            name: row.name.clone(),
            admin: row.is_admin,
            disabled: row.disabled,
            password_set: !row.password_hash.is_empty(),
            claims: match serde_json::from_str(&row.claims) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
            tokens_valid_after: row.tokens_valid_after,
        }
    }
}

/// What the users page asks for.
#[derive(Debug, Default, Clone, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// A username prefix, or part of an email address or name (case-insensitive).
    pub q: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

/// One page of users in username order; `next` is the `after` of the following page, or null
/// on the last.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    pub next: Option<String>,
}

/// One page of a search; a limit or term out of range is refused in words (`Invalid`).
pub fn search(conn: &mut AnyConnection, query: &UserQuery) -> Result<UserPage, UserError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(UserError::Invalid(format!("limit must be 1–{MAX_LIMIT}")));
    }
    let term = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if term.is_some_and(|t| t.chars().count() > 256 || !crate::storage::storable(t)) {
        return Err(UserError::Invalid(
            "q must be at most 256 characters, without NUL".into(),
        ));
    }
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    if after.is_some_and(|a| !crate::storage::storable(a)) {
        return Err(UserError::Invalid("after must be a username".into()));
    }
    let mut rows = users::page(conn, term, after, limit + 1)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(UserPage {
        next: rows.last().filter(|_| more).map(|r| r.username.clone()),
        users: rows.iter().map(UserSummary::from).collect(),
    })
}

/// The account's sign-in counter: failures in the window, a lock in force, lockouts so far.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignInState {
    pub failures: i64,
    pub locked_until: Option<i64>,
    pub lockouts: i64,
    pub trusted_devices: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FactorsHeld {
    pub totp: bool,
    pub recovery_codes: i64,
    pub passkeys: i64,
}

/// A live session at Sigil (`sid` as in ID tokens).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionSummary {
    pub sid: String,
    pub user_id: String,
    pub username: Option<String>,
    pub acr: String,
    pub amr: Vec<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: String,
    pub client_address: String,
}

impl SessionSummary {
    pub fn of(row: &sessions::SessionRow, username: Option<String>) -> Self {
        Self {
            sid: row.sid.clone(),
            user_id: row.user_id.clone(),
            username,
            acr: row.acr.clone(),
            amr: row
                .amr
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent.clone(),
            client_address: row.client_address.clone(),
        }
    }
}

/// A consent the user gave a client.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentSummary {
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
}

/// One user's whole picture: the summary, sign-in counter, factors, groups, sessions,
/// consents and whether a password-set link is waiting.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserDetails {
    #[serde(flatten)]
    pub user: UserSummary,
    pub sign_in: SignInState,
    pub second_factors: FactorsHeld,
    pub groups: Vec<String>,
    pub sessions: Vec<SessionSummary>,
    pub consents: Vec<ConsentSummary>,
    /// When the user's unused password-set link expires, if they have one.
    pub password_link_expires_at: Option<i64>,
}

pub fn details(
    conn: &mut AnyConnection,
    username: &str,
    now: i64,
) -> Result<UserDetails, StorageError> {
    let user = existing(conn, username)?;
    let sign_in = sign_in_state(conn, &user, now)?;
    let number = |key: &str| sign_in[key].as_i64();
    let held = factors::held(conn, &user.id, true)?;
    let mut live = sessions::live_of_user(conn, &user.id, now)?;
    live.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(UserDetails {
        sign_in: SignInState {
            failures: number("failures").unwrap_or(0),
            locked_until: number("locked_until"),
            lockouts: number("lockouts").unwrap_or(0),
            trusted_devices: number("trusted_devices").unwrap_or(0),
        },
        second_factors: FactorsHeld {
            totp: held.totp,
            recovery_codes: held.recovery_codes,
            passkeys: held.passkeys,
        },
        groups: crate::admin::groups::of_user(conn, &user.id)?,
        sessions: live
            .iter()
            .map(|s| SessionSummary::of(s, Some(user.username.clone())))
            .collect(),
        consents: consents::of_user(conn, &user.id)?
            .into_iter()
            .map(|c| ConsentSummary {
                client_id: c.client_id,
                scope: c.scope,
                granted_at: c.granted_at,
            })
            .collect(),
        password_link_expires_at: password_links::expiry_of(conn, &user.id, now)?,
        user: UserSummary::from(&user),
    })
}
