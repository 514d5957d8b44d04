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

use super::dpop::{self, Scheme};
use super::paths;
use crate::oauth::client_metadata::Client;
use crate::oauth::dpop::Refusal;
use crate::tokens::{claims, id_token, jwe, validate};

fn invalid_token(why: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, why)
}

pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let presented = authorization(&req);
    let scheme = scheme_of(&presented);
    let answer = match presented {
        Ok(Some((scheme, token))) => userinfo(&req, &state, scheme, token).await,
        Ok(None) => Err(no_token()),
        Err(e) => Err(e),
    };
    Ok(finish(&state, answer, scheme))
}

pub async fn post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let presented = authorization(&req);
    let scheme = scheme_of(&presented);
    let answer = match presented {
        Ok(from_header) => from_post(&req, &body, &state, from_header).await,
        Err(e) => Err(e),
    };
    Ok(finish(&state, answer, scheme))
}

/// The scheme the Authorization header used, for the challenge of an error.
fn scheme_of(presented: &Result<Option<(Scheme, String)>, OAuthError>) -> Option<Scheme> {
    presented.as_ref().ok()?.as_ref().map(|(s, _)| *s)
}

/// RFC 9449 §7.1 and RFC 6750 §3: the answer, with `DPoP-Nonce` and the challenges.
fn finish(
    state: &AppState,
    answer: Result<HttpResponse, OAuthError>,
    scheme: Option<Scheme>,
) -> HttpResponse {
    match answer {
        Ok(r) => dpop::resource_ok(state, r, scheme.unwrap_or(Scheme::Bearer)),
        Err(e) => dpop::resource_error(state, e, scheme),
    }
}

async fn from_post(
    req: &HttpRequest,
    body: &web::Bytes,
    state: &AppState,
    from_header: Option<(Scheme, String)>,
) -> Result<HttpResponse, OAuthError> {
    let from_body = if req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        Params::parse(body, state.settings.http.max_param_bytes)?
            .get("access_token")
            .map(str::to_string)
    } else {
        None
    };
    // RFC 6750 §2.2: a token in the body is a bearer token.
    let (scheme, token) = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "send the token in one place only",
            ))
        }
        (Some(t), None) => t,
        (None, Some(t)) => (Scheme::Bearer, t),
        (None, None) => return Err(no_token()),
    };
    userinfo(req, state, scheme, token).await
}

/// RFC 6750 §3.1: without credentials, a bare challenge.
fn no_token() -> OAuthError {
    invalid_token("an access token is required")
}

/// RFC 6750 §2.1, RFC 9449 §7.1: the token of an `Authorization: Bearer` or `Authorization:
/// DPoP` header, and which it was, if there is one.
fn authorization(req: &HttpRequest) -> Result<Option<(Scheme, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| invalid_token("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .map(|(s, t)| (s, t.trim()))
        .filter(|(_, t)| !t.is_empty())
        .ok_or_else(|| invalid_token("use the Bearer or DPoP scheme"))?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some((Scheme::Bearer, token.to_string())))
    } else if scheme.eq_ignore_ascii_case(crate::oauth::dpop::SCHEME) {
        Ok(Some((Scheme::Dpop, token.to_string())))
    } else {
        Err(invalid_token("use the Bearer or DPoP scheme"))
    }
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

async fn userinfo(
    req: &HttpRequest,
    state: &AppState,
    scheme: Scheme,
    presented: String,
) -> Result<HttpResponse, OAuthError> {
    // RFC 9449 §7.1: a DPoP token comes with a proof for this request and this token.
    let proof = match scheme {
        Scheme::Dpop => Some(
            dpop::proof(req, state, paths::USERINFO, Some(&presented))?.ok_or_else(|| {
                dpop::refused(Refusal::Invalid("a DPoP token needs a DPoP proof"))
            })?,
        ),
        Scheme::Bearer => None,
    };
    let keys = state.keyring.current();
    let issuer = state.settings.issuer_str();
    let token = validate::check(
        &keys,
        &presented,
        issuer,
        validate::Audience::Only(issuer),
        state.clock.now(),
    )
    .map_err(invalid_token)?;
    // RFC 9449 §7.1, §7.2 (SECURITY.md 33): a bound token only with a proof of its key, never
    // as a bearer token; an unbound one never in the DPoP scheme.
    match (crate::oauth::dpop::bound_jkt(&token.claims), &proof) {
        (Some(jkt), Some(proof)) if proof.jkt == jkt => dpop::spend(state, proof).await?,
        (Some(_), Some(_)) => {
            return Err(invalid_token(
                "the DPoP proof is not made with the token's key",
            ))
        }
        (Some(_), None) => {
            return Err(invalid_token(
                "the token is DPoP-bound: present it in the DPoP scheme with a proof",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid_token(
                "the token is not DPoP-bound: present it in the Bearer scheme",
            ))
        }
        (None, None) => {}
    }
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
