//! Passkeys on the account page ("Second factors"): the list (name, added, last used, hardware
//! or synced), removal (a form through `super::guard`), and adding one with the page's "Add a
//! passkey" button (`static/passkey.js`, `navigator.credentials.create`): `POST
//! /account/passkeys/options` and `POST /account/passkeys` take and answer JSON under the same
//! rules as every change (same origin, the account CSRF token in the body, an authentication
//! within 5 minutes, else 401 `{"error": "reauthenticate", "location"}`). Each addition and
//! removal is an audit line.

use actix_web::http::header::LOCATION;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::SITE;
use super::{address, failed, guard, page, to_page};
use crate::audit::EventType;
use crate::clock::rfc3339;
use crate::endpoints::pages::{csp_with_form_target, CSP};
use crate::state::AppState;
use crate::storage::users::UserRow;
use crate::storage::StorageError;
use crate::web::first_party::{Account, Back};
use crate::web::forms;
use crate::web::passkeys::{self, PasskeyError};

/// One passkey as the page lists it.
pub struct PasskeyView {
    pub credential_id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
    /// "Hardware key" (bound to one device) or "Synced passkey".
    pub kind: &'static str,
}

/// What the page shows of the user's passkeys.
#[derive(Default)]
pub struct PasskeysView {
    /// Passkeys are on (the issuer's host is a domain name): the "Add a passkey" button.
    pub on: bool,
    pub list: Vec<PasskeyView>,
}

/// The user's passkeys for the page.
pub async fn view(state: &AppState, user_id: &str) -> Result<PasskeysView, StorageError> {
    let list = passkeys::list(state, user_id)
        .await?
        .into_iter()
        .map(|p| PasskeyView {
            credential_id: p.credential_id,
            name: p.name,
            created: rfc3339(p.created_at),
            last_used: p.last_used_at.map_or_else(|| "never".into(), rfc3339),
            kind: if p.backup_eligible {
                "Synced passkey"
            } else {
                "Hardware key"
            },
        })
        .collect();
    Ok(PasskeysView {
        on: state.webauthn.is_some(),
        list,
    })
}

/// The page's policy: with passkeys on, its script and its requests (Sigil's own only).
pub fn csp(state: &AppState) -> String {
    if state.webauthn.is_some() {
        format!(
            "{}; script-src 'self'; connect-src 'self'",
            csp_with_form_target(state.settings.issuer_str())
        )
    } else {
        CSP.to_string()
    }
}

/// A passkey change's audit event: the passkey's name (or credential id), never key material.
async fn audit(req: &HttpRequest, state: &AppState, user: &UserRow, kind: EventType, name: &str) {
    let e =
        super::event(req, state, user, kind).details(json!({ "passkey": name, "via": "account" }));
    super::audit(state, e).await;
}

fn answer(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

fn error(status: StatusCode, code: &str) -> HttpResponse {
    answer(status, json!({ "error": code }))
}

fn storage_error(e: StorageError) -> HttpResponse {
    if e.is_unavailable() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    }
    tracing::error!(error = %e, "the account page's passkeys failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
}

/// 401 `{"error": "reauthenticate", "location"}`: where the page's script sends the browser to
/// sign in again (the redirect `session::sign_in` answers, with its cookie).
fn reauthenticate(state: &AppState, max_age: Option<i64>) -> HttpResponse {
    let redirect = SITE.sign_in(state, Back::Reauth, max_age);
    let location = redirect
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut response = answer(
        StatusCode::UNAUTHORIZED,
        json!({ "error": "reauthenticate", "location": location }),
    );
    for cookie in redirect.cookies() {
        let _ = response.add_cookie(&cookie.into_owned());
    }
    response
}

/// [`guard`]'s checks for a JSON body: it parses, same origin, a live account session, its CSRF
/// token (`csrf_token`), a fresh authentication.
async fn json_guard<T: for<'de> Deserialize<'de>>(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
    token: impl Fn(&T) -> Option<&str>,
) -> Result<(T, Account), HttpResponse> {
    let body: T = serde_json::from_slice(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "invalid_request"))?;
    if !forms::same_origin(req, state) {
        return Err(error(StatusCode::FORBIDDEN, "forbidden"));
    }
    let account = match SITE.current(req, state).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(reauthenticate(state, None)),
        Err(e) => return Err(storage_error(e)),
    };
    if !SITE.csrf_matches(state, &account, token(&body)) {
        return Err(error(StatusCode::FORBIDDEN, "forbidden"));
    }
    if !account.is_fresh(&SITE, state.clock.now()) {
        let kind = SITE.reauthentication_required;
        super::audit(state, super::event(req, state, &account.session.user, kind)).await;
        return Err(reauthenticate(state, Some(SITE.fresh)));
    }
    Ok((body, account))
}

#[derive(Deserialize)]
struct OptionsBody {
    csrf_token: Option<String>,
}

#[derive(Deserialize)]
struct FinishBody {
    csrf_token: Option<String>,
    ceremony: String,
    #[serde(default)]
    name: String,
    credential: Value,
}

/// POST /account/passkeys/options: `{"csrf_token"}` → `{"ceremony", "options"}` for
/// `navigator.credentials.create()`.
pub async fn options(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (_, account) =
        match json_guard::<OptionsBody>(&req, &state, &body, |b| b.csrf_token.as_deref()).await {
            Ok(checked) => checked,
            Err(response) => return response,
        };
    let at = address(&req, &state);
    match passkeys::start_registration(&state, &account.session.user, &at).await {
        Ok((ceremony, options)) => answer(
            StatusCode::OK,
            json!({ "ceremony": ceremony, "options": options }),
        ),
        Err(PasskeyError::Unavailable) => error(StatusCode::NOT_FOUND, "passkeys_unavailable"),
        Err(PasskeyError::Storage(e)) => storage_error(e),
        Err(e) => {
            tracing::error!(error = %e, "could not start a passkey enrolment");
            error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
    }
}

/// POST /account/passkeys: `{"csrf_token", "ceremony", "name", "credential"}` → 200
/// `{"location"}` (the page, with its notice), or 400 `{"error"}`.
pub async fn add(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let (body, account) =
        match json_guard::<FinishBody>(&req, &state, &body, |b| b.csrf_token.as_deref()).await {
            Ok(checked) => checked,
            Err(response) => return response,
        };
    let user = &account.session.user;
    let added =
        passkeys::finish_registration(&state, user, &body.ceremony, &body.name, &body.credential)
            .await;
    match added {
        Ok(row) => {
            audit(&req, &state, user, EventType::FactorPasskeyAdded, &row.name).await;
            let location = to_page(&state, Some("passkey-added"))
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            answer(StatusCode::OK, json!({ "location": location }))
        }
        Err(PasskeyError::InvalidName) => error(StatusCode::BAD_REQUEST, "invalid_name"),
        Err(PasskeyError::TooMany) => error(StatusCode::BAD_REQUEST, "too_many_passkeys"),
        Err(PasskeyError::AlreadyRegistered) => {
            error(StatusCode::BAD_REQUEST, "already_registered")
        }
        Err(PasskeyError::Unavailable) => error(StatusCode::NOT_FOUND, "passkeys_unavailable"),
        Err(PasskeyError::Storage(e)) => storage_error(e),
        Err(e) => {
            tracing::info!(reason = %e, "a passkey enrolment was refused");
            error(StatusCode::BAD_REQUEST, "passkey_refused")
        }
    }
}

/// POST /account/passkeys/remove, field `credential_id`: removes one of the user's passkeys.
pub async fn remove(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, account) = match guard(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let credential_id = params.get("credential_id").unwrap_or("").to_string();
    let user_id = account.session.user.id.clone();
    match passkeys::remove(&state, &user_id, &credential_id).await {
        Ok(true) => {
            let kind = EventType::FactorPasskeyRemoved;
            audit(&req, &state, &account.session.user, kind, &credential_id).await;
            to_page(&state, Some("passkey-removed"))
        }
        Ok(false) => {
            page(
                &state,
                &account,
                StatusCode::BAD_REQUEST,
                None,
                Some("You have no such passkey."),
            )
            .await
        }
        Err(e) => failed(e),
    }
}
