//! `/account`, the signed-in user's own page (DESIGN.md "Second factors and the account
//! page"). Sigil is its own first-party client here (`sigil-account`, public, PKCE S256,
//! `skip_consent`): the page signs in through the ordinary `/authorize` → login → code path and
//! redeems its code in-process through the token endpoint's own redemption
//! (`endpoints::token::redeem_code`), never over HTTP to itself. `session` holds the account
//! session design.
//!
//! Every change is a POST that passes [`guard`]: same origin, the account session's CSRF token,
//! and an authentication within the last 5 minutes (else 303 to `/authorize` with
//! `max_age=300`, and nothing is applied: the user makes the change again). Each answers 303 to
//! the page with a notice (`?done=`), or the page with the error in plain words; each is an
//! audit event (`crate::audit`: the user, the client address; never a secret).

mod changes;
pub mod factors;
mod passkeys;
mod password;
pub mod session;

pub use changes::{end_other_sessions, end_session, withdraw_consent};
pub use passkeys::{add as add_passkey, options as passkey_options, remove as remove_passkey};
pub use password::change_password;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use self::session::{Account, Back};
use super::client_address::{self, ClientAddress};
use super::consent::describe_scope;
use super::forms;
use crate::admin::clients as admin_clients;
use crate::audit::{Actor, Event, EventType};
use crate::clock::rfc3339;
use crate::config::Settings;
use crate::crypto::master_key::MasterKey;
use crate::endpoints::pages::{error_page, render_with_csp};
use crate::endpoints::{paths, token};
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::users::UserRow;
use crate::storage::{clients, consents, sessions, AnyConnection, StorageError};

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    username: &'a str,
    profile: Vec<(String, String)>,
    csrf_token: &'a str,
    notice: Option<&'static str>,
    error: Option<&'a str>,
    sessions: Vec<SessionView>,
    apps: Vec<AppView>,
    passkeys: passkeys::PasskeysView,
    totp: factors::TotpView,
    recovery_left: i64,
    /// Recovery codes just made: shown on this answer only.
    new_codes: Vec<String>,
}

/// What one answer shows beyond the stored state.
#[derive(Default)]
struct Extra {
    new_codes: Vec<String>,
}

struct SessionView {
    sid: String,
    user_agent: String,
    address: String,
    last_seen: String,
    signed_in: String,
    current: bool,
}

struct AppView {
    client_id: String,
    name: String,
    scopes: Vec<String>,
    granted: String,
}

/// Registers `sigil-account` (at start and at `sigil migrate`) unless it is registered as the
/// page needs it: redirect URI `<issuer>/account/callback` only, public with PKCE, scope
/// `openid`, no consent. A registration that differs (the issuer moved) is replaced. Returns
/// whether it registered.
pub fn ensure_client(
    conn: &mut AnyConnection,
    master: &MasterKey,
    settings: &Settings,
    now: i64,
) -> Result<bool, StorageError> {
    let redirect = settings.endpoint_url(paths::ACCOUNT_CALLBACK);
    let metadata = json!({
        "client_name": "Your account",
        "redirect_uris": [redirect],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid",
        "skip_consent": true,
    });
    if let Some(row) = clients::get(conn, session::CLIENT_ID)? {
        let m = admin_clients::metadata_of(&row)?;
        let as_needed = m.redirect_uris == [redirect.clone()]
            && m.skip_consent
            && !m.token_endpoint_auth_method.is_confidential()
            && m.scope == "openid";
        if as_needed {
            return Ok(false);
        }
        clients::remove(conn, session::CLIENT_ID)?;
    }
    match admin_clients::register(
        conn,
        master,
        metadata.to_string().as_bytes(),
        Some(session::CLIENT_ID.into()),
        now,
    ) {
        Ok(_) => Ok(true),
        // Another node registered it at the same moment.
        Err(admin_clients::ClientError::Storage(StorageError::Conflict(_))) => Ok(false),
        Err(admin_clients::ClientError::Storage(e)) => Err(e),
        Err(admin_clients::ClientError::Metadata(e)) => Err(StorageError::Corrupt(format!(
            "the account client's metadata: {e}"
        ))),
    }
}

/// GET /account: the page, or a sign-in first.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let account = match session::current(&req, &state).await {
        Ok(Some(account)) => account,
        Ok(None) => return session::sign_in(&state, Back::Page, None),
        Err(e) => return failed(e),
    };
    let notice = Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    )
    .ok()
    .and_then(|p| p.get("done").and_then(notice));
    page(&state, &account, StatusCode::OK, notice, None).await
}

/// The confirmation each change redirects with, by its `done` code (fixed texts: nothing from
/// the query is shown).
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "password" => {
            "Your password was changed. Every other session and app sign-in has ended; this \
             browser stays signed in."
        }
        "session" => "The session was ended.",
        "session-gone" => "That session had already ended.",
        "others" => "Every other session was ended.",
        "totp-started" => {
            "Scan the QR code with your authenticator app (or type the key), then enter the \
             code it shows to turn it on."
        }
        "totp-added" => {
            "Your authenticator app is on: signing in now asks for its code after your \
             password. Make recovery codes in case you lose it."
        }
        "totp-on" => "Your authenticator app is already on. Remove it first to set up another.",
        "totp-removed" => "Your authenticator app and your recovery codes were removed.",
        "consent" => {
            "Access withdrawn: the app's sign-ins were revoked, and it must ask again before \
             it can use your account."
        }
        "passkey-added" => "The passkey was added.",
        "passkey-removed" => "The passkey was removed.",
        "reauth" => {
            "You signed in again. Changes need a sign-in within the last 5 minutes, so \
             nothing was changed: make your change once more."
        }
        _ => return None,
    })
}

/// 303 back to the page, with the notice `done` if any.
fn to_page(state: &AppState, done: Option<&str>) -> HttpResponse {
    let mut url = url::Url::parse(&state.settings.endpoint_url(paths::ACCOUNT)).expect("issuer");
    if let Some(done) = done {
        url.query_pairs_mut().append_pair("done", done);
    }
    HttpResponse::SeeOther()
        .insert_header(("Location", url.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// The page for `account`, with a notice or an error.
async fn page(
    state: &AppState,
    account: &Account,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&str>,
) -> HttpResponse {
    page_with(state, account, status, notice, error, Extra::default()).await
}

async fn page_with(
    state: &AppState,
    account: &Account,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<&str>,
    extra: Extra,
) -> HttpResponse {
    let user = &account.session.user;
    let (user_id, now) = (user.id.clone(), state.clock.now());
    let idle = state.settings.sessions.idle_timeout.as_secs() as i64;
    let loaded = state
        .db
        .run(move |c| -> Result<_, StorageError> {
            let live = sessions::live_of_user(c, &user_id, now)?;
            Ok((live, consents::of_user(c, &user_id)?))
        })
        .await;
    let (mut live, given) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return failed(e),
    };
    live.retain(|s| s.last_seen_at + idle > now);
    live.sort_by_key(|s| std::cmp::Reverse(s.last_seen_at));
    let sessions = live
        .into_iter()
        .map(|s| SessionView {
            current: s.sid == account.session.sid,
            sid: s.sid,
            user_agent: if s.user_agent.is_empty() {
                "Unknown browser".into()
            } else {
                s.user_agent
            },
            address: s.client_address,
            last_seen: rfc3339(s.last_seen_at),
            signed_in: rfc3339(s.auth_time),
        })
        .collect();
    let mut apps = Vec::new();
    for c in given {
        let name = match state.client(&c.client_id).await {
            Ok(Some(client)) => client.display_name().to_string(),
            Ok(None) => continue,
            Err(e) => return failed(e),
        };
        apps.push(AppView {
            client_id: c.client_id,
            name,
            scopes: c
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(describe_scope)
                .collect(),
            granted: rfc3339(c.granted_at),
        });
    }
    let keys = match passkeys::view(state, &user.id).await {
        Ok(keys) => keys,
        Err(e) => return failed(e),
    };
    let (totp, recovery_left) = match factors::view(state, &user.id, &user.username).await {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let csrf = session::csrf_token(state, &account.cookie);
    let view = AccountPage {
        username: &user.username,
        profile: profile(user),
        csrf_token: &csrf,
        notice,
        error,
        sessions,
        apps,
        totp,
        recovery_left,
        new_codes: extra.new_codes,
        passkeys: keys,
    };
    let mut response = render_with_csp(status, &view, &passkeys::csp(state));
    // Recovery codes and a waiting TOTP secret are on this page: no cache keeps it.
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    response
}

/// The user's claims in words, read-only.
fn profile(user: &crate::storage::users::UserRow) -> Vec<(String, String)> {
    let mut out = vec![("Username".to_string(), user.username.clone())];
    if let Some(name) = &user.name {
        out.push(("Name".into(), name.clone()));
    }
    if let Some(email) = &user.email {
        let verified = if user.email_verified {
            " (verified)"
        } else {
            " (not verified)"
        };
        out.push(("Email".into(), format!("{email}{verified}")));
    }
    if let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(&user.claims) {
        for (k, v) in claims {
            out.push((claim_label(&k), claim_text(&v)));
        }
    }
    out
}

fn claim_label(name: &str) -> String {
    match name {
        "given_name" => "Given name".into(),
        "family_name" => "Family name".into(),
        "middle_name" => "Middle name".into(),
        "nickname" => "Nickname".into(),
        "preferred_username" => "Preferred username".into(),
        "profile" => "Profile page".into(),
        "picture" => "Picture".into(),
        "website" => "Website".into(),
        "gender" => "Gender".into(),
        "birthdate" => "Birth date".into(),
        "zoneinfo" => "Time zone".into(),
        "locale" => "Locale".into(),
        "phone_number" => "Phone number".into(),
        "phone_number_verified" => "Phone number verified".into(),
        "address" => "Address".into(),
        other => other.replace('_', " "),
    }
}

fn claim_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        // OIDC Core §5.1.1: the address's parts, formatted first when given.
        Value::Object(parts) => match parts.get("formatted").and_then(Value::as_str) {
            Some(formatted) => formatted.to_string(),
            None => parts
                .values()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        },
        other => other.to_string(),
    }
}

/// GET /account/callback: the authorization response for `sigil-account`. `state` must be the
/// one this browser's pending sign-in holds; the code is redeemed in-process with its PKCE
/// verifier; the account session is bound to the grant's IdP session.
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Ok(params) = Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    ) else {
        return refused("This sign-in answer is malformed.");
    };
    let Some(pending) = session::pending(&req, &state) else {
        return refused("This sign-in to your account has expired. Open your account page again.");
    };
    // RFC 6749 §10.12: the answer must be to the request this browser made.
    let same = params
        .get("state")
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
    if !same {
        return refused(
            "This sign-in answer is not for this browser. Open your account page again.",
        );
    }
    // RFC 9207: from this issuer.
    if params
        .get("iss")
        .is_some_and(|iss| iss != state.settings.issuer_str())
    {
        return refused("This sign-in answer is not from this server.");
    }
    if let Some(error) = params.get("error") {
        tracing::info!(error, "the account page's sign-in ended with an error");
        return refused(
            "Signing in to your account did not complete. Open your account page again.",
        );
    }
    let Some(code) = params.get("code") else {
        return refused("This sign-in answer has no code.");
    };
    let client = match state.client(session::CLIENT_ID).await {
        Ok(Some(client)) => client,
        Ok(None) => return broken("the account client is not registered"),
        Err(e) => return failed(e),
    };
    let redeemed = token::redeem_code(
        &state,
        &client,
        code.to_string(),
        session::redirect_uri(&state),
        Some(pending.verifier.clone()),
        None,
    )
    .await;
    let grant = match redeemed {
        Ok(r) => r.grant,
        Err(e) => {
            tracing::info!(error = %e.code.as_str(), "the account page's code was refused");
            return refused(
                "Signing in to your account did not complete. Open your account page again.",
            );
        }
    };
    let idp = match super::session::by_sid(&state, &grant.user_id, &grant.sid).await {
        Ok(Some(idp)) => idp,
        Ok(None) => return session::sign_in(&state, pending.back, None),
        Err(e) => return failed(e),
    };
    let claims = session::claims_for(&state, &idp, grant.auth_time, &grant.acr);
    audit(
        &state,
        event(&req, &state, &idp.user, EventType::AccountSignedIn),
    )
    .await;
    let mut response = to_page(&state, (pending.back == Back::Reauth).then_some("reauth"));
    for cookie in [
        session::cookie(&state, &claims),
        session::forget_pending(&state),
    ] {
        if let Err(e) = response.add_cookie(&cookie) {
            return broken(e);
        }
    }
    response
}

/// Every change's checks, in order: the form parses, same origin, a live account session (else
/// sign in again), its CSRF token, and a fresh authentication (else `max_age=300`). Any failure
/// is the answer, and nothing was changed.
async fn guard(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(Params, Account), HttpResponse> {
    let params =
        Params::parse(body, state.settings.http.max_param_bytes).map_err(|_| forbidden())?;
    if !forms::same_origin(req, state) {
        return Err(forbidden());
    }
    let account = match session::current(req, state).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(session::sign_in(state, Back::Reauth, None)),
        Err(e) => return Err(failed(e)),
    };
    if !session::csrf_matches(state, &account, params.get("csrf_token")) {
        return Err(forbidden());
    }
    if !account.is_fresh(state.clock.now()) {
        let kind = EventType::AccountReauthenticationRequired;
        audit(state, event(req, state, &account.session.user, kind)).await;
        return Err(session::sign_in(state, Back::Reauth, Some(session::FRESH)));
    }
    Ok((params, account))
}

/// The client address of `req` (after trusted proxies).
fn address(req: &HttpRequest, state: &AppState) -> ClientAddress {
    client_address::of(req, &state.settings.http.trusted_proxies)
}

/// The audit event of an account-page change by the signed-in `user`, from `req`'s client
/// address; the target is the user's own name.
fn event(req: &HttpRequest, state: &AppState, user: &UserRow, kind: EventType) -> Event {
    Event::new(kind, Actor::user(user))
        .target(user.username.as_str())
        .from(address(req, state))
}

/// Stores `event` on its own, after a change that has no transaction of its own to join (a
/// storage failure is logged: the change itself stands).
async fn audit(state: &AppState, event: Event) {
    let now = state.clock.now();
    let stored = state
        .db
        .run(move |c| -> Result<(), StorageError> { event.record(c, now) })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "an account-page audit event could not be stored");
    }
}

fn forbidden() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "access_denied",
        "This form was not sent from your account page. Nothing was changed.",
    )
}

fn refused(message: &str) -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// A database that cannot be used for now gets the 503 page; any other failure is Sigil's.
fn failed(e: StorageError) -> HttpResponse {
    if e.is_unavailable() {
        return crate::endpoints::pages::unavailable_page();
    }
    broken(e)
}

fn broken(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "the account page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "Your account page could not be shown. Try again.",
    )
}
