//! The `/device` page (RFC 8628 §3.3): the person types the user code their device shows (or
//! arrives with it in `?user_code=`, which only fills the form: nothing is approved without
//! their POST). A right code becomes an authorization request for the device's client, parked
//! like one from `/authorize`, and goes through Sigil's own sign-in, second factor and consent;
//! consent is always asked and shows the user code to compare with the device's (§5.4). Allow
//! approves the device authorization, Deny denies it; the page then says to go back to the
//! device, which gets its tokens (or `access_denied`) at its next poll.
//!
//! Wrong codes are throttled like passwords (SECURITY.md 34): each takes a slot of the client
//! address's sign-in limit (`login.max_failures` per `login.window`, then 429 with
//! `Retry-After`) and waits `login.refusal_delay`.

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use subtle::ConstantTimeEq;

use super::session::Session;
use super::{client_address, cookies, flow, forms, login, session, throttle};
use crate::audit;
use crate::crypto::{b64url, random};
use crate::endpoints::authorize::{known_client, page};
use crate::endpoints::pages::{error_page, render};
use crate::endpoints::paths;
use crate::oauth::authorize_request::{AuthorizationRequest, Prompt, ResponseMode};
use crate::oauth::device::{self, DeviceLink};
use crate::oauth::form::Params;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::storage::device_codes::{self, DeviceRow};
use crate::storage::grants::GrantRow;
use crate::storage::{self, StorageError};

/// The additional data the user code is sealed with.
const SEALED_AAD: &[u8] = b"sigil device user code";

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    csrf_token: &'a str,
    user_code: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_done.html")]
struct DonePage<'a> {
    title: &'a str,
    message: &'a str,
}

const WRONG: &str = "That code is not valid or has expired. Check the code on your device.";

/// GET /device[?user_code=…]: the form, filled with the code when one is given.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    )
    .unwrap_or_default();
    let user_code = params.get("user_code").unwrap_or("");
    let (csrf, new_cookie) = flow::csrf_value(&req, &state);
    let mut response = form_page(StatusCode::OK, &csrf, user_code, None);
    if let Some(cookie) = new_cookie {
        if let Err(e) = response.add_cookie(&cookie) {
            tracing::error!(error = %e, "could not set the CSRF cookie");
        }
    }
    response
}

fn form_page(status: StatusCode, csrf: &str, user_code: &str, error: Option<&str>) -> HttpResponse {
    let page = DevicePage {
        csrf_token: csrf,
        user_code,
        error,
    };
    render(status, &page)
}

/// POST /device: same origin and CSRF token first, then a slot of the address's limit, then
/// the code. Every answer but one that leads on waits `login.refusal_delay`.
pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    // Boxed: freed when done, not kept through the wait (see `login::held_unless`).
    let response = Box::pin(answer(&req, &body, &state)).await;
    login::held_unless(&state, body, response, login::onwards).await
}

async fn answer(req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    let Ok(params) = Params::parse(body, state.settings.http.max_param_bytes) else {
        return forms::forbidden();
    };
    // SECURITY.md 13: from Sigil's own page, with this browser's CSRF token.
    let cookie = cookies::read(req, &state.settings, cookies::CSRF);
    let same_browser = match (&cookie, params.get("csrf_token")) {
        (Some(c), Some(t)) => bool::from(c.as_bytes().ct_eq(t.as_bytes())),
        _ => false,
    };
    if !forms::same_origin(req, state) || !same_browser {
        return forms::forbidden();
    }
    let csrf = cookie.unwrap_or_default();
    let typed = params.get("user_code").unwrap_or("").to_string();
    let address = client_address::of(req, &state.settings.http.trusted_proxies);
    let found = match find(
        state,
        &typed,
        &address.throttle_bucket(),
        &address.to_string(),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return page(&e.into()),
    };
    let (row, canonical) = match found {
        Found::Code(row, canonical) => (*row, canonical),
        Found::Wrong => return form_page(StatusCode::BAD_REQUEST, &csrf, &typed, Some(WRONG)),
        // RFC 6585 §4, like the login form.
        Found::Locked(wait) => {
            let minutes = (wait + 59) / 60;
            let message = format!("Too many wrong codes. Try again in {minutes} minute(s).");
            let mut response =
                form_page(StatusCode::TOO_MANY_REQUESTS, &csrf, &typed, Some(&message));
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(wait.max(1)));
            return response;
        }
    };
    let client = match known_client(state, Some(&row.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    let sealed = match state
        .master
        .seal(device::display(&canonical).as_bytes(), SEALED_AAD)
    {
        Ok(sealed) => b64url(&sealed),
        Err(e) => return page(&OAuthError::server_error(e)),
    };
    let request = AuthorizationRequest {
        client_id: client.client_id.clone(),
        // Never followed: the answer is this page's (`reply_to().device`). It keeps the pages'
        // form targets on Sigil's own origin.
        redirect_uri: state.settings.endpoint_url(paths::DEVICE),
        response_mode: ResponseMode::Query,
        scope: row.scope.clone(),
        state: None,
        nonce: None,
        code_challenge: None,
        // RFC 8628 §5.4: the user always confirms, whatever was consented to before.
        prompt: Prompt {
            consent: true,
            ..Prompt::default()
        },
        max_age: None,
        login_hint: None,
        id_token_hint: None,
        resource: None,
        acr_values: Vec::new(),
        essential_acr: None,
        device: Some(DeviceLink {
            user_code_hash: row.user_code_hash,
            user_code_sealed: sealed,
        }),
    };
    let session = match session::current(req, state).await {
        Ok(s) => s,
        Err(e) => return page(&e.into()),
    };
    flow::proceed(req, state, &client, request, session, None, None).await
}

enum Found {
    Code(Box<DeviceRow>, String),
    Wrong,
    /// The address's limit is reached: seconds to wait.
    Locked(i64),
}

/// The pending authorization whose user code is `typed`, holding a slot of the address's
/// sign-in limit while it looks: given back for a right code, kept as a failure for a wrong
/// one (anything that is not a pending code, well-formed or not).
async fn find(
    state: &AppState,
    typed: &str,
    bucket: &str,
    address: &str,
) -> Result<Found, StorageError> {
    let now = state.clock.now();
    let limits = throttle::limits(&state.settings.login);
    let canonical = device::normalize(typed);
    let hash = canonical
        .as_deref()
        .map(|c| device::user_code_hash(&state.master.derive(device::USER_CODE_KEY), c));
    let (address_key, address) = (throttle::address_key(bucket), address.to_string());
    state
        .db
        .run(move |conn| {
            let reservation = match throttle::reserve(conn, None, address_key, now, limits)? {
                Ok(r) => r,
                Err(wait) => return Ok(Found::Locked(wait)),
            };
            let row = match &hash {
                Some(h) => device_codes::pending(conn, h, now)?,
                None => None,
            };
            match (row, canonical) {
                (Some(row), Some(canonical)) => {
                    throttle::succeeded(conn, &reservation)?;
                    Ok(Found::Code(Box::new(row), canonical))
                }
                _ => storage::atomically(conn, |conn| {
                    let locked = throttle::failed(conn, &reservation, now, limits)?;
                    audit::sign_in_failure(None, None, &address, "user_code", &locked)
                        .record_failure(conn, now)?;
                    Ok(Found::Wrong)
                }),
            }
        })
        .await
}

/// The user code to show on the consent page of a device request.
pub fn shown_code(state: &AppState, link: &DeviceLink) -> Option<String> {
    use base64::Engine;
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&link.user_code_sealed)
        .ok()?;
    let code = state.master.open(&sealed, SEALED_AAD).ok()?;
    String::from_utf8(code).ok()
}

/// The user allowed: the device authorization, if still pending, is approved with a grant of
/// this sign-in, which the device's next poll redeems.
pub async fn approve(
    state: &AppState,
    request: &AuthorizationRequest,
    link: &DeviceLink,
    session: &Session,
) -> HttpResponse {
    let now = state.clock.now();
    let grant = GrantRow {
        id: random::id_128(),
        user_id: session.user.id.clone(),
        client_id: request.client_id.clone(),
        scope: request.scope.clone(),
        sid: session.sid.clone(),
        nonce: None,
        auth_time: session.auth_time,
        amr: session.amr.join(" "),
        acr: flow::reported_acr(request, session.strength())
            .as_str()
            .to_string(),
        created_at: now,
        revoked_at: None,
        resource: None,
        // Kept while the device may still redeem it (at most the code's lifetime) and any
        // token of it may live; redemption moves it on.
        expires_at: now
            + state.settings.device.lifetime.as_secs() as i64
            + flow::grant_horizon(&state.settings),
    };
    let hash = link.user_code_hash.clone();
    match state
        .db
        .run(move |c| device_codes::approve(c, &hash, &grant, now))
        .await
    {
        Ok(true) => done(
            "Return to your device",
            "You allowed the device. Return to your device: it signs in within a few seconds.",
        ),
        Ok(false) => gone(),
        Err(e) => page(&e.into()),
    }
}

/// The user denied: the device gets `access_denied` at its next poll.
pub async fn deny(state: &AppState, link: &DeviceLink) -> HttpResponse {
    let (hash, now) = (link.user_code_hash.clone(), state.clock.now());
    match state
        .db
        .run(move |c| device_codes::deny(c, &hash, now))
        .await
    {
        Ok(true) => done(
            "Request denied",
            "You denied the device access. You can close this page; the device will not be signed in.",
        ),
        Ok(false) => gone(),
        Err(e) => page(&e.into()),
    }
}

/// An error at the end of a device request's sign-in: shown here, never sent anywhere; the
/// device authorization stays as it was (it expires unless the user tries again).
pub fn refused(e: &OAuthError) -> HttpResponse {
    page(e)
}

fn gone() -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "expired_token",
        "This device code has expired or was already used. Start again on your device.",
    )
}

fn done(title: &str, message: &str) -> HttpResponse {
    render(StatusCode::OK, &DonePage { title, message })
}
