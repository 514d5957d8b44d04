//! `/admin/`, the admin console (DESIGN.md "Admin console and audit"): server-rendered pages
//! for users with the admin flag. Sigil is its own first-party client here ([`SITE`],
//! `sigil-admin`, registered with `minimum_acr` `mfa`): the console signs in through
//! `/authorize` like `/account` does (`web::first_party`), so an admin without a second factor
//! is led to enrol one by the ordinary flow, and every page needs a session at `mfa` or above.
//!
//! The console holds no management logic of its own: every change calls the operation the CLI
//! and the admin API call (`crate::admin`, `crypto::rotation`), in one transaction with its
//! audit event, whose actor is the signed-in admin and whose address is the browser's.
//!
//! Every change is a POST through [`change`]: same origin, the session's CSRF token, the admin
//! flag, and an authentication within the last 15 minutes (else a fresh sign-in, and nothing
//! applied). Each answers 303 to its page with a notice (`?done=`), or the page again with
//! the error in plain words (400/404/409). A secret made by a change (a client secret) is shown
//! on that one answer (200, `no-store`) and never again.

mod audit_log;
mod clients;
mod groups;
mod keys;
mod overview;
mod resources;
mod sessions;
mod users;
use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::first_party::{self, failed, Account, Back, Site};
use super::strength::Acr;
use crate::audit::{Actor, By, Event, EventType};
use crate::endpoints::pages::render;
use crate::endpoints::paths;
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::StorageError;

/// The admin console as a first-party site of Sigil's.
pub const SITE: Site = Site {
    client_id: "sigil-admin",
    client_name: "Sigil admin console",
    minimum_acr: Some(Acr::Mfa),
    cookie: "sigil_admin",
    login_cookie: "sigil_admin_login",
    home: paths::ADMIN,
    callback: paths::ADMIN_CALLBACK,
    fresh: 900,
    key_label: b"sigil admin console session v1",
    name: "the admin console",
    signed_in: EventType::ConsoleSignedIn,
    reauthentication_required: EventType::ConsoleReauthenticationRequired,
};

/// The console's routes, under `/admin/` (the admin API's scope `/admin/api` is mounted first).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(paths::ADMIN, web::get().to(overview::show))
        .route("/admin", web::get().to(to_home))
        .route(paths::ADMIN_CALLBACK, web::get().to(callback))
        .route("/admin/users", web::get().to(users::list))
        .route("/admin/users", web::post().to(users::create))
        .route("/admin/users/view", web::get().to(users::show))
        .route("/admin/users/{action}", web::post().to(users::act))
        .route("/admin/groups", web::get().to(groups::list))
        .route("/admin/groups", web::post().to(groups::create))
        .route("/admin/groups/view", web::get().to(groups::show))
        .route("/admin/groups/{action}", web::post().to(groups::act))
        .route("/admin/sessions", web::get().to(sessions::show))
        .route("/admin/sessions/end", web::post().to(sessions::end))
        .route("/admin/clients", web::get().to(clients::list))
        .route("/admin/clients", web::post().to(clients::create))
        .route("/admin/clients/view", web::get().to(clients::show))
        .route("/admin/clients/{action}", web::post().to(clients::act))
        .route("/admin/resources", web::get().to(resources::list))
        .route("/admin/resources", web::post().to(resources::create))
        .route("/admin/resources/remove", web::post().to(resources::remove))
        .route("/admin/resources/update", web::post().to(resources::update))
        .route("/admin/keys", web::get().to(keys::show))
        .route("/admin/keys/rotate", web::post().to(keys::rotate))
        .route("/admin/keys/retire", web::post().to(keys::retire))
        .route("/admin/audit", web::get().to(audit_log::show));
}

async fn to_home(state: web::Data<AppState>) -> HttpResponse {
    SITE.to_page(&state, paths::ADMIN, None)
}

/// GET /admin/callback: the authorization response for `sigil-admin`.
async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    SITE.callback(&req, &state).await
}

/// The signed-in administrator of a request that may see the console.
pub struct Admin {
    pub account: Account,
    /// Who the audit events of this admin's changes name, and from where.
    pub by: By,
    pub csrf_token: String,
}

impl Admin {
    pub fn username(&self) -> &str {
        &self.account.session.user.username
    }

    /// The audit event of a change by this admin, on `target`.
    pub fn event(&self, kind: EventType, target: &str) -> Event {
        self.by.event(kind).target(target)
    }

    /// The frame of a page of the console's `section`, with the notice of `done`.
    pub fn chrome(&self, section: &'static str, req: &HttpRequest, state: &AppState) -> Chrome {
        let done = query(req, state).and_then(|q| q.get("done").and_then(notice));
        Chrome {
            username: self.username().to_string(),
            csrf_token: self.csrf_token.clone(),
            section,
            notice: done,
            error: None,
        }
    }
}

/// What every console page shows around its content: the nav (with the current section), who
/// is signed in, the CSRF token for its forms, and a notice or an error.
pub struct Chrome {
    pub username: String,
    pub csrf_token: String,
    pub section: &'static str,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
}

impl Chrome {
    /// The same frame, showing `error` instead of a notice.
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.notice = None;
        self.error = Some(error.into());
        self
    }

    /// The nav's entries, the current section marked.
    pub fn nav(&self) -> Vec<NavItem> {
        [
            (paths::ADMIN, "Overview", "overview"),
            ("/admin/users", "Users", "users"),
            ("/admin/groups", "Groups", "groups"),
            ("/admin/sessions", "Sessions", "sessions"),
            ("/admin/clients", "Clients", "clients"),
            ("/admin/resources", "Resource servers", "resources"),
            ("/admin/keys", "Signing keys", "keys"),
            ("/admin/audit", "Audit log", "audit"),
        ]
        .into_iter()
        .map(|(path, label, section)| NavItem {
            path,
            label,
            current: section == self.section,
        })
        .collect()
    }
}

pub struct NavItem {
    pub path: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The query string's parameters (none when it does not parse).
pub fn query(req: &HttpRequest, state: &AppState) -> Option<Params> {
    Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    )
    .ok()
}

/// For a page (GET): the signed-in admin, or the answer instead — a sign-in through
/// `/authorize`, or 403 for a user without the admin flag.
pub async fn viewer(req: &HttpRequest, state: &AppState) -> Result<Admin, HttpResponse> {
    let account = match SITE.current(req, state).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(SITE.sign_in(state, Back::Page, None)),
        Err(e) => return Err(failed(e)),
    };
    admitted(req, state, account).await
}

/// For a change (POST): [`Site::guard`]'s checks and the admin flag; the form's fields and the
/// admin, or the answer instead (nothing changed).
pub async fn change(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(Params, Admin), HttpResponse> {
    let (params, account) = SITE.guard(req, state, body).await?;
    Ok((params, admitted(req, state, account).await?))
}

// `async` like the guard it follows: its refusal is an answer as large as theirs.
async fn admitted(
    req: &HttpRequest,
    state: &AppState,
    account: Account,
) -> Result<Admin, HttpResponse> {
    if !account.session.user.is_admin {
        return Err(not_an_admin(&account.session.user.username));
    }
    // The client's minimum_acr makes every grant `mfa` or above; a session that is not (it was
    // made before the rule) signs in again.
    if Acr::stored(&account.acr) < Acr::Mfa {
        return Err(SITE.sign_in(state, Back::Page, None));
    }
    let by = By {
        actor: Actor::user(&account.session.user),
        address: Some(first_party::address(req, state).to_string()),
    };
    let csrf_token = SITE.csrf_token(state, &account.cookie);
    Ok(Admin {
        account,
        by,
        csrf_token,
    })
}

#[derive(Template)]
#[template(path = "admin/forbidden.html")]
struct Forbidden<'a> {
    username: &'a str,
}

/// 403 for a signed-in user without the admin flag: a plain page saying so, nothing else.
fn not_an_admin(username: &str) -> HttpResponse {
    render(StatusCode::FORBIDDEN, &Forbidden { username })
}

/// A console page: rendered with `status`, never cached (pages show who is signed in and may
/// show a secret once).
pub fn page<T: Template>(status: StatusCode, view: &T) -> HttpResponse {
    let mut response = render(status, view);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 303 to `path` with the notice `done`.
pub fn done(state: &AppState, path: &str, done: &str) -> HttpResponse {
    SITE.to_page(state, path, Some(done))
}

/// The status of a refused change from the storage error behind it: a missing thing is 404,
/// a name taken 409; `None` for a failure that is Sigil's (answered by [`failed`]).
pub fn refusal(e: &StorageError) -> Option<(StatusCode, String)> {
    match e {
        StorageError::NotFound(m) => Some((StatusCode::NOT_FOUND, sentence(m))),
        StorageError::Conflict(m) => Some((StatusCode::CONFLICT, sentence(m))),
        _ => None,
    }
}

/// `message` as a sentence that ends saying nothing changed.
pub fn sentence(message: &str) -> String {
    let mut s = message.trim_end_matches('.').to_string();
    if let Some(first) = s.get(0..1) {
        let upper = first.to_uppercase();
        s.replace_range(0..1, &upper);
    }
    format!("{s}. Nothing was changed.")
}

/// The confirmation each change redirects with, by its `done` code (fixed texts: nothing from
/// the query is shown).
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "reauth" => {
            "You signed in again. Changes need a sign-in within the last 15 minutes, so \
             nothing was changed: make your change once more."
        }
        "user-updated" => "The user's profile was saved.",
        "session-ended" => "The session was ended; the apps it signed in to were told.",
        "user-disabled" => {
            "The user was disabled: their sessions and tokens stopped working, and they cannot \
             sign in until enabled."
        }
        "user-enabled" => "The user was enabled: they can sign in again.",
        "user-unlocked" => "The user was unlocked: their failed sign-ins were forgotten.",
        "user-logged-out" => {
            "Every session and token of the user issued until now stopped working."
        }
        "user-factors-reset" => "The user's authenticator app and recovery codes were removed.",
        "user-removed" => "The user was removed.",
        "session-gone" => "That session had already ended.",
        "group-added" => "The group was created.",
        "group-renamed" => "The group was renamed.",
        "group-removed" => "The group was removed; its members keep their accounts.",
        "member-added" => "The user was added to the group.",
        "member-already" => "The user was already in the group: nothing changed.",
        "member-removed" => "The user was taken out of the group.",
        "client-removed" => "The client was removed.",
        "resource-added" => "The resource server was registered.",
        "resource-removed" => "The resource server was removed.",
        "resource-updated" => "The resource server was changed.",
        "keys-rotated" => {
            "The keys were rotated: each next key now signs, the keys that signed before are \
             retiring, and new next keys are published."
        }
        "key-retired" => "The key was retired: it is no longer published.",
        _ => return None,
    })
}
