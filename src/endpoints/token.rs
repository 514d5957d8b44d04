//! The token endpoint (RFC 6749 §3.2): form in, JSON out, `Cache-Control: no-store`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::admin::clients;
use crate::oauth::client_auth;
use crate::oauth::client_metadata::{Client, GrantType};
use crate::oauth::form::Params;
use crate::oauth::scope::Scope;
use crate::oauth::token_request::TokenRequest;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::tokens::access_token::{self, AccessTokenClaims};

pub async fn token(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    // RFC 6749 §4.4.2: parameters arrive as application/x-www-form-urlencoded.
    use actix_web::HttpMessage;
    let form = req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded");
    if !form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let limit = state.settings.http.max_body_bytes;
    let too_large = || {
        OAuthError::invalid_request(format!("the body is larger than {limit} bytes"))
            .with_status(413)
    };
    let body = match body.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(OAuthError::invalid_request("the body could not be read")),
        Err(_) => return Err(too_large()),
    };
    let params = Params::parse(&body)?;
    let request = TokenRequest::parse(&params)?;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| OAuthError::invalid_client()))
        .transpose()?;
    let presented = client_auth::extract(authorization, &params)?;
    let client_id = presented.client_id().to_string();
    let master = state.master.clone();
    let client = state
        .db
        .run(move |conn| clients::load(conn, &master, &client_id))
        .await?;
    let client = client_auth::authenticate(&presented, client)?;
    match request {
        TokenRequest::ClientCredentials { scope } => client_credentials(&state, &client, scope),
    }
}

/// RFC 6749 §4.4: a token for the client itself, within its registered scopes.
fn client_credentials(
    state: &AppState,
    client: &Client,
    requested: Option<Scope>,
) -> Result<HttpResponse, OAuthError> {
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the client_credentials grant",
        ));
    }
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
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}
