//! UserInfo (OIDC Core §5.3), GET and POST. The bearer token comes in the Authorization
//! header or, for POST, the form body (RFC 6750 §2.1–2.2). It must be a Sigil access token
//! (`typ: at+jwt`, so an ID token is refused) for a user whose grant is still live.

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::oauth::form::Params;
use crate::oauth::groups;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use serde_json::{Map, Value};

use crate::oauth::client_metadata::Client;
use crate::tokens::{claims, id_token, jwe, validate};

fn invalid_token(why: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, why)
}

pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let token = bearer(&req)?.ok_or_else(no_token)?;
    userinfo(&state, token).await
}

pub async fn post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let from_header = bearer(&req)?;
    let from_body = if req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        Params::parse(&body, state.settings.http.max_param_bytes)?
            .get("access_token")
            .map(str::to_string)
    } else {
        None
    };
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "send the token in one place only",
            ))
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return Err(no_token()),
    };
    userinfo(&state, token).await
}

/// RFC 6750 §3.1: without credentials, a bare challenge.
fn no_token() -> OAuthError {
    invalid_token("an access token is required")
}

/// RFC 6750 §2.1: the token of an `Authorization: Bearer` header, if there is one.
pub(crate) fn bearer(req: &HttpRequest) -> Result<Option<String>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| invalid_token("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(invalid_token("use the Bearer scheme")),
    }
}

async fn userinfo(state: &AppState, token: String) -> Result<HttpResponse, OAuthError> {
    let keys = state.keyring.current();
    let issuer = state.settings.issuer_str();
    let token = validate::check(
        &keys,
        &token,
        issuer,
        validate::Audience::Only(issuer),
        state.clock.now(),
    )
    .map_err(invalid_token)?;
    if token.grant_id.is_none() {
        return Err(invalid_token("the token was not issued to a user"));
    }
    let scope = token.claim("scope").unwrap_or("").to_string();
    let client_id = token.claim("client_id").unwrap_or("").to_string();
    // The groups the token was issued with (read at the token endpoint, filtered for its
    // client): UserInfo agrees with the access token and introspection.
    let issued_groups = token
        .claims
        .get(groups::SCOPE)
        .filter(|v| v.is_array() && groups::in_scope(&scope))
        .cloned();
    let user = state
        .db
        .run(move |conn| validate::live_user(conn, &token))
        .await?
        .ok_or_else(|| invalid_token("the token was revoked"))?;
    let mut claims = claims::for_scope(&user, &scope);
    if let Some(names) = issued_groups {
        claims.insert(groups::SCOPE.into(), names);
    }
    let client = state
        .client(&client_id)
        .await?
        .ok_or_else(|| invalid_token("the client is no longer registered"))?;
    respond(state, &client, claims).await
}

/// OIDC Core §5.3.2: JSON, or — when the client registered `userinfo_signed_response_alg` — a
/// JWT signed like its ID tokens, with `iss` and `aud` added.
async fn respond(
    state: &AppState,
    client: &Client,
    mut claims: Map<String, Value>,
) -> Result<HttpResponse, OAuthError> {
    let m = &client.metadata;
    if m.userinfo_signed_response_alg.is_none() && m.userinfo_encrypted_response_alg.is_none() {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(claims));
    }
    claims.insert("iss".into(), state.settings.issuer_str().into());
    claims.insert("aud".into(), client.client_id.clone().into());
    // OIDC Registration §2: signed when a signing algorithm is registered; then encrypted
    // when an encryption algorithm is (a nested JWT), or encrypted JSON claims alone.
    let content = match m.userinfo_signed_response_alg.as_deref() {
        Some(alg) => {
            let keys = state.keyring.current();
            id_token::sign(&keys, alg, client.secret.as_ref(), &claims)?
        }
        None => serde_json::to_string(&claims).map_err(OAuthError::server_error)?,
    };
    let body = match m.userinfo_encrypted_response_alg.as_deref() {
        Some(alg) => {
            let enc = m.userinfo_encrypted_response_enc.as_deref();
            jwe::seal_for_client(state, client, alg, enc, &content).await?
        }
        None => content,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/jwt")
        .body(body))
}
