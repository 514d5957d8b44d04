//! The authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2), GET and POST. Checks run in
//! the spec's order; until the client and redirect_uri are known good, errors are an HTML page
//! and never a redirect (RFC 6749 §4.1.2.1). After that every answer, errors included, goes to
//! the client's redirect_uri with `state` and `iss`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::pages::error_page;
use super::par;
use crate::oauth::authorize_request::{self, ReplyTo, ResponseMode};
use crate::oauth::client_keys::AssertionAlg;
use crate::oauth::client_metadata::Client;
use crate::oauth::form::Params;
use crate::oauth::request_object;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::web::{cookies, flow, session};

pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    );
    authorize(&req, &state, params).await
}

pub async fn post(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(&body, state.settings.http.max_param_bytes);
    authorize(&req, &state, params).await
}

async fn authorize(
    req: &HttpRequest,
    state: &AppState,
    params: Result<Params, OAuthError>,
) -> HttpResponse {
    let params = match params {
        Ok(p) => p,
        Err(e) => return page(&e),
    };
    let client = match known_client(state, params.get("client_id")).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    // RFC 9126 §4: a pushed request is the request; other parameters but client_id are ignored.
    let pushed = params
        .get("request_uri")
        .is_some_and(|uri| uri.starts_with(par::REQUEST_URI_PREFIX));
    let params = if pushed {
        let uri = params.get("request_uri").unwrap_or_default();
        match par::take(state, uri, &client).await {
            Ok(p) => p,
            Err(e) => return page(&e),
        }
    } else {
        params
    };
    // RFC 9101: a request object's claims are the request. Until it verifies, its redirect_uri
    // is not to be trusted: errors are a page.
    let params = match request_object(state, &client, params).await {
        Ok(p) => p,
        Err(e) => return page(&e),
    };
    let redirect_uri = match authorize_request::check_redirect_uri(&params, &client) {
        Ok(uri) => uri.to_string(),
        Err(e) => return page(&e),
    };
    // From here on, errors go back to the client.
    let mut reply_to = ReplyTo {
        redirect_uri: redirect_uri.clone(),
        response_mode: ResponseMode::Query,
        state: params.get("state").map(str::to_string),
        device: false,
    };
    if !pushed
        && (client.metadata.require_pushed_authorization_requests || state.settings.par.required)
    {
        let e = OAuthError::invalid_request(
            "this client's authorization requests must be pushed to the PAR endpoint first (RFC 9126)",
        );
        return flow::reply(state, &reply_to, Err(e));
    }
    let result = authorize_request::check_response_mode(&params).and_then(|mode| {
        reply_to.response_mode = mode;
        authorize_request::check(&params, &client, &redirect_uri, mode)
    });
    let request = match result {
        Ok(r) => r,
        Err(e) => return flow::reply(state, &reply_to, Err(e)),
    };
    let hint_sub = match flow::hint_subject(state, &request, &client) {
        Ok(sub) => sub,
        Err(e) => return flow::reply(state, &reply_to, Err(e)),
    };
    let session = match session::current(req, state).await {
        Ok(s) => s,
        Err(e) => return flow::reply(state, &reply_to, Err(e.into())),
    };
    flow::proceed(req, state, &client, request, session, None, hint_sub).await
}

/// The request `params` stand for: those of their signed request object (`request`, RFC 9101)
/// verified with the client's keys — the registered `request_object_signing_alg`'s only, when
/// it registered one — else `params` themselves. Used by `/authorize` and `/par` alike.
pub async fn request_object(
    state: &AppState,
    client: &Client,
    params: Params,
) -> Result<Params, OAuthError> {
    let Some(jwt) = params.get("request") else {
        return Ok(params);
    };
    if params.get("client_id") != Some(client.client_id.as_str()) {
        return Err(OAuthError::invalid_request(
            "client_id must be given beside the request object",
        ));
    }
    let object = request_object::parse(jwt)?;
    let pinned = match client.metadata.request_object_signing_alg.as_deref() {
        Some(alg) => Some(
            AssertionAlg::parse(alg).ok_or_else(|| request_object::invalid("unknown algorithm"))?,
        ),
        None => None,
    };
    let kid = object.kid().map_err(request_object::invalid)?;
    let now = state.clock.now();
    let keys = state
        .client_keys
        .request_object_keys(&state.outbound, client, pinned, kid, now)
        .await
        .map_err(|e| {
            tracing::info!(client_id = %client.client_id, error = %e, "request object keys");
            request_object::invalid("no key of the client to verify it with")
        })?;
    let expected = request_object::Expected {
        client_id: &client.client_id,
        issuer: state.settings.issuer_str(),
        now,
        clock_skew: state.settings.tokens.clock_skew.as_secs() as i64,
    };
    request_object::verify(&object, &keys, &expected)
}

/// After the login page: picks the parked request up again.
pub async fn resume(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Ok(params) = Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    ) else {
        return expired();
    };
    let csrf = cookies::read(&req, &state.settings, cookies::CSRF);
    let parked =
        match flow::find_parked(&state, params.get("request").unwrap_or(""), csrf.as_deref()).await
        {
            Ok(Some(p)) => p,
            Ok(None) => return expired(),
            Err(e) => return page(&e.into()),
        };
    let client = match known_client(&state, Some(&parked.request.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    let reply_to = parked.request.reply_to();
    let request = parked.request.clone();
    let hint_sub = match flow::hint_subject(&state, &parked.request, &client) {
        Ok(sub) => sub,
        Err(e) => return flow::reply(&state, &reply_to, Err(e)),
    };
    let session = match session::current(&req, &state).await {
        Ok(s) => s,
        Err(e) => return flow::reply(&state, &reply_to, Err(e.into())),
    };
    flow::proceed(
        &req,
        &state,
        &client,
        request,
        session,
        Some(parked),
        hint_sub,
    )
    .await
}

/// RFC 6749 §4.1.2.1: an unknown client is shown an error, never redirected.
pub async fn known_client(state: &AppState, client_id: Option<&str>) -> Result<Client, OAuthError> {
    let client_id =
        client_id.ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
    state
        .client(client_id)
        .await?
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "unknown client").with_status(400))
}

fn expired() -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "This sign-in request has expired or was started in another browser. Go back to the application and try again.",
    )
}

/// An error as a page: the RFC's code, 400 for the request's faults; a server that cannot
/// answer for now gets the 503 page with `Retry-After`.
pub fn page(e: &OAuthError) -> HttpResponse {
    if e.code == ErrorCode::TemporarilyUnavailable {
        return super::pages::unavailable_page();
    }
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
