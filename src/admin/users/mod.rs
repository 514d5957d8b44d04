//! Users: the operations the CLI, the admin API and the console share. Each change runs in one
//! transaction with its audit event (`By`: who acted, from where). Passwords are hashed by the
//! caller before the transaction (argon2 is slow and must not hold a connection's lock).
//!
//! `view` reads (the users page: search, one user's whole picture); `links` the one-time
//! password-set links for users created without a password.

pub mod links;
pub mod view;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::audit::{By, EventType};
use crate::crypto::password;
use crate::storage::login_failures::{self, account_key, device_key};
use crate::storage::users::{self, UserRow};
use crate::storage::{atomically, devices, passkeys, AnyConnection, StorageError};
use crate::tokens::claims::{CONTACT, PROFILE};

pub use links::IssuedLink;

#[derive(Debug, Default, Clone)]
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

fn check_email(email: &str) -> Result<(), UserError> {
    let ok = email.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid(format!(
            "{email:?} is not an email address"
        )))
    }
}

fn check_name(name: &str) -> Result<(), UserError> {
    if name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "name must be at most 256 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// Checks a new user but not a password (a user created with a password-set link has none).
pub fn check_new(new: &NewUser) -> Result<(), UserError> {
    check_username(&new.username)?;
    check_claims(&new.claims)?;
    new.email.as_deref().map(check_email).transpose()?;
    new.name.as_deref().map(check_name).transpose()?;
    Ok(())
}

/// Checks the input; the caller hashes the password (slow) and then calls [`create`].
pub fn prepare(new: &NewUser, password: &str) -> Result<(), UserError> {
    check_new(new)?;
    check_password(password)
}

/// The stored password hash of a user who has not chosen a password yet: no PHC string, so no
/// password ever matches it (`crypto::password::verify`).
pub const NO_PASSWORD: &str = "";

/// A new user, and the password-set link when they were created without a password.
#[derive(Debug)]
pub struct Created {
    pub user: UserRow,
    pub link: Option<IssuedLink>,
}

/// Creates the user with `password_hash` (from [`prepare`] and `password::hash`), or without a
/// password (`None`): then a one-time link, valid `link_ttl` seconds, lets them choose one.
/// The user, the link and the audit event commit together.
pub fn create(
    conn: &mut AnyConnection,
    new: NewUser,
    password_hash: Option<String>,
    link_ttl: i64,
    by: &By,
    now: i64,
) -> Result<Created, UserError> {
    check_new(&new)?;
    let with_password = password_hash.is_some();
    atomically(conn, |conn| {
        let user = insert(conn, new, password_hash.unwrap_or_default(), now)?;
        by.event(EventType::UserCreated)
            .target(user.username.as_str())
            .details(json!({ "admin": user.is_admin, "password": with_password }))
            .record(conn, now)?;
        let link = if with_password {
            None
        } else {
            Some(links::issue(conn, &user, link_ttl, by, now)?)
        };
        Ok(Created { user, link })
    })
}

/// Stores a new user without an audit event: for [`create`], and for seeding benchmarks.
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

/// The user as JSON, without the password hash (`sigil user add|list|show`): the stored
/// claims beside the fixed fields.
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

/// A change to a user's profile: each field given replaces the stored one; `null` clears an
/// optional one. `claims` adds or replaces standard claims; a claim set to `null` is removed.
#[derive(Debug, Default, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub email_verified: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub admin: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Map<String, Value>>,
}

/// A field that is present (possibly `null`) becomes `Some`; an absent one stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Applies `patch` to the user; nothing changes when any part of it is refused.
pub fn update(
    conn: &mut AnyConnection,
    username: &str,
    patch: &UserPatch,
    by: &By,
    now: i64,
) -> Result<UserRow, UserError> {
    if let Some(Some(email)) = &patch.email {
        check_email(email)?;
    }
    if let Some(Some(name)) = &patch.name {
        check_name(name)?;
    }
    let mut changed: Vec<&str> = Vec::new();
    atomically(conn, |conn| {
        let user = existing(conn, username)?;
        let mut claims = match serde_json::from_str::<Value>(&user.claims) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some(patch_claims) = &patch.claims {
            let set: Map<String, Value> = patch_claims
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            check_claims(&set)?;
            for (k, v) in patch_claims {
                if v.is_null() {
                    claims.remove(k);
                } else {
                    claims.insert(k.clone(), v.clone());
                }
                changed.push(k.as_str());
            }
        }
        let profile = users::Profile {
            email: patch.email.clone().unwrap_or(user.email.clone()),
            email_verified: patch.email_verified.unwrap_or(user.email_verified),
            name: patch.name.clone().unwrap_or(user.name.clone()),
            claims: Value::Object(claims).to_string(),
            is_admin: patch.admin.unwrap_or(user.is_admin),
            updated_at: now,
        };
        for (given, field) in [
            (patch.email.is_some(), "email"),
            (patch.email_verified.is_some(), "email_verified"),
            (patch.name.is_some(), "name"),
            (patch.admin.is_some(), "admin"),
        ] {
            if given {
                changed.push(field);
            }
        }
        users::update_profile(conn, username, &profile)?;
        by.event(EventType::UserUpdated)
            .target(username)
            .details(json!({ "changed": changed, "admin": profile.is_admin }))
            .record(conn, now)?;
        Ok(UserRow {
            email: profile.email,
            email_verified: profile.email_verified,
            name: profile.name,
            claims: profile.claims,
            is_admin: profile.is_admin,
            updated_at: now,
            ..user
        })
    })
}

/// Sets a new password (checked, then hashed here: call it off the async workers). A new
/// password ends every session and token issued under the old one.
pub fn set_password(
    conn: &mut AnyConnection,
    username: &str,
    password: &str,
    by: &By,
    now: i64,
) -> Result<(), UserError> {
    check_password(password)?;
    existing(conn, username)?;
    let hash = password::hash(password);
    atomically(conn, |conn| {
        users::set_password(conn, username, &hash, now)?;
        users::set_tokens_valid_after(conn, username, now)?;
        by.event(EventType::UserPasswordChanged)
            .target(username)
            .record(conn, now)
    })?;
    Ok(())
}

/// `change` to the user `username` and its event `kind`, in one transaction.
fn audited(
    conn: &mut AnyConnection,
    username: &str,
    kind: EventType,
    by: &By,
    now: i64,
    change: impl FnOnce(&mut AnyConnection) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    atomically(conn, |conn| {
        change(conn)?;
        by.event(kind).target(username).record(conn, now)
    })
}

/// Refuses sign-in from now on. Every token issued before now stops being accepted, and stays
/// dead if the user is enabled again; the caller ends the user's sessions with back-channel
/// logout first (`admin::sessions::end_all_of_user`).
pub fn disable(
    conn: &mut AnyConnection,
    username: &str,
    by: &By,
    now: i64,
) -> Result<(), StorageError> {
    audited(conn, username, EventType::UserDisabled, by, now, |conn| {
        users::set_disabled(conn, username, true, now)?;
        users::set_tokens_valid_after(conn, username, now)
    })
}

/// Allows sign-in again (tokens from before the disabling stay dead).
pub fn enable(
    conn: &mut AnyConnection,
    username: &str,
    by: &By,
    now: i64,
) -> Result<(), StorageError> {
    audited(conn, username, EventType::UserEnabled, by, now, |conn| {
        users::set_disabled(conn, username, false, now)
    })
}

/// "Log out everywhere": every token issued before now stops being accepted (the caller ends
/// the sessions, as for [`disable`]).
pub fn logout_everywhere(
    conn: &mut AnyConnection,
    username: &str,
    by: &By,
    now: i64,
) -> Result<(), StorageError> {
    let kind = EventType::UserLoggedOutEverywhere;
    audited(conn, username, kind, by, now, |conn| {
        users::set_tokens_valid_after(conn, username, now)
    })
}

/// Deletes the user with everything that is theirs (sessions, grants, factors, memberships,
/// consents, links: ON DELETE CASCADE); their tokens stop being accepted.
pub fn remove(
    conn: &mut AnyConnection,
    username: &str,
    by: &By,
    now: i64,
) -> Result<(), StorageError> {
    audited(conn, username, EventType::UserRemoved, by, now, |conn| {
        users::remove(conn, username)
    })
}

/// What [`reset_factors`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FactorsRemoved {
    pub totp: bool,
    pub recovery_codes: i64,
    pub passkeys: i64,
}

/// Removes every second factor of the user — TOTP, recovery codes, passkeys — for a user who
/// lost them; they sign in with the password alone until they enrol again.
pub fn reset_factors(
    conn: &mut AnyConnection,
    username: &str,
    by: &By,
    now: i64,
) -> Result<FactorsRemoved, StorageError> {
    atomically(conn, |conn| {
        let user = existing(conn, username)?;
        let recovery_codes = crate::storage::factors::unused_recovery_codes(conn, &user.id)?;
        let totp = crate::factors::remove_totp(conn, &user.id)?;
        let passkeys = passkeys::remove_all_of_user(conn, &user.id)? as i64;
        let removed = FactorsRemoved {
            totp,
            recovery_codes,
            passkeys,
        };
        by.event(EventType::UserFactorsReset)
            .target(username)
            .details(json!(removed))
            .record(conn, now)?;
        Ok(removed)
    })
}

/// The user named `username`, or `NotFound`.
pub fn existing(conn: &mut AnyConnection, username: &str) -> Result<UserRow, StorageError> {
    users::by_username(conn, username)?
        .ok_or_else(|| StorageError::NotFound(format!("no user {username:?}")))
}

/// Clears the account's sign-in counter and those of the browsers trusted for it (DESIGN.md
/// "Brute force": `sigil user unlock`). Client-address counters are not the account's.
pub fn unlock(
    conn: &mut AnyConnection,
    username: &str,
    by: &By,
    now: i64,
) -> Result<(), StorageError> {
    audited(conn, username, EventType::UserUnlocked, by, now, |conn| {
        let user = existing(conn, username)?;
        let mut keys = vec![account_key(username)];
        keys.extend(
            devices::of_user(conn, &user.id, now)?
                .iter()
                .map(|hash| device_key(hash)),
        );
        login_failures::clear(conn, &keys).map(drop)
    })
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
