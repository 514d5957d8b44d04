//! JWT access tokens (RFC 9068): `typ: at+jwt`, signed by the active key of the configured
//! algorithm.

use josekit::jws::JwsHeader;
use serde::Serialize;

use crate::crypto::keyring::ActiveKey;
use crate::crypto::random;

/// RFC 9068 §2.2 claims.
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    /// RFC 9068 §2.2.1: when the user signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 9068 §2.2.1: how strongly the user signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<&'a str>>,
    /// The grant this token belongs to (tokens of a user); revoking the grant revokes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<&'a str>,
    /// The user's groups the client may see, when the scope holds `groups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<&'a [String]>,
    /// RFC 8693 §4.1: who acts on the subject's behalf (a token exchange's delegation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// RFC 9449 §6.1: the DPoP key the token is bound to (`{"jkt": …}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
}

impl<'a> AccessTokenClaims<'a> {
    pub fn new(
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        client_id: &'a str,
        now: i64,
        ttl: i64,
    ) -> Self {
        Self {
            iss,
            sub,
            aud,
            exp: now + ttl,
            iat: now,
            jti: random::id_128(),
            client_id,
            scope: None,
            auth_time: None,
            acr: None,
            amr: None,
            gid: None,
            groups: None,
            act: None,
            cnf: None,
        }
    }
}

pub fn mint(key: &ActiveKey, claims: &AccessTokenClaims<'_>) -> Result<String, josekit::JoseError> {
    let mut header = JwsHeader::new();
    // RFC 9068 §2.1: "at+jwt", so that no other kind of JWT passes for an access token.
    header.set_token_type("at+jwt");
    header.set_key_id(&key.kid);
    let payload =
        serde_json::to_vec(claims).map_err(|e| josekit::JoseError::InvalidJson(e.into()))?;
    josekit::jws::serialize_compact(&payload, &header, key.signer.as_ref())
}
