//! Dynamic client registration (RFC 7591) and its management (RFC 7592), below HTTP: initial
//! access tokens, registering a client with its registration access token, and the client's
//! own reads, updates and removal. Metadata passes the one validator of every registration
//! ([`ClientMetadata::from_json`], as `sigil client add` and the admin API) and then the rules
//! for clients that register themselves ([`self_registered::check`]); the client rows are
//! written by `admin::clients`, as for every other client.
//!
//! Tokens (initial and registration access tokens) are 256-bit random values stored only as
//! their SHA-256. A registration access token does not rotate: RFC 7592 §3 allows rotation on
//! read or update, but a client that lost the answer of an update would then have lost its
//! registration, and the token only manages the client (it never shows the client secret).

use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::clients::{self, ClientError};
use crate::audit::{By, EventType};
use crate::crypto::master_key::MasterKey;
use crate::crypto::{b64url, random, sha256};
use crate::oauth::client_metadata::{self_registered, ClientMetadata};
use crate::oauth::{ErrorCode, OAuthError};
use crate::storage::registrations::{self, InitialTokenRow, RegisteredRow};
use crate::storage::{self, atomically, AnyConnection, StorageError};

/// The shortest and longest lifetimes of an initial access token.
pub const INITIAL_TOKEN_TTL: std::ops::RangeInclusive<u64> = 1..=30 * 86_400;

/// Members of the client information response (RFC 7591 §3.2.1, RFC 7592 §3) that are the
/// server's to say: ignored in an update request (RFC 7592 §2.2).
const SERVER_MEMBERS: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    b64url(&sha256(token.as_bytes()))
}

/// A new initial access token for one registration within `ttl_secs`; the token is in the
/// answer only (`{"initial_access_token", "expires_at"}`, RFC 3339), with its audit event.
pub fn issue_initial_token(
    conn: &mut AnyConnection,
    ttl_secs: u64,
    by: &By,
    now: i64,
) -> Result<Value, StorageError> {
    let ttl = ttl_secs.clamp(*INITIAL_TOKEN_TTL.start(), *INITIAL_TOKEN_TTL.end()) as i64;
    let token = random::secret_256();
    let row = InitialTokenRow {
        token_hash: token_hash(&token),
        created_at: now,
        expires_at: now + ttl,
    };
    atomically(conn, |conn| {
        registrations::insert_initial_token(conn, &row)?;
        by.event(EventType::ClientInitialTokenIssued)
            .details(json!({ "expires_at": row.expires_at }))
            .record(conn, now)
    })?;
    Ok(json!({
        "initial_access_token": token,
        "expires_at": crate::clock::rfc3339(row.expires_at),
    }))
}

/// Why a registration, or a change of one, was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The initial access token or registration access token is missing, wrong, expired or
    /// used; or the client is not one registered at `/register`: one answer for all.
    #[error("invalid token")]
    InvalidToken,
    /// `registration.max_clients` clients are registered already.
    #[error("the registry is full")]
    Full,
    /// The metadata is refused (RFC 7591 §3.2.2).
    #[error("{0}")]
    Metadata(OAuthError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<ClientError> for RegistrationError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Metadata(e) => Self::Metadata(e),
            // The client went between authentication and change: as if the token were wrong.
            ClientError::Storage(StorageError::NotFound(_)) => Self::InvalidToken,
            ClientError::Storage(StorageError::Conflict(m)) => {
                Self::Metadata(OAuthError::new(ErrorCode::InvalidClientMetadata, m))
            }
            ClientError::Storage(e) => Self::Storage(e),
        }
    }
}

fn bad(description: impl Into<String>) -> RegistrationError {
    RegistrationError::Metadata(OAuthError::new(
        ErrorCode::InvalidClientMetadata,
        description.into(),
    ))
}

/// The submitted metadata as a JSON object; a software statement is refused (Sigil approves
/// none: RFC 7591 §3.2.2 `unapproved_software_statement`).
fn object(body: &[u8]) -> Result<Map<String, Value>, RegistrationError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("metadata is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(bad("metadata must be a JSON object"));
    };
    if map.contains_key("software_statement") {
        return Err(RegistrationError::Metadata(OAuthError::new(
            ErrorCode::UnapprovedSoftwareStatement,
            "Sigil approves no software statement",
        )));
    }
    Ok(map)
}

/// Checks metadata for a client that registers itself: the validator every registration
/// passes, then [`self_registered::check`]. Returns the JSON to store.
pub fn check(body: &[u8], allow_private_networks: bool) -> Result<Vec<u8>, RegistrationError> {
    let map = object(body)?;
    let json = serde_json::to_vec(&map).map_err(|e| bad(e.to_string()))?;
    let metadata = ClientMetadata::from_json(&json).map_err(RegistrationError::Metadata)?;
    self_registered::check(&metadata, allow_private_networks)
        .map_err(RegistrationError::Metadata)?;
    Ok(json)
}

/// How a registration is allowed.
#[derive(Debug, Clone)]
pub enum Admission {
    /// `registration.mode = token`: the hash of the initial access token presented.
    InitialToken(String),
    /// `registration.mode = open`.
    Open,
}

/// Registers a client from metadata that passed [`check`], in one transaction: the initial
/// access token is used up (exactly one of concurrent registrations with it succeeds), the cap
/// on registered clients is checked under the registrations lock, the client is written, and
/// its registration access token (hash) and audit event with it. The answer is the RFC 7591
/// §3.2.1 client information response without `registration_client_uri` (the caller's URL).
pub fn register(
    conn: &mut AnyConnection,
    master: &MasterKey,
    checked_json: &[u8],
    admission: &Admission,
    max_clients: u32,
    address: &str,
    now: i64,
) -> Result<Value, RegistrationError> {
    atomically(conn, |conn| {
        storage::lock(conn, registrations::LOCK, now)?;
        if let Admission::InitialToken(hash) = admission {
            if !registrations::consume_initial_token(conn, hash, now)? {
                return Err(RegistrationError::InvalidToken);
            }
        }
        if registrations::count(conn)? >= i64::from(max_clients) {
            return Err(RegistrationError::Full);
        }
        let mut response = clients::register(conn, master, checked_json, None, now)?;
        let client_id = response["client_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let access_token = random::secret_256();
        registrations::insert(
            conn,
            &RegisteredRow {
                client_id: client_id.clone(),
                access_token_hash: token_hash(&access_token),
                client_address: address.to_string(),
                created_at: now,
            },
        )?;
        By::registration(address)
            .event(EventType::ClientAdded)
            .target(&client_id)
            .details(json!({
                "grant_types": response["grant_types"],
                "scope": response["scope"],
                "initial_access_token": matches!(admission, Admission::InitialToken(_)),
            }))
            .record(conn, now)?;
        response["registration_access_token"] = access_token.into();
        Ok(response)
    })
}

/// Whether `token` is the registration access token of `client_id`, a client registered at
/// `/register`. Unknown clients, clients an administrator registered, and wrong tokens are all
/// `false`.
pub fn authenticate(
    conn: &mut AnyConnection,
    client_id: &str,
    token: &str,
) -> Result<bool, StorageError> {
    let presented = token_hash(token);
    Ok(match registrations::access_token_hash(conn, client_id)? {
        Some(stored) => stored.as_bytes().ct_eq(presented.as_bytes()).into(),
        None => false,
    })
}

/// RFC 7592 §2.1: the client's current metadata (never its secret: see the module comment).
pub fn read(conn: &mut AnyConnection, client_id: &str) -> Result<Value, RegistrationError> {
    clients::show(conn, client_id)?.ok_or(RegistrationError::InvalidToken)
}

/// RFC 7592 §2.2: replaces the whole registration with the request's metadata, checked as at
/// registration. `client_id` must be the client's; a `client_secret` must be its current one
/// (a client cannot choose its secret); the members that are the server's to say are ignored.
pub fn update(
    conn: &mut AnyConnection,
    master: &MasterKey,
    client_id: &str,
    body: &[u8],
    allow_private_networks: bool,
    address: &str,
    now: i64,
) -> Result<Value, RegistrationError> {
    let mut map = object(body)?;
    match map.remove("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(_) => return Err(bad("client_id is not this client's")),
        None => return Err(bad("client_id is required (RFC 7592 §2.2)")),
    }
    for name in SERVER_MEMBERS {
        map.remove(name);
    }
    if let Some(presented) = map.remove("client_secret") {
        let current = clients::load(conn, master, client_id)?
            .ok_or(RegistrationError::InvalidToken)?
            .secret;
        let matches = match (presented.as_str(), current) {
            (Some(p), Some(secret)) => secret.matches(p),
            _ => false,
        };
        if !matches {
            return Err(bad(
                "client_secret is not the client's current secret (a client cannot choose one)",
            ));
        }
    }
    let body = serde_json::to_vec(&map).map_err(|e| bad(e.to_string()))?;
    let checked = check(&body, allow_private_networks)?;
    Ok(clients::update(
        conn,
        master,
        client_id,
        &checked,
        &By::registration(address),
        now,
    )?)
}

/// RFC 7592 §2.3: removes the client as `sigil client remove` does (its grants, consents and
/// tokens with it).
pub fn remove(
    conn: &mut AnyConnection,
    client_id: &str,
    address: &str,
    now: i64,
) -> Result<(), RegistrationError> {
    clients::remove(conn, client_id, &By::registration(address), now).map_err(|e| match e {
        StorageError::NotFound(_) => RegistrationError::InvalidToken,
        e => RegistrationError::Storage(e),
    })
}
