//! Passkeys (WebAuthn L2 through webauthn-rs, DESIGN.md "Second factors", SECURITY.md 31):
//! enrolment, and authentication either without a password (a discoverable credential with
//! user verification) or as the second factor after one. Every ceremony is two requests: the
//! options (its state kept in `webauthn_ceremonies` under the hash of a random id the browser
//! carries, five minutes, single use) and the browser's answer. The account page, the
//! second-factor page and the login page's passkey button (`sign_in`) call these functions.

pub mod second_step;
pub mod sign_in;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use super::client_address::ClientAddress;
use super::flow;
use super::strength;
use crate::crypto::{b64url, random, sha256};
use crate::state::AppState;
pub use crate::storage::passkeys::PasskeyRow;
use crate::storage::passkeys::{self, Added, CeremonyRow};
use crate::storage::users::{self, UserRow};
use crate::storage::StorageError;

/// How long a ceremony waits for its answer (and the browser for its authenticator).
pub const CEREMONY_TTL: i64 = 300;
/// The most passkeys one user may hold.
pub const MAX_PER_USER: i64 = 10;
/// The longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

const REGISTER: &str = "register";
const AUTHENTICATE: &str = "authenticate";

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// WebAuthn needs the issuer's host to be a domain name (an RP ID is one).
    #[error("passkeys are off: the issuer's host is not a domain name")]
    Unavailable,
    #[error("the passkey ceremony is unknown, expired, already finished or not this one")]
    UnknownCeremony,
    #[error("a passkey's name has 1 to {MAX_NAME_CHARS} characters and no control characters")]
    InvalidName,
    #[error("a user may hold at most {MAX_PER_USER} passkeys")]
    TooMany,
    #[error("this passkey is registered already")]
    AlreadyRegistered,
    #[error("the user has no passkey")]
    NoPasskey,
    #[error("the credential is not a WebAuthn answer")]
    Malformed,
    #[error("the credential is not a registered passkey (of this ceremony's user)")]
    UnknownCredential,
    /// The authenticator's answer did not verify: origin, RP ID, challenge, flags, signature.
    #[error("the passkey was refused: {0}")]
    Refused(WebauthnError),
    /// WebAuthn L2 §6.1.1: the signature counter did not move forward (a cloned key?).
    #[error("the passkey's signature counter went backwards")]
    CounterRegression,
    #[error("the user is disabled")]
    Disabled,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A finished passkey authentication.
#[derive(Debug, Clone)]
pub struct PasskeyUse {
    pub user: UserRow,
    /// `strength::HWK` (bound to one device) or `strength::SWK` (synced between devices).
    pub method: &'static str,
    /// The authenticator verified its user (PIN or biometric): `strength::USER`.
    pub user_verified: bool,
}

/// What a ceremony row keeps between its two requests.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    Register(PasskeyRegistration),
    /// No user named: a discoverable credential answers (passwordless).
    Passwordless(DiscoverableAuthentication),
    /// After a password: one of the named user's passkeys answers.
    SecondFactor(PasskeyAuthentication),
}

/// The relying party: RP ID = the issuer's host, origin = the issuer's origin. `None` (logged)
/// when the host is an IP address, which WebAuthn does not accept as an RP ID.
pub fn relying_party(issuer: &url::Url) -> Option<Webauthn> {
    let built = (|| {
        let origin = Url::parse(&issuer.origin().ascii_serialization()).ok()?;
        let rp_id = issuer.domain()?;
        WebauthnBuilder::new(rp_id, &origin)
            .and_then(|b| {
                b.rp_name("Sigil")
                    .timeout(std::time::Duration::from_secs(CEREMONY_TTL as u64))
                    .build()
            })
            .ok()
    })();
    if built.is_none() {
        tracing::info!(
            issuer = %issuer,
            "passkeys are off: WebAuthn needs the issuer's host to be a domain name"
        );
    }
    built
}

fn webauthn(state: &AppState) -> Result<&Webauthn, PasskeyError> {
    state.webauthn.as_ref().ok_or(PasskeyError::Unavailable)
}

/// The WebAuthn user handle for a user: their id when it is a UUID (every id Sigil makes),
/// else 16 bytes of its SHA-256.
pub fn user_handle(user_id: &str) -> Uuid {
    Uuid::parse_str(user_id).unwrap_or_else(|_| {
        let digest = sha256(user_id.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(first)
    })
}

fn corrupt(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Storage(StorageError::Corrupt(e.to_string()))
}

fn parse_passkey(row: &PasskeyRow) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(&row.credential).map_err(corrupt)
}

/// Stores a ceremony for `user_id` (capped per client address like parked requests, with the
/// same setting); returns the id the browser carries.
async fn park(
    state: &AppState,
    kind: &'static str,
    user_id: Option<String>,
    ceremony: &Ceremony,
    client_address: &ClientAddress,
) -> Result<String, PasskeyError> {
    let id = random::secret_256();
    let row = CeremonyRow {
        id_hash: flow::hash(&id),
        kind: kind.to_string(),
        user_id,
        state: serde_json::to_string(ceremony).map_err(corrupt)?,
        client_address: client_address.throttle_bucket(),
        expires_at: state.clock.now() + CEREMONY_TTL,
    };
    let cap = i64::from(state.settings.login.max_parked_per_address);
    state
        .db
        .run(move |conn| passkeys::insert_ceremony_capped(conn, &row, cap))
        .await?;
    Ok(id)
}

/// Takes the ceremony `id` of `kind` out (whoever takes it answers; it is gone either way).
fn take(
    conn: &mut crate::storage::AnyConnection,
    id: &str,
    kind: &str,
    now: i64,
) -> Result<(CeremonyRow, Ceremony), PasskeyError> {
    let row = passkeys::take_ceremony(conn, &flow::hash(id), now)?
        .filter(|row| row.kind == kind)
        .ok_or(PasskeyError::UnknownCeremony)?;
    let ceremony = serde_json::from_str(&row.state).map_err(corrupt)?;
    Ok((row, ceremony))
}

/// Starts enrolling a passkey for `user`: a discoverable credential (resident key required),
/// user verification required, none of the user's passkeys again. Returns the ceremony id and
/// the options for `navigator.credentials.create()` (`{"publicKey": …}`, binary values as
/// base64url).
pub async fn start_registration(
    state: &AppState,
    user: &UserRow,
    client_address: &ClientAddress,
) -> Result<(String, Value), PasskeyError> {
    let webauthn = webauthn(state)?;
    let user_id = user.id.clone();
    let held = state
        .db
        .run(move |conn| passkeys::of_user(conn, &user_id))
        .await?;
    let exclude = held
        .iter()
        .map(|row| parse_passkey(row).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let display = user.name.as_deref().unwrap_or(&user.username);
    let (options, registration) = webauthn
        .start_passkey_registration(
            user_handle(&user.id),
            &user.username,
            display,
            Some(exclude),
        )
        .map_err(PasskeyError::Refused)?;
    let mut options = serde_json::to_value(options).map_err(corrupt)?;
    // webauthn-rs asks for a resident key only as a preference; passwordless sign-in needs the
    // credential to be discoverable (WebAuthn L2 §5.4.4 `residentKey`).
    if let Some(selection) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    let id = park(
        state,
        REGISTER,
        Some(user.id.clone()),
        &Ceremony::Register(registration),
        client_address,
    )
    .await?;
    Ok((id, options))
}

/// Whether `name` can name a passkey: 1–64 characters after trimming, no control characters.
fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let count = name.chars().count();
    ((1..=MAX_NAME_CHARS).contains(&count) && !name.chars().any(char::is_control)).then_some(name)
}

/// Finishes enrolling: the browser's answer to the ceremony `ceremony_id` that
/// `start_registration` started for this same `user`.
pub async fn finish_registration(
    state: &AppState,
    user: &UserRow,
    ceremony_id: &str,
    name: &str,
    credential: &Value,
) -> Result<PasskeyRow, PasskeyError> {
    let webauthn = webauthn(state)?;
    let name = valid_name(name)
        .ok_or(PasskeyError::InvalidName)?
        .to_string();
    let answer: RegisterPublicKeyCredential =
        serde_json::from_value(credential.clone()).map_err(|_| PasskeyError::Malformed)?;
    let (id, now) = (ceremony_id.to_string(), state.clock.now());
    let (row, ceremony) = state
        .db
        .run(move |conn| take(conn, &id, REGISTER, now))
        .await?;
    let Ceremony::Register(registration) = ceremony else {
        return Err(PasskeyError::UnknownCeremony);
    };
    if row.user_id.as_deref() != Some(user.id.as_str()) {
        return Err(PasskeyError::UnknownCeremony);
    }
    let passkey = webauthn
        .finish_passkey_registration(&answer, &registration)
        .map_err(PasskeyError::Refused)?;
    // The flags and counter as registered (webauthn-rs keeps them in the serialized credential).
    let stored = serde_json::to_value(&passkey).map_err(corrupt)?;
    let row = PasskeyRow {
        credential_id: b64url(passkey.cred_id().as_ref()),
        user_id: user.id.clone(),
        name,
        credential: stored.to_string(),
        backup_eligible: stored["cred"]["backup_eligible"].as_bool().unwrap_or(false),
        sign_count: stored["cred"]["counter"].as_i64().unwrap_or(0),
        created_at: now,
        last_used_at: None,
    };
    let inserted = row.clone();
    match state
        .db
        .run(move |conn| passkeys::insert_limited(conn, &inserted, MAX_PER_USER))
        .await?
    {
        Added::Yes => Ok(row),
        Added::Full => Err(PasskeyError::TooMany),
        Added::Taken => Err(PasskeyError::AlreadyRegistered),
    }
}

/// The user's passkeys, oldest first.
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<PasskeyRow>, StorageError> {
    let user_id = user_id.to_string();
    state
        .db
        .run(move |conn| passkeys::of_user(conn, &user_id))
        .await
}

/// Removes one of the user's passkeys; false when the user holds no such passkey.
pub async fn remove(
    state: &AppState,
    user_id: &str,
    credential_id: &str,
) -> Result<bool, StorageError> {
    let (user_id, credential_id) = (user_id.to_string(), credential_id.to_string());
    state
        .db
        .run(move |conn| passkeys::remove(conn, &user_id, &credential_id))
        .await
}

/// Starts an authentication: with `None`, passwordless — any discoverable credential may
/// answer, with user verification; with `Some(user)`, the second factor after a password —
/// one of that user's passkeys (`allowCredentials`). Returns the ceremony id and the options
/// for `navigator.credentials.get()` (`{"publicKey": …}`).
pub async fn start_authentication(
    state: &AppState,
    user: Option<&UserRow>,
    client_address: &ClientAddress,
) -> Result<(String, Value), PasskeyError> {
    let webauthn = webauthn(state)?;
    let (options, ceremony, user_id) = match user {
        None => {
            let (mut options, auth) = webauthn
                .start_discoverable_authentication()
                .map_err(PasskeyError::Refused)?;
            // A click on the button, not autofill: the browser's own dialog.
            options.mediation = None;
            (options, Ceremony::Passwordless(auth), None)
        }
        Some(user) => {
            let held = list(state, &user.id).await?;
            if held.is_empty() {
                return Err(PasskeyError::NoPasskey);
            }
            let keys = held
                .iter()
                .map(parse_passkey)
                .collect::<Result<Vec<_>, _>>()?;
            let (options, auth) = webauthn
                .start_passkey_authentication(&keys)
                .map_err(PasskeyError::Refused)?;
            (options, Ceremony::SecondFactor(auth), Some(user.id.clone()))
        }
    };
    let options = serde_json::to_value(options).map_err(corrupt)?;
    let id = park(state, AUTHENTICATE, user_id, &ceremony, client_address).await?;
    Ok((id, options))
}

/// Finishes an authentication that `start_authentication` started: webauthn-rs checks the
/// client data (type, challenge, origin), the RP ID hash, the flags (user verification is
/// required either way) and the signature; a ceremony started for a user takes only that
/// user's passkey; the stored counter moves forward, and a counter that does not is refused
/// and logged.
pub async fn finish_authentication(
    state: &AppState,
    ceremony_id: &str,
    credential: &Value,
) -> Result<PasskeyUse, PasskeyError> {
    let webauthn = webauthn(state)?;
    let answer: PublicKeyCredential =
        serde_json::from_value(credential.clone()).map_err(|_| PasskeyError::Malformed)?;
    let credential_id = b64url(answer.get_credential_id());
    let (id, now, cred) = (
        ceremony_id.to_string(),
        state.clock.now(),
        credential_id.clone(),
    );
    let (ceremony_user, ceremony, row, user) = state
        .db
        .run(move |conn| -> Result<_, PasskeyError> {
            let (ceremony_row, ceremony) = take(conn, &id, AUTHENTICATE, now)?;
            let row =
                passkeys::by_credential_id(conn, &cred)?.ok_or(PasskeyError::UnknownCredential)?;
            let user = users::by_id(conn, &row.user_id)?.ok_or(PasskeyError::UnknownCredential)?;
            Ok((ceremony_row.user_id, ceremony, row, user))
        })
        .await?;
    // WebAuthn L2 §7.2 step 6: the credential must belong to the user the ceremony is for; a
    // passwordless one, to the user its user handle names.
    if ceremony_user.is_some_and(|u| u != row.user_id) {
        return Err(PasskeyError::UnknownCredential);
    }
    let mut passkey = parse_passkey(&row)?;
    let verified = match ceremony {
        Ceremony::Passwordless(auth) => {
            let handle = answer
                .get_user_unique_id()
                .and_then(|h| Uuid::from_slice(h).ok());
            if handle != Some(user_handle(&row.user_id)) {
                return Err(PasskeyError::UnknownCredential);
            }
            webauthn.finish_discoverable_authentication(
                &answer,
                auth,
                &[DiscoverableKey::from(&passkey)],
            )
        }
        Ceremony::SecondFactor(auth) => webauthn.finish_passkey_authentication(&answer, &auth),
        Ceremony::Register(_) => return Err(PasskeyError::UnknownCeremony),
    };
    let result = match verified {
        Ok(result) => result,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return Err(regression(&credential_id, &row.user_id))
        }
        Err(e) => return Err(PasskeyError::Refused(e)),
    };
    // Required by the ceremony's policy already; checked again where it decides the strength.
    if !result.user_verified() {
        return Err(PasskeyError::Refused(WebauthnError::UserNotVerified));
    }
    if user.disabled {
        return Err(PasskeyError::Disabled);
    }
    passkey.update_credential(&result);
    let stored = serde_json::to_string(&passkey).map_err(corrupt)?;
    let (count, backup_eligible) = (i64::from(result.counter()), result.backup_eligible());
    let cred = credential_id.clone();
    let moved = state
        .db
        .run(move |conn| passkeys::record_use(conn, &cred, &stored, count, backup_eligible, now))
        .await?;
    if !moved {
        return Err(regression(&credential_id, &row.user_id));
    }
    Ok(PasskeyUse {
        user,
        method: if backup_eligible {
            strength::SWK
        } else {
            strength::HWK
        },
        user_verified: true,
    })
}

/// SECURITY.md 31: a counter that did not move forward may mean a cloned authenticator.
fn regression(credential_id: &str, user_id: &str) -> PasskeyError {
    tracing::warn!(
        credential_id,
        user_id,
        "passkey refused: its signature counter did not move forward (a cloned authenticator?)"
    );
    PasskeyError::CounterRegression
}
