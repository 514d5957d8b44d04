//! Tokens for a user's grant: an RFC 9068 access token, an ID token when `openid` was granted,
//! and a new refresh token when the grant allows one.

use serde_json::{json, Map, Value};

use crate::crypto::random;
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::storage::grants::{self, GrantRow, RefreshRow};
use crate::storage::users::UserRow;
use crate::storage::{AnyConnection, StorageError};
use crate::tokens::access_token::{self, AccessTokenClaims};
use crate::tokens::{claims, id_token};
use crate::web::flow::hash;

/// DESIGN.md: refresh tokens when the client has the grant and `offline_access` was granted,
/// or the client is first-party (`skip_consent`).
pub fn wants_refresh(client: &Client, scope: &str) -> bool {
    client.allows_grant(GrantType::RefreshToken)
        && (scope.split(' ').any(|s| s == "offline_access") || client.metadata.skip_consent)
}

/// Stores a new refresh token for `grant_id`; returns the token.
pub fn new_refresh(
    conn: &mut AnyConnection,
    grant_id: &str,
    now: i64,
    ttl: i64,
) -> Result<String, StorageError> {
    let token = random::secret_256();
    grants::insert_refresh(
        conn,
        &RefreshRow {
            token_hash: hash(&token),
            grant_id: grant_id.to_string(),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
        },
    )?;
    Ok(token)
}

/// The token response body for `grant` with `scope` (the grant's, or a narrower one).
pub fn response(
    state: &AppState,
    client: &Client,
    grant: &GrantRow,
    user: &UserRow,
    scope: &str,
    refresh_token: Option<String>,
) -> Result<Value, OAuthError> {
    let settings = &state.settings;
    let keys = state.keyring.current();
    let now = state.clock.now();
    let issuer = settings.issuer_str();
    let ttl = settings.tokens.access_ttl.as_secs() as i64;
    let alg = settings.tokens.access_token_alg;
    let key = keys
        .active(alg)
        .ok_or_else(|| OAuthError::server_error(format!("no active {alg} key")))?;
    let mut at = AccessTokenClaims::new(issuer, &user.id, issuer, &client.client_id, now, ttl);
    at.scope = Some(scope);
    at.auth_time = Some(grant.auth_time);
    at.gid = Some(&grant.id);
    let access_token = access_token::mint(key, &at).map_err(OAuthError::server_error)?;

    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
    });
    if scope.split(' ').any(|s| s == "openid") {
        let alg = client.metadata.id_token_signed_response_alg.as_str();
        let mut c: Map<String, Value> = claims::for_scope(user, scope);
        c.insert("iss".into(), issuer.into());
        c.insert("aud".into(), client.client_id.clone().into());
        c.insert("azp".into(), client.client_id.clone().into());
        c.insert(
            "exp".into(),
            (now + settings.tokens.id_token_ttl.as_secs() as i64).into(),
        );
        c.insert("iat".into(), now.into());
        c.insert("auth_time".into(), grant.auth_time.into());
        if let Some(nonce) = &grant.nonce {
            c.insert("nonce".into(), nonce.clone().into());
        }
        c.insert("acr".into(), grant.acr.clone().into());
        c.insert(
            "amr".into(),
            grant.amr.split(' ').collect::<Vec<_>>().into(),
        );
        c.insert("sid".into(), grant.sid.clone().into());
        c.insert(
            "at_hash".into(),
            id_token::at_hash(&access_token, alg).into(),
        );
        body["id_token"] = id_token::sign(&keys, alg, client.secret.as_ref(), &c)?.into();
    }
    if let Some(rt) = refresh_token {
        body["refresh_token"] = rt.into();
    }
    Ok(body)
}

/// Checks that the grant's user may still receive tokens.
pub fn live_user(
    conn: &mut AnyConnection,
    grant: &GrantRow,
) -> Result<Option<UserRow>, StorageError> {
    Ok(crate::storage::users::by_id(conn, &grant.user_id)?
        .filter(|u| !u.disabled && grant.auth_time > u.tokens_valid_after))
}
