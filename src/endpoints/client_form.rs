//! What the endpoints that clients call directly (token, introspection) share: a bounded
//! `application/x-www-form-urlencoded` body, and client authentication (RFC 6749 §2.3).

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest};

use crate::oauth::client_auth;
use crate::oauth::client_metadata::Client;
use crate::oauth::form::Params;
use crate::oauth::OAuthError;
use crate::state::AppState;

/// The form parameters; wrong content types, unreadable and oversized bodies (413) and
/// repeated parameters are refused.
pub async fn read(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<Params, OAuthError> {
    // RFC 6749 §3.2, RFC 7662 §2.1: parameters arrive as application/x-www-form-urlencoded.
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
    Params::parse(&body)
}

/// The authenticated client; every failure is the same `invalid_client`.
pub async fn authenticate(
    req: &HttpRequest,
    params: &Params,
    state: &AppState,
) -> Result<Client, OAuthError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| OAuthError::invalid_client()))
        .transpose()?;
    let presented = client_auth::extract(authorization, params)?;
    let client = state.client(presented.client_id()).await?;
    client_auth::authenticate(&presented, client)
}
