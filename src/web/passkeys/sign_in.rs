//! Passwordless sign-in from the login page (its "Sign in with a passkey" button,
//! `static/passkey.js`): `POST /login/passkey/options` starts a discoverable authentication,
//! `POST /login/passkey` finishes it and signs the browser in as the password form does. Both
//! take and answer JSON; both are checked like the page's forms (same origin, the CSRF token
//! equal to the CSRF cookie, the parked request this browser's). A refused passkey counts as a
//! failed sign-in on the client address's throttle key, whose slot is taken before verifying.

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{finish_authentication, start_authentication, PasskeyError};
use crate::audit;
use crate::metrics::SignIn;
use crate::state::AppState;
use crate::storage::{users, StorageError};
use crate::web::flow::{self, Parked};
use crate::web::forms::{self, Refusal};
use crate::web::login::{self, Completion};
use crate::web::{client_address, cookies, session, strength, throttle};

/// The one message for every refused passkey (SECURITY.md 19: no cause is told).
pub const REFUSED: &str = "passkey_refused";

#[derive(Deserialize)]
pub(super) struct OptionsBody {
    pub(super) request: String,
    pub(super) csrf_token: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct FinishBody {
    pub(super) request: String,
    pub(super) csrf_token: Option<String>,
    pub(super) ceremony: String,
    pub(super) credential: Value,
}

pub(super) fn answer(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

pub(super) fn error(status: StatusCode, code: &str) -> HttpResponse {
    answer(status, json!({ "error": code }))
}

pub(super) fn storage_error(e: &StorageError) -> HttpResponse {
    if e.is_unavailable() {
        let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
        response.headers_mut().insert(
            RETRY_AFTER,
            HeaderValue::from(crate::oauth::error::RETRY_AFTER_SECS),
        );
        response
    } else {
        tracing::error!(error = %e, "passkey sign-in");
        error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
    }
}

/// The answer to a started ceremony: its id and the options for the browser. `what` names it
/// in the log when it could not start.
pub(super) fn ceremony_answer(
    started: Result<(String, Value), PasskeyError>,
    what: &str,
) -> HttpResponse {
    match started {
        Ok((ceremony, options)) => answer(
            StatusCode::OK,
            json!({ "ceremony": ceremony, "options": options }),
        ),
        Err(PasskeyError::Unavailable) => error(StatusCode::NOT_FOUND, "passkeys_unavailable"),
        Err(PasskeyError::NoPasskey) => error(StatusCode::BAD_REQUEST, "no_passkey"),
        Err(PasskeyError::Storage(e)) => storage_error(&e),
        Err(e) => {
            tracing::error!(error = %e, "could not start a passkey {what}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
    }
}

/// 429 with `Retry-After`: a throttle key is full or locked.
pub(super) fn too_many(state: &AppState, wait: i64) -> HttpResponse {
    state.metrics.events.sign_in(SignIn::Locked);
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(wait.max(1)));
    response
}

/// Who a refused passkey was for, for its audit event: the pending user of a second step (none
/// for a passwordless sign-in, where no account is known), and the client address.
pub(super) struct Failing {
    pub user_id: Option<String>,
    pub address: String,
}

/// A passkey that did not pass, with the slots `reservation` holds: a refusal counts as a
/// failed sign-in (401, and an audit event); a check that could not run (storage, passkeys
/// off) gives the slots back.
pub(super) async fn not_passed(
    state: &AppState,
    e: PasskeyError,
    reservation: throttle::Reservation,
    now: i64,
    what: &str,
    who: Failing,
) -> HttpResponse {
    let limits = throttle::limits(&state.settings.login);
    let gave_up = match e {
        PasskeyError::Storage(e) => storage_error(&e),
        PasskeyError::Unavailable => error(StatusCode::NOT_FOUND, "passkeys_unavailable"),
        other => {
            tracing::info!(reason = %other, "passkey {what} refused");
            let who_was_known = who.user_id.is_some();
            let failed = state
                .db
                .run(move |conn| {
                    let locked = throttle::failed(conn, &reservation, now, limits)?;
                    let user = match &who.user_id {
                        Some(id) => users::by_id(conn, id)?,
                        None => None,
                    };
                    audit::sign_in_failure(user.as_ref(), None, &who.address, "passkey", &locked)
                        .record_failure(conn, now)?;
                    Ok::<_, StorageError>(locked)
                })
                .await;
            // A passwordless sign-in knows no user; a second step knows whose it is.
            let counted = match who_was_known {
                true => SignIn::SecondFactorFailed,
                false => SignIn::PasskeyFailed,
            };
            return match failed {
                Ok(locked) => {
                    state.metrics.events.sign_in(counted);
                    state.metrics.events.lockouts(locked.len());
                    for key in locked {
                        tracing::info!(%key, "sign-ins locked out after repeated failures");
                    }
                    error(StatusCode::UNAUTHORIZED, REFUSED)
                }
                Err(e) => storage_error(&e),
            };
        }
    };
    let _ = state
        .db
        .run(move |conn| throttle::withdrawn(conn, &reservation))
        .await;
    gave_up
}

/// The body as JSON (bounded by `http.max_body_bytes` before it gets here), then the checks
/// every form of the login page passes.
pub(super) async fn checked<T: for<'de> Deserialize<'de>>(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
    fields: impl Fn(&T) -> (Option<&str>, &str),
) -> Result<(T, Parked), HttpResponse> {
    let body: T = serde_json::from_slice(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "invalid_request"))?;
    let (token, request) = fields(&body);
    match forms::origin_token_and_request(req, state, token, request).await {
        Ok(parked) => Ok((body, parked)),
        Err(Refusal::Forbidden) => Err(error(StatusCode::FORBIDDEN, "forbidden")),
        Err(Refusal::Expired) => Err(error(StatusCode::BAD_REQUEST, "expired_request")),
        Err(Refusal::Storage(e)) => Err(storage_error(&e)),
    }
}

/// POST /login/passkey/options: `{"request", "csrf_token"}` → `{"ceremony", "options"}`.
pub async fn options(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(response) = checked::<OptionsBody>(&req, &state, &body, |b| {
        (b.csrf_token.as_deref(), &b.request)
    })
    .await
    {
        return response;
    }
    let address = client_address::of(&req, &state.settings.http.trusted_proxies);
    ceremony_answer(
        start_authentication(&state, None, &address).await,
        "authentication",
    )
}

/// POST /login/passkey: `{"request", "csrf_token", "ceremony", "credential"}` → 200
/// `{"location"}` with the session and device cookies, or 401 `{"error"}`. Refusals wait
/// `login.refusal_delay`, like the password form's.
pub async fn finish(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    // Boxed: freed when done, not kept through the wait (see `login::held_unless`); every
    // answer but a success waits, like the password form's refusals.
    let response = Box::pin(finish_answer(&req, &body, &state)).await;
    login::held_unless(&state, body, response, |s| s.is_success()).await
}

async fn finish_answer(req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    let (body, parked) =
        match checked::<FinishBody>(req, state, body, |b| (b.csrf_token.as_deref(), &b.request))
            .await
        {
            Ok(checked) => checked,
            Err(response) => return response,
        };
    let address = client_address::of(req, &state.settings.http.trusted_proxies);
    let limits = throttle::limits(&state.settings.login);
    let now = state.clock.now();
    // The address's slot first: N concurrent answers verify at most `login.max_failures`.
    let address_key = throttle::address_key(&address.throttle_bucket());
    let reserved = state
        .db
        .run(move |conn| throttle::reserve(conn, None, address_key, now, limits))
        .await;
    let reservation = match reserved {
        Ok(Ok(reservation)) => reservation,
        Ok(Err(wait)) => return too_many(state, wait),
        Err(e) => return storage_error(&e),
    };
    let used = match finish_authentication(state, &body.ceremony, &body.credential).await {
        Ok(used) => used,
        Err(e) => {
            let who = Failing {
                user_id: None,
                address: address.to_string(),
            };
            return not_passed(state, e, reservation, now, "sign-in", who).await;
        }
    };
    let origin = session::Origin::of(req, address.to_string());
    let previous = cookies::read(req, &state.settings, cookies::SESSION);
    let device = cookies::read(req, &state.settings, cookies::DEVICE);
    let lifetime = state.settings.sessions.lifetime.as_secs() as i64;
    let parked_hash = flow::hash(&parked.id);
    let signed_in = state
        .db
        .run(move |conn| {
            // The passkey's kind, and `user` for its user verification: acr `phr`.
            let mut methods = vec![used.method];
            if used.user_verified {
                methods.push(strength::USER);
            }
            let device_hash = device.as_deref().map(session::hash_id);
            let completion = Completion {
                reservation: &reservation,
                user: used.user,
                device_hash: device_hash.as_deref(),
                previous: previous.as_deref(),
                amr: strength::amr(&methods),
                origin: &origin,
                parked_hash: &parked_hash,
            };
            login::complete(conn, completion, now, lifetime)
        })
        .await;
    let signed_in = match signed_in {
        Ok(signed_in) => signed_in,
        Err(e) => return storage_error(&e),
    };
    state.metrics.events.sign_in(SignIn::Ok);
    let mut response = HttpResponse::Ok();
    response.insert_header(("Cache-Control", "no-store"));
    for cookie in login::signed_in_cookies(state, signed_in) {
        response.cookie(cookie);
    }
    response.json(json!({ "location": login::resume_url(state, &parked.id) }))
}
