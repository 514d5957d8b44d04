//! Second factors (DESIGN.md "Second factors and the account page"): TOTP enrolment and
//! checks, recovery codes, and which levels a user can reach. The CLI, the sign-in's second
//! step and the account page all go through here.

use crate::crypto::master_key::MasterKey;
use crate::crypto::{b64url, sha256, totp};
use crate::storage::factors::{self, TotpRow};
use crate::storage::{AnyConnection, StorageError};
use crate::web::strength::Acr;

/// What a TOTP secret is sealed to: its user.
pub fn totp_aad(user_id: &str) -> Vec<u8> {
    format!("totp:{user_id}").into_bytes()
}

/// A new TOTP secret for the user, replacing any earlier factor. `confirmed`: on at once (an
/// administrator's act); otherwise it waits for its first code (`confirm_totp`).
pub fn enrol_totp(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    confirmed: bool,
    now: i64,
) -> Result<Vec<u8>, StorageError> {
    let secret = totp::new_secret();
    let sealed = master
        .seal(&secret, &totp_aad(user_id))
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    factors::put_totp(
        conn,
        &TotpRow {
            user_id: user_id.to_string(),
            secret_sealed: sealed,
            confirmed_at: confirmed.then_some(now),
            // A code from before enrolment never counts.
            last_step: totp::step_of(now) - totp::DRIFT - 1,
            created_at: now,
        },
    )?;
    Ok(secret)
}

/// The user's TOTP factor with its secret opened, confirmed or waiting.
pub fn totp_of(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
) -> Result<Option<(TotpRow, Vec<u8>)>, StorageError> {
    let Some(row) = factors::totp(conn, user_id)? else {
        return Ok(None);
    };
    let secret = master
        .open(&row.secret_sealed, &totp_aad(user_id))
        .map_err(|e| StorageError::Corrupt(format!("TOTP secret of a user: {e}")))?;
    Ok(Some((row, secret)))
}

/// Turns a waiting enrolment on with its first code; false when the code is wrong or nothing
/// waits.
pub fn confirm_totp(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<bool, StorageError> {
    let Some((row, secret)) = totp_of(conn, master, user_id)? else {
        return Ok(false);
    };
    if row.confirmed_at.is_some() {
        return Ok(false);
    }
    match totp::matching_step(&secret, code, now) {
        Some(step) => factors::confirm_totp(conn, user_id, step, now),
        None => Ok(false),
    }
}

/// The `otp` field of the second step: a TOTP code (each accepted once) or an unused recovery
/// code (spent). True when it was one.
pub fn check_otp(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    given: &str,
    now: i64,
) -> Result<bool, StorageError> {
    if let Some((row, secret)) = totp_of(conn, master, user_id)? {
        if row.confirmed_at.is_some() {
            if let Some(step) = totp::matching_step(&secret, given, now) {
                return factors::use_totp_step(conn, user_id, step);
            }
        }
    }
    match totp::normalize_recovery_code(given) {
        Some(code) => factors::use_recovery_code(conn, user_id, &hash_code(&code), now),
        None => Ok(false),
    }
}

fn hash_code(code: &str) -> String {
    b64url(&sha256(code.as_bytes()))
}

/// Ten new recovery codes for the user, replacing the earlier ones; shown once, kept hashed.
pub fn new_recovery_codes(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, StorageError> {
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| hash_code(c)).collect();
    factors::replace_recovery_codes(conn, user_id, &hashes, now)?;
    Ok(codes)
}

/// Removes the user's TOTP factor (and with it the recovery codes, which stand in for it).
pub fn remove_totp(conn: &mut AnyConnection, user_id: &str) -> Result<bool, StorageError> {
    let removed = factors::remove_totp(conn, user_id)?;
    factors::remove_recovery_codes(conn, user_id)?;
    Ok(removed)
}

/// The second factors a user holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// A confirmed TOTP factor.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes: i64,
    /// Registered passkeys.
    pub passkeys: i64,
}

impl Held {
    /// Whether a sign-in needs a second step after the password.
    pub fn any(&self) -> bool {
        self.otp() || self.passkeys > 0
    }

    /// Whether the `otp` field of the second step can be answered (TOTP or a recovery code).
    pub fn otp(&self) -> bool {
        self.totp || self.recovery_codes > 0
    }

    /// The strongest level the user can reach.
    pub fn best(&self) -> Acr {
        if self.passkeys > 0 {
            Acr::Phr
        } else if self.otp() {
            Acr::Mfa
        } else {
            Acr::Pwd
        }
    }
}

/// The second factors `user_id` can use here: passkeys count only where WebAuthn is on (a
/// Sigil whose issuer is an IP address has no RP ID), else a user whose only factor is a passkey
/// would be sent to a second step that offers nothing.
pub fn held(
    conn: &mut AnyConnection,
    user_id: &str,
    webauthn_on: bool,
) -> Result<Held, StorageError> {
    let counts = factors::counts(conn, user_id)?;
    Ok(Held {
        totp: counts.totp > 0,
        recovery_codes: counts.recovery_codes,
        passkeys: if webauthn_on { counts.passkeys } else { 0 },
    })
}
