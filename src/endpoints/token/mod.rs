//! The token endpoint (RFC 6749 §3.2): form in, JSON out, `Cache-Control: no-store`. The
//! handler reads the request and authenticates the client; each grant has its own file.

mod authorization_code;
mod client_credentials;
mod issue;
mod refresh_token;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::client_form;
use crate::oauth::token_request::TokenRequest;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;

pub async fn token(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let params = client_form::read(&req, body, &state).await?;
    let request = TokenRequest::parse(&params)?;
    let client = client_form::authenticate(&req, &params, &state).await?;
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
    let result = match request {
        TokenRequest::ClientCredentials { scope, resource } => {
            client_credentials::grant(&state, &client, scope, resource).await
        }
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
        } => {
            authorization_code::grant(&state, &client, code, redirect_uri, code_verifier, resource)
                .await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resource,
        } => refresh_token::grant(&state, &client, refresh_token, scope, resource).await,
    };
    // A replayed code or refresh token revokes its grant (RFC 9700 §4.14.2, RFC 6749 §4.1.2);
    // drop this node's cached introspection answers so that is seen here at once.
    if matches!(&result, Err(e) if e.code == ErrorCode::InvalidGrant) {
        state.verdicts.invalidate();
    }
    result
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
