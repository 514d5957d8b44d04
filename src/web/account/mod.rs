//! `/account`, the signed-in user's own page (DESIGN.md "Second factors and the account
//! page"). Sigil is its own first-party client here ([`SITE`], `sigil-account`; the sign-in,
//! session and guard are `web::first_party`'s, shared with the admin console).
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

pub use changes::{end_other_sessions, end_session, withdraw_consent};
pub use passkeys::{add as add_passkey, options as passkey_options, remove as remove_passkey};
pub use password::change_password;

use super::first_party::{address, audit, broken, event, failed};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;

use super::consent::describe_scope;
use super::first_party::{Account, Back, Site};
use crate::audit::EventType;
use crate::clock::rfc3339;
use crate::endpoints::pages::render_with_csp;
use crate::endpoints::paths;
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::{consents, sessions, StorageError};

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

/// The account page as a first-party site of Sigil's.
pub const SITE: Site = Site {
    client_id: "sigil-account",
    client_name: "Your account",
    minimum_acr: None,
    cookie: "sigil_account",
    login_cookie: "sigil_account_login",
    home: paths::ACCOUNT,
    callback: paths::ACCOUNT_CALLBACK,
    fresh: 300,
    key_label: b"sigil account session v1",
    name: "your account page",
    signed_in: EventType::AccountSignedIn,
    reauthentication_required: EventType::AccountReauthenticationRequired,
};

/// GET /account: the page, or a sign-in first.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let account = match SITE.current(&req, &state).await {
        Ok(Some(account)) => account,
        Ok(None) => return SITE.sign_in(&state, Back::Page, None),
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
    SITE.to_page(state, paths::ACCOUNT, done)
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
    let csrf = SITE.csrf_token(state, &account.cookie);
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

/// GET /account/callback: the authorization response for `sigil-account`.
pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    SITE.callback(&req, &state).await
}

/// [`Site::guard`] for the account page.
async fn guard(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(Params, Account), HttpResponse> {
    SITE.guard(req, state, body).await
}
