//! RFC 6749 §4.4: a token for the client itself, within its registered scopes; for a resource
//! server when one is named (RFC 8707).

use actix_web::HttpResponse;
use serde_json::json;

use super::issue::{self, Target};
use super::respond;
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::tokens::access_token::{self, AccessTokenClaims};

pub async fn grant(
    state: &AppState,
    client: &Client,
    requested: Option<Scope>,
    resource: Option<String>,
    dpop_jkt: Option<&str>,
) -> Result<HttpResponse, OAuthError> {
    let resource = issue::requested_resource(state, client, resource).await?;
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
    let issuer = settings.issuer_str();
    let target = Target::new(state, resource.as_ref(), &scope)?;
    let ttl = target.ttl;
    let scope_text = target.scope.clone();
    let mut claims = AccessTokenClaims::new(
        issuer,
        &client.client_id,
        target.aud,
        &client.client_id,
        now,
        ttl,
    );
    claims.scope = (!scope_text.is_empty()).then_some(scope_text.as_str());
    // RFC 9449 §6.1: bound to the proof's key.
    claims.cnf = dpop_jkt.map(crate::oauth::dpop::cnf);
    let token = target.seal(access_token::mint(key, &claims).map_err(OAuthError::server_error)?)?;
    let mut body = json!({
        "access_token": token,
        "token_type": issue::token_type(dpop_jkt),
        "expires_in": ttl,
    });
    if !scope_text.is_empty() {
        body["scope"] = scope_text.into();
    }
    issue::count(state, GrantType::ClientCredentials, client, &body);
    Ok(respond(body))
}
