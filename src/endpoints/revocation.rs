//! Token revocation (RFC 7009). An access token goes on the jti deny-list until its own expiry;
//! a refresh token revokes its whole grant (its refresh tokens and the access tokens issued under
//! it, RFC 7009 §2.1). A client revokes only its own tokens; an unknown, expired or already
//! revoked token is answered 200 like a revoked one (§2.2), so nothing can be learnt from it.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::client_form;
use crate::oauth::client_metadata::Client;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::{grants, revoked_tokens};
use crate::tokens::id_token;
use crate::web::flow::hash;

pub async fn revoke(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let params = client_form::read(&req, body, &state).await?;
    let client = client_form::authenticate(&req, &params, &state).await?;
    let token = params.required("token")?.to_string();
    // RFC 7009 §2.1: `token_type_hint` only speeds up the search, and an unknown hint may be
    // ignored; Sigil tells its two kinds apart by their form (a signed JWT or not), so the hint
    // changes nothing.
    match own_access_token(&state, &token) {
        Some(access) => revoke_access_token(&state, &client, access).await?,
        None => revoke_refresh_token(&state, &client, token).await?,
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .finish())
}

/// What revocation needs of an access token Sigil signed (expired ones included: revoking one
/// is a no-op, not an error).
struct SignedAccessToken {
    jti: String,
    exp: i64,
    client_id: String,
}

fn own_access_token(state: &AppState, token: &str) -> Option<SignedAccessToken> {
    let keys = state.keyring.current();
    let (header, claims) = id_token::verify_own(&keys, token)?;
    if header.get("typ").and_then(Value::as_str) != Some("at+jwt")
        || claims.get("iss").and_then(Value::as_str) != Some(state.settings.issuer_str())
    {
        return None;
    }
    Some(SignedAccessToken {
        jti: claims.get("jti")?.as_str()?.to_string(),
        exp: claims.get("exp")?.as_i64()?,
        client_id: claims.get("client_id")?.as_str()?.to_string(),
    })
}

/// RFC 7009 §2.1: the server "verifies whether the token was issued to the client making the
/// revocation request. If this validation fails, the request is refused".
fn not_yours() -> OAuthError {
    OAuthError::new(
        ErrorCode::UnauthorizedClient,
        "the token was not issued to this client",
    )
}

async fn revoke_access_token(
    state: &AppState,
    client: &Client,
    token: SignedAccessToken,
) -> Result<(), OAuthError> {
    if token.client_id != client.client_id {
        return Err(not_yours());
    }
    if token.exp <= state.clock.now() {
        return Ok(());
    }
    state
        .db
        .run(move |conn| revoked_tokens::revoke(conn, &token.jti, token.exp))
        .await?;
    state.verdicts.invalidate();
    tracing::info!(client_id = %client.client_id, "access token revoked");
    Ok(())
}

async fn revoke_refresh_token(
    state: &AppState,
    client: &Client,
    token: String,
) -> Result<(), OAuthError> {
    let now = state.clock.now();
    let horizon = crate::web::flow::grant_horizon(&state.settings);
    let client_id = client.client_id.clone();
    let revoked = state
        .db
        .run(move |conn| {
            let Some(row) = grants::refresh_token(conn, &hash(&token))? else {
                return Ok(false);
            };
            let Some(grant) = grants::grant(conn, &row.grant_id)? else {
                return Ok(false);
            };
            if grant.client_id != client_id {
                return Err(not_yours());
            }
            // True only when this revoked it: an already revoked grant leaves the caches be.
            Ok::<_, OAuthError>(grants::revoke_grant(conn, &grant.id, now, horizon)?)
        })
        .await?;
    if revoked {
        state.verdicts.invalidate();
        tracing::info!(client_id = %client.client_id, "refresh token revoked with its grant");
    }
    Ok(())
}
