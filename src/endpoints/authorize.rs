//! The authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2). Checks run in the spec's
//! order; until the client and redirect_uri are known good, errors are an HTML page and never a
//! redirect (RFC 6749 §4.1.2.1). The sign-in and consent pages are not built yet, so a request
//! that passes every check is answered `temporarily_unavailable` by redirect.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use url::Url;

use super::pages::error_page;
use crate::admin::clients::metadata_of;
use crate::oauth::client_metadata::ClientMetadata;
use crate::oauth::form::Params;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::clients;

pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    authorize(Params::parse(req.query_string().as_bytes()), &state).await
}

pub async fn post(body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    authorize(Params::parse(&body), &state).await
}

async fn authorize(params: Result<Params, OAuthError>, state: &AppState) -> HttpResponse {
    let params = match params {
        Ok(p) => p,
        Err(e) => return page(&e),
    };
    let (metadata, redirect_uri) = match check_client_and_redirect(&params, state).await {
        Ok(ok) => ok,
        Err(e) => return page(&e),
    };
    let error = match check_response_type(&params, &metadata) {
        Err(e) => e,
        Ok(()) => OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "interactive sign-in is not available on this server yet",
        ),
    };
    redirect_error(
        &redirect_uri,
        &error,
        params.get("state"),
        state.settings.issuer_str(),
    )
}

/// RFC 6749 §4.1.1 / OIDC Core §3.1.2.1: a known client, and a redirect_uri that is one of its
/// registered URIs, compared as exact strings (RFC 9700 §4.1.3).
async fn check_client_and_redirect(
    params: &Params,
    state: &AppState,
) -> Result<(ClientMetadata, Url), OAuthError> {
    let client_id = params.required("client_id")?.to_string();
    let row = state
        .db
        .run(move |conn| clients::get(conn, &client_id))
        .await?
        .ok_or_else(|| {
            OAuthError::new(ErrorCode::InvalidClient, "unknown client").with_status(400)
        })?;
    let metadata = metadata_of(&row)?;
    let redirect_uri = params.required("redirect_uri")?;
    if !metadata.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    let url = Url::parse(redirect_uri)
        .map_err(|_| OAuthError::invalid_request("redirect_uri is not a URL"))?;
    Ok((metadata, url))
}

/// RFC 6749 §3.1.1: response_type is required; Sigil serves `code` only.
fn check_response_type(params: &Params, metadata: &ClientMetadata) -> Result<(), OAuthError> {
    let response_type = params.required("response_type")?;
    if response_type != "code" || !metadata.response_types.iter().any(|r| r == "code") {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        ));
    }
    Ok(())
}

fn page(e: &OAuthError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let status = if status.is_server_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    error_page(
        status,
        e.code.as_str(),
        e.description.as_deref().unwrap_or(""),
    )
}

/// The error goes back to the client on its redirect_uri, keeping the registered query, with
/// `state` and `iss` (RFC 9207).
fn redirect_error(
    redirect_uri: &Url,
    e: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> HttpResponse {
    let mut url = redirect_uri.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", e.code.as_str());
        if let Some(d) = &e.description {
            q.append_pair("error_description", d);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    HttpResponse::SeeOther()
        .insert_header(("Location", url.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}
