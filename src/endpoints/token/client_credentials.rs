//! RFC 6749 §4.4: a token for the client itself, within its registered scopes.

use actix_web::HttpResponse;
use serde_json::json;

use super::respond;
use crate::oauth::client_metadata::Client;
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::tokens::access_token::{self, AccessTokenClaims};

pub fn grant(
    state: &AppState,
    client: &Client,
    requested: Option<Scope>,
) -> Result<HttpResponse, OAuthError> {
    let registered = client.registered_scope();
    // RFC 6749 §3.3: without a scope, the client's registered (default) scope.
    let scope = match requested {
        Some(s) if !s.is_subset(&registered) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "the requested scope exceeds the client's registered scope",
            ))
        }
        Some(s) => s,
        None => registered,
    };
    let settings = &state.settings;
    let snapshot = state.keyring.current();
    let alg = settings.tokens.access_token_alg;
    let key = snapshot
        .active(alg)
        .ok_or_else(|| OAuthError::server_error(format!("no active {alg} key")))?;
    let now = state.clock.now();
    let ttl = settings.tokens.access_ttl.as_secs() as i64;
    let issuer = settings.issuer_str();
    let scope_text = scope.to_string();
    let mut claims = AccessTokenClaims::new(
        issuer,
        &client.client_id,
        issuer,
        &client.client_id,
        now,
        ttl,
    );
    claims.scope = (!scope.is_empty()).then_some(scope_text.as_str());
    let token = access_token::mint(key, &claims).map_err(OAuthError::server_error)?;
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
    });
    if !scope.is_empty() {
        body["scope"] = scope_text.into();
    }
    Ok(respond(body))
}
