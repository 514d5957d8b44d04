//! A passkey as the second step of a sign-in (`/login/factor`'s "Use a passkey" button,
//! `static/passkey.js`): `POST /login/factor/passkey/options` starts an authentication for the
//! pending user's own passkeys, `POST /login/factor/passkey` finishes it. Checked like the
//! page's form (same origin, the CSRF token, the parked request this browser's, its second
//! step pending and live); the throttle slots are taken as for a code (the account's or the
//! trusted device's key, and the address's) before verifying, and a refusal counts as a failed
//! sign-in. It ends as the code does: `login::complete` (amr `pwd hwk|swk user mfa`, acr
//! `phr`), or for a step-up the browser's session made stronger.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::sign_in::{
    answer, ceremony_answer, checked, error, not_passed, storage_error, too_many, Failing,
    FinishBody, OptionsBody,
};
use super::{finish_authentication, start_authentication, PasskeyError};
use crate::audit;
use crate::metrics::SignIn;
use crate::state::AppState;
use crate::storage::{auth_requests, users};
use crate::web::flow::{self, Parked, Pending};
use crate::web::login::{self, Completion};
use crate::web::second_factor::live;
use crate::web::session::{self, Session};
use crate::web::{client_address, cookies, strength, throttle};

/// The parked request's live second step, and for a step-up the browser's session (which must
/// still be the pending user's); else the answer (start again at the login page).
async fn pending_step(
    req: &HttpRequest,
    state: &AppState,
    parked: &Parked,
) -> Result<(Pending, Option<Session>), HttpResponse> {
    let restart = || {
        answer(
            StatusCode::BAD_REQUEST,
            json!({
                "error": "restart",
                "location": state.settings.endpoint_url(&format!(
                    "{}?request={}",
                    crate::endpoints::paths::LOGIN,
                    parked.id
                )),
            }),
        )
    };
    let Some(pending) = live(parked, state.clock.now()).cloned() else {
        return Err(restart());
    };
    if !pending.amr.is_empty() {
        return Ok((pending, None));
    }
    match session::current(req, state).await {
        Ok(Some(s)) if s.user.id == pending.user_id => Ok((pending, Some(s))),
        Ok(_) => Err(restart()),
        Err(e) => Err(storage_error(&e)),
    }
}

/// POST /login/factor/passkey/options: `{"request", "csrf_token"}` → `{"ceremony", "options"}`
/// for one of the pending user's passkeys.
pub async fn options(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let parked = match checked::<OptionsBody>(&req, &state, &body, |b| {
        (b.csrf_token.as_deref(), &b.request)
    })
    .await
    {
        Ok((_, parked)) => parked,
        Err(response) => return response,
    };
    let (pending, _) = match pending_step(&req, &state, &parked).await {
        Ok(step) => step,
        Err(response) => return response,
    };
    let user_id = pending.user_id.clone();
    let user = match state.db.run(move |c| users::by_id(c, &user_id)).await {
        Ok(Some(user)) if !user.disabled => user,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "restart"),
        Err(e) => return storage_error(&e),
    };
    let address = client_address::of(&req, &state.settings.http.trusted_proxies);
    ceremony_answer(
        start_authentication(&state, Some(&user), &address).await,
        "second step",
    )
}

/// POST /login/factor/passkey: `{"request", "csrf_token", "ceremony", "credential"}` → 200
/// `{"location"}` (with the session and device cookies after a password), or 401 `{"error"}`.
/// Refusals wait `login.refusal_delay`.
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
    let (pending, current) = match pending_step(req, state, &parked).await {
        Ok(step) => step,
        Err(response) => return response,
    };
    let address = client_address::of(req, &state.settings.http.trusted_proxies);
    let limits = throttle::limits(&state.settings.login);
    let now = state.clock.now();
    let device_hash = cookies::read(req, &state.settings, cookies::DEVICE)
        .as_deref()
        .map(session::hash_id);
    // The slots first, as for a code: N concurrent answers verify at most what they allow.
    let (user_id, hash) = (pending.user_id.clone(), device_hash.clone());
    let address_key = throttle::address_key(&address.throttle_bucket());
    let reserved = state
        .db
        .run(move |conn| {
            let Some(user) = users::by_id(conn, &user_id)?.filter(|u| !u.disabled) else {
                return Ok(None);
            };
            let own_key = throttle::own_key_of(conn, &user, hash.as_deref(), now)?;
            throttle::reserve(conn, Some(own_key), address_key, now, limits).map(Some)
        })
        .await;
    let reservation = match reserved {
        Ok(Some(Ok(reservation))) => reservation,
        Ok(Some(Err(wait))) => return too_many(state, wait),
        Ok(None) => return error(StatusCode::BAD_REQUEST, "restart"),
        Err(e) => return storage_error(&e),
    };
    let verified = finish_authentication(state, &body.ceremony, &body.credential)
        .await
        // Only the pending user's own passkey is this user's second step.
        .and_then(|used| {
            if used.user.id == pending.user_id {
                Ok(used)
            } else {
                Err(PasskeyError::UnknownCredential)
            }
        });
    let used = match verified {
        Ok(used) => used,
        Err(e) => {
            let who = Failing {
                user_id: Some(pending.user_id.clone()),
                address: address.to_string(),
            };
            return not_passed(state, e, reservation, now, "second step", who).await;
        }
    };
    let origin = session::Origin::of(req, address.to_string());
    let previous = cookies::read(req, &state.settings, cookies::SESSION);
    let lifetime = state.settings.sessions.lifetime.as_secs() as i64;
    let parked_hash = flow::hash(&parked.id);
    let done = state
        .db
        .run(move |conn| {
            // A step-up adds the passkey to the session's own methods; after a password, the
            // password's.
            let given = current.as_ref().map_or(&pending.amr, |s| &s.amr);
            let mut methods: Vec<&str> = given.iter().map(String::as_str).collect();
            methods.push(used.method);
            if used.user_verified {
                methods.push(strength::USER);
            }
            let amr = strength::amr(&methods);
            if let Some(mut session) = current {
                throttle::succeeded(conn, &reservation)?;
                session::strengthen(conn, &mut session, amr, now)?;
                auth_requests::finish_second_step(conn, &parked_hash, &session.sid)?;
                audit::Event::new(
                    audit::EventType::SigninSteppedUp,
                    audit::Actor::user(&used.user),
                )
                .target(used.user.username.as_str())
                .from(&origin.client_address)
                .details(serde_json::json!({ "method": used.method, "acr": session.acr }))
                .record(conn, now)?;
                return Ok(None);
            }
            let completion = Completion {
                reservation: &reservation,
                user: used.user,
                device_hash: device_hash.as_deref(),
                previous: previous.as_deref(),
                amr,
                origin: &origin,
                parked_hash: &parked_hash,
            };
            login::complete(conn, completion, now, lifetime).map(Some)
        })
        .await;
    let signed_in = match done {
        Ok(signed_in) => signed_in,
        Err(e) => return storage_error(&e),
    };
    if signed_in.is_some() {
        state.metrics.events.sign_in(SignIn::Ok);
    }
    let mut response = HttpResponse::Ok();
    response.insert_header(("Cache-Control", "no-store"));
    for cookie in signed_in
        .into_iter()
        .flat_map(|s| login::signed_in_cookies(state, s))
    {
        response.cookie(cookie);
    }
    response.json(json!({ "location": login::resume_url(state, &parked.id) }))
}
