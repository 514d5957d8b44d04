//! Pushed authorization requests (RFC 9126). A client posts its authorization request's
//! parameters here, authenticated as at the token endpoint; they are checked as `/authorize`
//! checks them and stored for 60 seconds under a one-time `request_uri`, which the browser then
//! carries to `/authorize` beside the `client_id` alone. The request never passes through the
//! browser, so it cannot be read or altered there, and a client (or `par.required`) can insist
//! on it with `require_pushed_authorization_requests`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::client_form;
use crate::crypto::random;
use crate::oauth::authorize_request;
use crate::oauth::client_metadata::{AuthMethod, Client};
use crate::oauth::form::Params;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::pushed_requests::{self, PushedRequestRow};
use crate::web::{client_address, flow};

/// RFC 9126 §2.2: the `request_uri` is this URN and a random, unguessable part.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request waits for the browser (RFC 9126 §2.2: "short", 5 to 600 s).
pub const LIFETIME: i64 = 60;

/// The parameters of client authentication, which are not part of the request stored.
const CLIENT_AUTHENTICATION: [&str; 3] =
    ["client_secret", "client_assertion", "client_assertion_type"];

/// POST /par: 201 `{"request_uri", "expires_in"}`, or the error as JSON (RFC 9126 §2.3).
pub async fn push(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let mut params = client_form::read(&req, body, &state).await?;
    let client = client_form::authenticate(&req, &params, &state).await?;
    for name in CLIENT_AUTHENTICATION {
        params.remove(name);
    }
    if params.get("client_id").is_none() {
        params.insert("client_id", &client.client_id);
    }
    let params = super::authorize::request_object(&state, &client, params).await?;
    let params = checked(params, &client)?;
    let id = random::secret_256();
    let now = state.clock.now();
    let address = client_address::of(&req, &state.settings.http.trusted_proxies);
    let row = PushedRequestRow {
        id_hash: flow::hash(&id),
        client_id: client.client_id.clone(),
        params: serde_json::to_string(&params)
            .map_err(|_| OAuthError::server_error("the request could not be stored"))?,
        client_address: address.throttle_bucket(),
        created_at: now,
        expires_at: now + LIFETIME,
    };
    // Anyone can push for a public client: those requests are capped per address like parked
    // ones. An authenticated client answers for what it pushes.
    let cap = (client.metadata.token_endpoint_auth_method == AuthMethod::None)
        .then(|| i64::from(state.settings.login.max_parked_per_address));
    state
        .db
        .run(move |c| pushed_requests::insert(c, &row, cap))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(json!({
            "request_uri": format!("{REQUEST_URI_PREFIX}{id}"),
            "expires_in": LIFETIME,
        })))
}

/// The request as `/authorize` will read it, checked as `/authorize` checks it (RFC 9126 §2.1),
/// with the authenticated client's id.
fn checked(mut params: Params, client: &Client) -> Result<Params, OAuthError> {
    if params.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "request_uri cannot be pushed (RFC 9126 §2.1)",
        ));
    }
    match params.get("client_id") {
        Some(id) if id != client.client_id => {
            return Err(OAuthError::invalid_request(
                "client_id is not the authenticated client's",
            ))
        }
        Some(_) => {}
        None => params.insert("client_id", &client.client_id),
    }
    let redirect_uri = authorize_request::check_redirect_uri(&params, client)?.to_string();
    let mode = authorize_request::check_response_mode(&params)?;
    authorize_request::check(&params, client, &redirect_uri, mode)?;
    Ok(params)
}

/// The pushed request a `request_uri` of [`REQUEST_URI_PREFIX`] names, taken for `client`
/// (once: a second use, another client's, or one past its 60 seconds is
/// `invalid_request_uri`).
pub async fn take(
    state: &AppState,
    request_uri: &str,
    client: &Client,
) -> Result<Params, OAuthError> {
    let invalid = || {
        OAuthError::new(
            ErrorCode::InvalidRequestUri,
            "the request_uri has expired, was used already, or is not this client's",
        )
    };
    let id = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .ok_or_else(invalid)?;
    let (id_hash, client_id, now) = (flow::hash(id), client.client_id.clone(), state.clock.now());
    let stored = state
        .db
        .run(move |c| pushed_requests::take(c, &id_hash, &client_id, now))
        .await?
        .ok_or_else(invalid)?;
    serde_json::from_str(&stored).map_err(|_| invalid())
}
