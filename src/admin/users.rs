//! Users: creation with an argon2id password hash, the account switches, and the sign-in
//! counters (`unlock`).

use serde_json::{json, Map, Value};

use crate::crypto::password;
use crate::storage::devices;
use crate::storage::login_failures::{self, account_key, device_key};
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
    // NIST SP 800-63B §5.1.1.2: at least 8 characters; long passphrases welcome, up to what
    // the sign-in hashes at all.
    if password.chars().count() < 8 || password.len() > password::MAX_PASSWORD_BYTES {
        return Err(UserError::Invalid(format!(
            "password must be at least 8 characters and at most {} bytes",
            password::MAX_PASSWORD_BYTES
        )));
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
    crate::storage::transaction::<_, StorageError, _>(conn, |conn| {
        users::set_password(conn, username, &hash, now)?;
        users::set_tokens_valid_after(conn, username, now)
    })?;
    Ok(())
}

/// Disabling ends every session and token at once, and they stay dead if the user is enabled
/// again.
pub fn disable(conn: &mut AnyConnection, username: &str, now: i64) -> Result<(), StorageError> {
    crate::storage::transaction::<_, StorageError, _>(conn, |conn| {
        users::set_disabled(conn, username, true, now)?;
        users::set_tokens_valid_after(conn, username, now)
    })
}

fn existing(conn: &mut AnyConnection, username: &str) -> Result<UserRow, StorageError> {
    users::by_username(conn, username)?
        .ok_or_else(|| StorageError::NotFound(format!("no user {username:?}")))
}

/// Clears the account's sign-in counter and those of the browsers trusted for it (DESIGN.md
/// "Brute force": `sigil user unlock`). Client-address counters are not the account's.
pub fn unlock(conn: &mut AnyConnection, username: &str, now: i64) -> Result<(), StorageError> {
    let user = existing(conn, username)?;
    let mut keys = vec![account_key(username)];
    keys.extend(
        devices::of_user(conn, &user.id, now)?
            .iter()
            .map(|hash| device_key(hash)),
    );
    login_failures::clear(conn, &keys)?;
    Ok(())
}

/// The account's sign-in counter as `user show` prints it: failed or in-flight checks in the
/// current window, the end of a lock in force, how often it was locked, and how many browsers
/// are trusted for it.
pub fn sign_in_state(
    conn: &mut AnyConnection,
    user: &UserRow,
    now: i64,
) -> Result<Value, StorageError> {
    let row =
        login_failures::get(conn, &account_key(&user.username))?.filter(|row| row.expires_at > now);
    let (failures, locked_until, lockouts) = match row {
        // A lock that has passed: the next attempt starts a fresh window.
        Some(row) if row.locked_until != 0 && row.locked_until <= now => (0, None, row.lockouts),
        Some(row) => (
            row.failures,
            (row.locked_until > now).then_some(row.locked_until),
            row.lockouts,
        ),
        None => (0, None, 0),
    };
    Ok(json!({
        "failures": failures,
        "locked_until": locked_until,
        "lockouts": lockouts,
        "trusted_devices": devices::of_user(conn, &user.id, now)?.len(),
    }))
}
