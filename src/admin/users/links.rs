//! One-time password-set links (`/password/set?token=…`) for users created without a password
//! (or who need a new one): a random 256-bit token, stored only as its SHA-256, valid
//! [`DEFAULT_TTL`] unless told otherwise, used once; a new link replaces the user's earlier one.

use serde_json::json;

use super::{check_password, existing, UserError};
use crate::audit::{Actor, By, EventType};
use crate::crypto::{b64url, random, sha256};
use crate::storage::password_links::{self, LinkRow};
use crate::storage::users::{self, UserRow};
use crate::storage::{atomically, AnyConnection, StorageError};

/// The path of the page that takes a link (`web::password_set`).
pub const PATH: &str = "/password/set";

/// How long a link works unless told otherwise: a day.
pub const DEFAULT_TTL: i64 = 24 * 3600;

/// The longest lifetime a link may be given: a week.
pub const MAX_TTL: i64 = 7 * 24 * 3600;

/// A link just made: the token is shown once, to whoever hands it to the user.
pub struct IssuedLink {
    pub token: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLink")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl IssuedLink {
    /// The link's URL under `issuer`.
    pub fn url(&self, issuer: &url::Url) -> String {
        let mut url = issuer.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{PATH}"));
        url.query_pairs_mut()
            .clear()
            .append_pair("token", &self.token);
        url.to_string()
    }
}

fn hash(token: &str) -> String {
    b64url(&sha256(token.as_bytes()))
}

/// Makes a new link for `user`, replacing any earlier one, with its audit event, on `conn`
/// (inside the caller's transaction when there is one).
pub fn issue(
    conn: &mut AnyConnection,
    user: &UserRow,
    ttl: i64,
    by: &By,
    now: i64,
) -> Result<IssuedLink, StorageError> {
    let ttl = ttl.clamp(60, MAX_TTL);
    let token = random::secret_256();
    let row = LinkRow {
        user_id: user.id.clone(),
        token_hash: hash(&token),
        created_at: now,
        expires_at: now + ttl,
    };
    atomically(conn, |conn| {
        password_links::replace(conn, &row)?;
        by.event(EventType::UserPasswordLinkIssued)
            .target(user.username.as_str())
            .details(json!({ "expires_at": row.expires_at }))
            .record(conn, now)
    })?;
    Ok(IssuedLink {
        token,
        expires_at: row.expires_at,
    })
}

/// [`issue`] for the user named `username`.
pub fn issue_for(
    conn: &mut AnyConnection,
    username: &str,
    ttl: i64,
    by: &By,
    now: i64,
) -> Result<IssuedLink, StorageError> {
    let user = existing(conn, username)?;
    issue(conn, &user, ttl, by, now)
}

/// The user a live link belongs to; `None` for an unknown, used or expired token.
pub fn holder(
    conn: &mut AnyConnection,
    token: &str,
    now: i64,
) -> Result<Option<UserRow>, StorageError> {
    match password_links::live(conn, &hash(token), now)? {
        Some(link) => users::by_id(conn, &link.user_id),
        None => Ok(None),
    }
}

/// Why a link did not set a password.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Unknown, already used or expired: nothing changed.
    #[error("this link is not valid: it may have expired or been used already")]
    Invalid,
    /// The password breaks the rule; the link still works.
    #[error("{0}")]
    Password(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Checks a password chosen through a link, before it is hashed.
pub fn check(password: &str, confirmation: &str) -> Result<(), LinkError> {
    if password != confirmation {
        return Err(LinkError::Password(
            "the two passwords are not the same".into(),
        ));
    }
    check_password(password).map_err(|e| match e {
        UserError::Invalid(m) => LinkError::Password(m),
        UserError::Storage(s) => LinkError::Storage(s),
    })
}

/// Uses the link: in one transaction it is consumed (exactly once, even under a race), the
/// password hash stored, earlier tokens ended, and the event recorded with the user as actor.
pub fn use_link(
    conn: &mut AnyConnection,
    token: &str,
    password_hash: &str,
    address: &str,
    now: i64,
) -> Result<UserRow, LinkError> {
    let token_hash = hash(token);
    atomically(conn, |conn| {
        let link = password_links::live(conn, &token_hash, now)?.ok_or(LinkError::Invalid)?;
        let user = users::by_id(conn, &link.user_id)?.ok_or(LinkError::Invalid)?;
        if !password_links::consume(conn, &token_hash, &user.id, now)? {
            return Err(LinkError::Invalid);
        }
        users::set_password(conn, &user.username, password_hash, now)?;
        users::set_tokens_valid_after(conn, &user.username, now)?;
        By {
            actor: Actor::user(&user),
            address: Some(address.to_string()),
        }
        .event(EventType::UserPasswordSet)
        .target(user.username.as_str())
        .record(conn, now)?;
        Ok(user)
    })
}
