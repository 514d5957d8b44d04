//! Token exchange (RFC 8693) for clients registered for it: a service that received a user's
//! access token from Sigil trades it for one aimed at the next API. The new token is the
//! user's (same `sub`, grant, sign-in facts), never broader (scope within the subject token's
//! and the client's registered scope, lifetime within the subject token's), aimed at a
//! registered resource (RFC 8707) or Sigil, and says who acts (`act`, §4.1): the actor token's
//! subject when one is given, else the exchanging client, above any earlier actors. Revoking
//! the user's grant or logging them out everywhere ends it with the subject token.

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::issue::{self, Target};
use super::respond;
use crate::endpoints::introspection;
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::dpop;
use crate::oauth::scope::Scope;
use crate::oauth::token_request::ACCESS_TOKEN_TYPE;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::tokens::access_token::{self, AccessTokenClaims};
use crate::tokens::validate::{self, AccessToken, Audience};

/// What the client presented (RFC 8693 §2.1).
pub struct Exchange {
    pub subject_token: String,
    pub actor_token: Option<String>,
    pub scope: Option<Scope>,
    pub resource: Option<String>,
    /// The thumbprint of the DPoP proof's key (RFC 9449 §5), when one came.
    pub dpop_jkt: Option<String>,
}

pub async fn grant(
    state: &AppState,
    client: &Client,
    exchange: Exchange,
) -> Result<HttpResponse, OAuthError> {
    let subject = live_token(state, &exchange.subject_token, "subject_token").await?;
    let actor = match &exchange.actor_token {
        Some(token) => Some(live_token(state, token, "actor_token").await?),
        None => None,
    };
    // RFC 9449 §6: a DPoP-bound token is only usable with its key, here as anywhere: one
    // exchanged without a proof of that key would be a Bearer copy of it.
    let jkt = exchange.dpop_jkt.as_deref();
    for (token, name) in [
        (Some(&subject), "subject_token"),
        (actor.as_ref(), "actor_token"),
    ] {
        if let Some(bound) = token.and_then(|t| dpop::bound_jkt(&t.claims)) {
            if jkt != Some(bound) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidGrant,
                    format!("the {name} is bound to a DPoP key; send a proof with that key"),
                ));
            }
        }
    }
    let held = Scope::parse(subject.claim("scope").unwrap_or("")).unwrap_or_default();
    let allowed = held.intersection(&client.registered_scope());
    let scope = match exchange.scope {
        Some(s) if !s.is_subset(&allowed) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "the requested scope exceeds the subject token's or the client's",
            ))
        }
        Some(s) => s,
        None => allowed,
    };
    let resource = issue::requested_resource(state, client, exchange.resource).await?;
    let target = Target::new(state, resource.as_ref(), &scope)?;

    let settings = &state.settings;
    let alg = settings.tokens.access_token_alg;
    let snapshot = state.keyring.current();
    let key = snapshot
        .active(alg)
        .ok_or_else(|| OAuthError::server_error(format!("no active {alg} key")))?;
    let now = state.clock.now();
    let sub = subject.claim("sub").unwrap_or_default();
    // Never outlives the token it was exchanged for.
    let ttl = target.ttl.min(subject.exp - now).max(1);
    let mut claims = AccessTokenClaims::new(
        settings.issuer_str(),
        sub,
        target.aud,
        &client.client_id,
        now,
        ttl,
    );
    claims.scope = (!target.scope.is_empty()).then_some(target.scope.as_str());
    claims.gid = subject.grant_id.as_deref();
    claims.auth_time = subject.claims.get("auth_time").and_then(Value::as_i64);
    claims.acr = subject.claim("acr");
    let amr: Option<Vec<&str>> = subject
        .claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect());
    claims.amr = amr;
    let acting = match &actor {
        Some(a) => a.claim("sub").unwrap_or_default(),
        None => client.client_id.as_str(),
    };
    let mut act = json!({ "sub": acting });
    if let Some(earlier) = subject.claims.get("act") {
        act["act"] = earlier.clone();
    }
    claims.act = Some(act);
    claims.cnf = jkt.map(dpop::cnf);
    let token = target.seal(access_token::mint(key, &claims).map_err(OAuthError::server_error)?)?;
    // Every exchange is logged with whose token, for whom and for where (never the tokens).
    tracing::info!(
        target: "audit",
        event = "token.exchanged",
        subject = sub,
        client_id = %client.client_id,
        actor = acting,
        audience = target.aud,
        scope = %target.scope,
        "token exchanged"
    );
    let mut body = json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": issue::token_type(jkt),
        "expires_in": ttl,
    });
    if !target.scope.is_empty() {
        body["scope"] = target.scope.clone().into();
    }
    issue::count(state, GrantType::TokenExchange, client, &body);
    Ok(respond(body))
}

/// An access token Sigil issued (any audience), unexpired and still standing; else
/// `invalid_grant` (RFC 8693 §2.2.2), naming which token.
async fn live_token(state: &AppState, token: &str, name: &str) -> Result<AccessToken, OAuthError> {
    let refused = || OAuthError::new(ErrorCode::InvalidGrant, format!("the {name} is not active"));
    let keys = state.keyring.current();
    let checked = validate::check(
        &keys,
        token,
        state.settings.issuer_str(),
        Audience::Any,
        state.clock.now(),
    )
    .map_err(|_| refused())?;
    if introspection::is_live(state, &checked).await? {
        Ok(checked)
    } else {
        Err(refused())
    }
}
