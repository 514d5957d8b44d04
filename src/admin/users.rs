//! Users: creation with an argon2id password hash, and the account switches.

use diesel::Connection;
use serde_json::{json, Map, Value};

use crate::crypto::password;
use crate::storage::users::{self, UserRow};
use crate::storage::{AnyConnection, StorageError};
use crate::tokens::claims::{CONTACT, PROFILE};

#[derive(Debug, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub admin: bool,
    pub claims: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub fn check_username(username: &str) -> Result<(), UserError> {
    let ok = !username.is_empty()
        && username.chars().count() <= 64
        && !username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid(
            "username must be 1–64 characters without spaces or control characters".into(),
        ))
    }
}

pub fn check_password(password: &str) -> Result<(), UserError> {
    // NIST SP 800-63B §5.1.1.2: at least 8 characters; long passphrases welcome.
    let n = password.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(UserError::Invalid(
            "password must be 8–1024 characters".into(),
        ));
    }
    Ok(())
}

fn check_claims(claims: &Map<String, Value>) -> Result<(), UserError> {
    for (k, v) in claims {
        if !PROFILE.contains(&k.as_str()) && !CONTACT.contains(&k.as_str()) {
            return Err(UserError::Invalid(format!(
                "claim {k:?} is not a standard claim Sigil stores ({}, {})",
                PROFILE.join(", "),
                CONTACT.join(", ")
            )));
        }
        let ok = if k == "address" {
            v.is_object()
        } else {
            v.is_string()
        };
        if !ok {
            return Err(UserError::Invalid(format!(
                "claim {k:?} must be {}",
                if k == "address" {
                    "an object"
                } else {
                    "a string"
                }
            )));
        }
    }
    Ok(())
}

/// Checks the input; the caller hashes the password (slow) and then calls [`insert`].
pub fn prepare(new: &NewUser, password: &str) -> Result<(), UserError> {
    check_username(&new.username)?;
    check_password(password)?;
    check_claims(&new.claims)?;
    if let Some(email) = &new.email {
        if !email.contains('@') || email.chars().any(char::is_whitespace) {
            return Err(UserError::Invalid(format!(
                "{email:?} is not an email address"
            )));
        }
    }
    Ok(())
}

pub fn insert(
    conn: &mut AnyConnection,
    new: NewUser,
    password_hash: String,
    now: i64,
) -> Result<UserRow, UserError> {
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: new.username,
        email: new.email,
        email_verified: new.email_verified,
        name: new.name,
        claims: Value::Object(new.claims).to_string(),
        password_hash,
        is_admin: new.admin,
        disabled: false,
        tokens_valid_after: 0,
        created_at: now,
        updated_at: now,
    };
    users::insert(conn, &row)?;
    Ok(row)
}

/// The user as JSON, without the password hash.
pub fn describe(row: &UserRow) -> Value {
    let mut v = json!({
        "id": row.id,
        "username": row.username,
        "email": row.email,
        "email_verified": row.email_verified,
        "name": row.name,
        "admin": row.is_admin,
        "disabled": row.disabled,
        "created_at": row.created_at,
    });
    if row.tokens_valid_after > 0 {
        v["tokens_valid_after"] = row.tokens_valid_after.into();
    }
    if let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(&row.claims) {
        for (k, c) in claims {
            v[k] = c;
        }
    }
    v
}

pub fn set_password(
    conn: &mut AnyConnection,
    username: &str,
    password: &str,
    now: i64,
) -> Result<(), UserError> {
    check_password(password)?;
    if users::by_username(conn, username)?.is_none() {
        return Err(StorageError::NotFound(format!("no user {username:?}")).into());
    }
    let hash = password::hash(password);
    // A new password ends every session and token issued under the old one.
    conn.transaction::<_, StorageError, _>(|conn| {
        users::set_password(conn, username, &hash, now)?;
        users::set_tokens_valid_after(conn, username, now)
    })?;
    Ok(())
}

/// Disabling ends every session and token at once, and they stay dead if the user is enabled
/// again.
pub fn disable(conn: &mut AnyConnection, username: &str, now: i64) -> Result<(), StorageError> {
    conn.transaction::<_, StorageError, _>(|conn| {
        users::set_disabled(conn, username, true, now)?;
        users::set_tokens_valid_after(conn, username, now)
    })
}
