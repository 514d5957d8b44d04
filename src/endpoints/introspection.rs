//! Token introspection (RFC 7662) for authenticated confidential clients: access tokens of any
//! client (resource servers ask about tokens issued to others), refresh tokens only of the
//! client that holds them. Anything not currently valid is `{"active": false}`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::client_form;
use crate::oauth::client_metadata::Client;
use crate::oauth::{groups, OAuthError};
use crate::state::AppState;
use crate::storage::groups as stored_groups;
use crate::storage::{grants, users};
use crate::tokens::validate;
use crate::tokens::verdicts::Verdicts;
use crate::web::flow::hash;

pub async fn introspect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let params = client_form::read(&req, body, &state).await?;
    let client = client_form::authenticate(&req, &params, &state).await?;
    // RFC 7662 §2.1: the caller must be authorised; a public client holds no credentials.
    if !client.metadata.token_endpoint_auth_method.is_confidential() {
        return Err(OAuthError::invalid_client());
    }
    let token = params.required("token")?.to_string();
    // RFC 7662 §2.1: the hint only orders the search.
    let refresh_first = params.get("token_type_hint") == Some("refresh_token");
    // The same access token asked about again: this node's cached answer, while nothing that
    // could end a token has changed (src/tokens/verdicts.rs).
    if !refresh_first {
        let cached = state
            .verdicts
            .get(&Verdicts::key(&token), state.clock.now());
        state.metrics.events.introspection_cache(cached.is_some());
        if let Some(body) = cached {
            return Ok(answer_response().body(body));
        }
    }
    let answer = if refresh_first {
        match refresh_token(&state, &client, token.clone()).await? {
            Some(active) => active,
            None => access_token(&state, &token).await?.unwrap_or_else(inactive),
        }
    } else {
        match access_token(&state, &token).await? {
            Some(active) => active,
            None => refresh_token(&state, &client, token)
                .await?
                .unwrap_or_else(inactive),
        }
    };
    Ok(answer_response().json(answer))
}

fn answer_response() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::CONTENT_TYPE, "application/json"));
    response
}

/// Whether a checked access token still stands: a user's while its grant and user are live and
/// it was not revoked; a client's own while the client is registered and it was not revoked.
/// Introspection and token exchange ask the same question.
pub async fn is_live(state: &AppState, token: &validate::AccessToken) -> Result<bool, OAuthError> {
    let t = token.clone();
    Ok(match token.grant_id {
        Some(_) => state
            .db
            .run(move |conn| validate::live_user(conn, &t))
            .await?
            .is_some(),
        None => {
            let client_id = token.claim("client_id").unwrap_or("");
            state.client(client_id).await?.is_some()
                && !state
                    .db
                    .run(move |conn| validate::is_revoked(conn, &t))
                    .await?
        }
    })
}

fn inactive() -> Value {
    json!({ "active": false })
}

async fn access_token(state: &AppState, token: &str) -> Result<Option<Value>, OAuthError> {
    // Read before anything is checked: a change meanwhile makes the answer uncacheable.
    let generation = state.verdicts.generation();
    let key = Verdicts::key(token);
    let keys = state.keyring.current();
    let issuer = state.settings.issuer_str();
    let Ok(token) = validate::check(
        &keys,
        token,
        issuer,
        validate::Audience::Any,
        state.clock.now(),
    ) else {
        return Ok(None);
    };
    let client_id = token.claim("client_id").unwrap_or("").to_string();
    if !is_live(state, &token).await? {
        return Ok(None);
    }
    // RFC 9449 §6.2: a bound token is a DPoP one, and its `cnf` names the key.
    let token_type = match crate::oauth::dpop::bound_jkt(&token.claims) {
        Some(_) => crate::oauth::dpop::TOKEN_TYPE,
        None => "Bearer",
    };
    let mut answer = json!({
        "active": true,
        "token_type": token_type,
        "iss": issuer,
        "client_id": client_id,
        "exp": token.exp,
        "iat": token.iat,
    });
    // `groups`: as the token carries them, filtered for the token's client when it was issued.
    for name in [
        "scope",
        "sub",
        "aud",
        "jti",
        "auth_time",
        "acr",
        "amr",
        "groups",
        "act",
        "cnf",
    ] {
        if let Some(v) = token.claims.get(name) {
            answer[name] = v.clone();
        }
    }
    if let Ok(body) = serde_json::to_vec(&answer) {
        state
            .verdicts
            .put(key, token.exp, generation, web::Bytes::from(body));
    }
    Ok(Some(answer))
}

async fn refresh_token(
    state: &AppState,
    client: &Client,
    token: String,
) -> Result<Option<Value>, OAuthError> {
    let now = state.clock.now();
    let issuer = state.settings.issuer_str().to_string();
    let holder = client.clone();
    state
        .db
        .run(move |conn| {
            let Some(row) = grants::refresh_token(conn, &hash(&token))? else {
                return Ok(None);
            };
            let Some(grant) = grants::grant(conn, &row.grant_id)? else {
                return Ok(None);
            };
            let live = row.used_at.is_none()
                && row.expires_at > now
                && grant.revoked_at.is_none()
                && grant.client_id == holder.client_id
                && users::by_id(conn, &grant.user_id)?
                    .is_some_and(|u| !u.disabled && grant.auth_time > u.tokens_valid_after);
            if !live {
                return Ok(None);
            }
            let mut answer = json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "iss": issuer,
                    "client_id": grant.client_id,
                    "sub": grant.user_id,
                    "scope": grant.scope,
                    "auth_time": grant.auth_time,
                    "acr": grant.acr,
                    "exp": row.expires_at,
                    "iat": row.created_at,
            });
            // The groups the next token of this grant would carry: read now, filtered for the
            // holder (the only client that may introspect its refresh token).
            if groups::in_scope(&grant.scope) {
                let names = holder
                    .metadata
                    .visible_groups(stored_groups::names_of_user(conn, &grant.user_id)?);
                answer["groups"] = names.into();
            }
            Ok::<_, OAuthError>(Some(answer))
        })
        .await
}
