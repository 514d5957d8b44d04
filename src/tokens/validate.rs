//! Checking an access token Sigil issued, for UserInfo and introspection: the signature by one
//! of Sigil's published keys (found by kid, verified with the key's own algorithm), `typ:
//! at+jwt` (RFC 9068 §4: an ID token is not an access token), issuer, audience and expiry; and,
//! for a user's token, that its grant and user are still live.

use serde_json::{Map, Value};

use super::id_token;
use crate::crypto::keyring::KeySnapshot;
use crate::storage::users::{self, UserRow};
use crate::storage::{grants, revoked_tokens, AnyConnection, StorageError};

/// A well-formed, unexpired access token for this issuer.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub claims: Map<String, Value>,
    pub iat: i64,
    pub exp: i64,
    /// The grant of a user's token; client_credentials tokens have none.
    pub grant_id: Option<String>,
}

impl AccessToken {
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// Which audience a caller accepts.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// Only tokens whose `aud` is exactly this (UserInfo and the admin API: the issuer).
    Only(&'a str),
    /// Any audience: introspection answers for every resource server, which checks `aud` itself.
    Any,
}

/// Why a token was refused, in words for `error_description`.
pub fn check(
    keys: &KeySnapshot,
    token: &str,
    issuer: &str,
    audience: Audience<'_>,
    now: i64,
) -> Result<AccessToken, &'static str> {
    let (header, claims) = id_token::verify_own(keys, token).ok_or("the token is not valid")?;
    if header.get("typ").and_then(Value::as_str) != Some("at+jwt") {
        return Err("not an access token");
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(issuer) {
        return Err("the token is not for this server");
    }
    let aud_ok = match (audience, text("aud")) {
        (_, None) => false,
        (Audience::Any, Some(_)) => true,
        (Audience::Only(wanted), Some(aud)) => aud == wanted,
    };
    if !aud_ok {
        return Err("the token is not for this server");
    }
    let int = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(exp), Some(iat)) = (int("exp"), int("iat")) else {
        return Err("the token is not valid");
    };
    if exp <= now {
        return Err("the token has expired");
    }
    let grant_id = text("gid").map(str::to_string);
    Ok(AccessToken {
        claims,
        iat,
        exp,
        grant_id,
    })
}

/// Whether the token's jti is on the deny-list (RFC 7009 revocation).
pub fn is_revoked(conn: &mut AnyConnection, token: &AccessToken) -> Result<bool, StorageError> {
    match token.claim("jti") {
        Some(jti) => revoked_tokens::is_revoked(conn, jti),
        // Sigil's tokens always carry a jti; one without cannot be checked, so it is dead.
        None => Ok(true),
    }
}

/// The user behind a user's token, when the token was not revoked, its grant is not revoked,
/// and the user is enabled and has not logged out everywhere since the token was issued.
pub fn live_user(
    conn: &mut AnyConnection,
    token: &AccessToken,
) -> Result<Option<UserRow>, StorageError> {
    let (Some(gid), Some(sub)) = (token.grant_id.as_deref(), token.claim("sub")) else {
        return Ok(None);
    };
    if is_revoked(conn, token)? {
        return Ok(None);
    }
    let grant = grants::grant(conn, gid)?;
    if grant.is_none_or(|g| g.revoked_at.is_some() || g.user_id != sub) {
        return Ok(None);
    }
    Ok(users::by_id(conn, sub)?.filter(|u| !u.disabled && token.iat > u.tokens_valid_after))
}
