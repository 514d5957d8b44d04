//! The token endpoint (RFC 6749 §3.2): form in, JSON out, `Cache-Control: no-store`. The
//! handler reads the request and authenticates the client; each grant has its own file.

mod authorization_code;
mod client_credentials;
mod issue;
mod refresh_token;

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::oauth::client_auth;
use crate::oauth::form::Params;
use crate::oauth::token_request::TokenRequest;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;

pub async fn token(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    // RFC 6749 §3.2: parameters arrive as application/x-www-form-urlencoded.
    if !req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let limit = state.settings.http.max_body_bytes;
    let body = match body.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(OAuthError::invalid_request("the body could not be read")),
        Err(_) => {
            return Err(OAuthError::invalid_request(format!(
                "the body is larger than {limit} bytes"
            ))
            .with_status(413))
        }
    };
    let params = Params::parse(&body)?;
    let request = TokenRequest::parse(&params)?;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| OAuthError::invalid_client()))
        .transpose()?;
    let presented = client_auth::extract(authorization, &params)?;
    let client = state.client(presented.client_id()).await?;
    let client = client_auth::authenticate(&presented, client)?;
    // RFC 6749 §5.2: a client may use only the grants it registered.
    let grant = request.grant_type();
    if !client.allows_grant(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "this client is not registered for the {} grant",
                grant.as_str()
            ),
        ));
    }
    match request {
        TokenRequest::ClientCredentials { scope } => {
            client_credentials::grant(&state, &client, scope)
        }
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => authorization_code::grant(&state, &client, code, redirect_uri, code_verifier).await,
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
        } => refresh_token::grant(&state, &client, refresh_token, scope).await,
    }
}

fn invalid_grant(why: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, why)
}

/// A successful token response (RFC 6749 §5.1): never cached.
fn respond(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}
