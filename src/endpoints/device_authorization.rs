//! The device authorization endpoint (RFC 8628 §3.1–3.2). A device that cannot show a browser
//! (a TV, a command-line tool) posts its `client_id` and `scope`, authenticated as at the token
//! endpoint, and gets a device code to poll `/token` with and a short user code the person types
//! on `/device` with a browser elsewhere (or reaches through `verification_uri_complete`).
//!
//! Bounds: `device.max_pending_per_client` live authorizations per client and
//! `device.max_pending` in all; beyond either the answer is 503 `temporarily_unavailable` with
//! `Retry-After` (nothing stored). A public client's authorizations can be started by anyone:
//! each client address keeps at most `device.max_pending_per_address` pending ones for it, the
//! oldest giving way. Every row lives `device.lifetime` and is then purged.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{client_form, paths};
use crate::crypto::random;
use crate::oauth::authorize_request;
use crate::oauth::client_metadata::{AuthMethod, GrantType};
use crate::oauth::device;
use crate::oauth::form::Params;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::device_codes::{self, Caps, DeviceRow, Inserted};
use crate::web::{client_address, flow};

/// User codes tried against those already stored before giving up (a collision among 20^8
/// codes is rare; several in a row mean something else is wrong).
const CANDIDATES: usize = 4;

/// POST /device_authorization: 200 with the RFC 8628 §3.2 response, or the error as JSON.
pub async fn authorize(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let params = client_form::read(&req, body, &state).await?;
    let client = client_form::authenticate(&req, &params, &state).await?;
    // RFC 8628 §3.1 / RFC 6749 §5.2: only a client registered for the grant.
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the device_code grant",
        ));
    }
    if params
        .get("client_id")
        .is_some_and(|id| id != client.client_id)
    {
        return Err(OAuthError::invalid_request(
            "client_id is not the authenticated client's",
        ));
    }
    let scope = scope(&params, &client)?;

    let settings = &state.settings.device;
    let key = state.master.derive(device::USER_CODE_KEY);
    let codes: Vec<String> = (0..CANDIDATES).map(|_| device::new_user_code()).collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| device::user_code_hash(&key, &device::normalize(c).unwrap_or_default()))
        .collect();
    let device_code = random::secret_256();
    let now = state.clock.now();
    let lifetime = settings.lifetime.as_secs() as i64;
    let interval = settings.interval.as_secs() as i64;
    let row = DeviceRow {
        device_code_hash: flow::hash(&device_code),
        user_code_hash: String::new(),
        client_id: client.client_id.clone(),
        scope,
        client_address: client_address::of(&req, &state.settings.http.trusted_proxies)
            .throttle_bucket(),
        status: device_codes::PENDING.to_string(),
        grant_id: None,
        poll_interval: interval,
        last_polled_at: None,
        created_at: now,
        expires_at: now + lifetime,
        consumed_at: None,
    };
    let caps = Caps {
        per_client: i64::from(settings.max_pending_per_client),
        total: i64::from(settings.max_pending),
        per_address: (client.metadata.token_endpoint_auth_method == AuthMethod::None)
            .then(|| i64::from(settings.max_pending_per_address)),
    };
    let inserted = state
        .db
        .run(move |c| device_codes::insert(c, &row, &hashes, caps))
        .await?;
    let user_code = match inserted {
        Inserted::With(i) => codes[i].clone(),
        Inserted::Full => {
            tracing::info!(client_id = %client.client_id, "device authorizations at their cap");
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "too many device authorizations are waiting; try again later",
            ));
        }
    };
    let verification_uri = state.settings.endpoint_url(paths::DEVICE);
    let mut complete = url::Url::parse(&verification_uri)
        .map_err(|e| OAuthError::server_error(format!("verification URI: {e}")))?;
    complete
        .query_pairs_mut()
        .append_pair("user_code", &user_code);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": complete.as_str(),
            "expires_in": lifetime,
            "interval": interval,
        })))
}

/// RFC 8628 §3.1: the scope, checked as `/authorize` checks it for this client (within its
/// registered scope; none asked: the registered one).
fn scope(
    params: &Params,
    client: &crate::oauth::client_metadata::Client,
) -> Result<String, OAuthError> {
    let scope = authorize_request::check_scope(params, client)?;
    if scope.to_string().is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "the client has no scope to ask for",
        ));
    }
    Ok(scope.to_string())
}
