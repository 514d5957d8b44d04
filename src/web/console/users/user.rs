//! One user's page: who they are (and their claims, editable), whether they can sign in (the
//! switches and the sign-in counter), their second factors, groups, live sessions and the apps
//! they consented to, with a form for every change `actions.rs` makes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::super::{query, refusal, viewer, Admin, Chrome};
use crate::admin::users::view::{self, UserDetails};
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::web::first_party::failed;

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    chrome: Chrome,
    u: UserDetails,
    /// The stored claims beyond the fixed fields, as a JSON object to edit.
    claims: String,
    locked_until: Option<String>,
    link_expires: Option<String>,
    /// A password-set link made by this answer: shown once.
    link: Option<(String, String)>,
    /// Whether this is the signed-in admin's own account.
    own: bool,
    sessions: Vec<SessionView>,
    consents: Vec<(String, String, String)>,
}

struct SessionView {
    sid: String,
    started: String,
    last_seen: String,
    acr: String,
    address: String,
    user_agent: String,
}

/// What an answer shows beyond the stored state.
#[derive(Default)]
pub struct Shown {
    pub status: Option<StatusCode>,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
    /// A link just made: its URL and expiry (Unix seconds).
    pub link: Option<(String, i64)>,
}

/// GET /admin/users/view?username=
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let username = query(&req, &state)
        .and_then(|q| q.get("username").map(str::to_string))
        .unwrap_or_default();
    render(&req, &state, &admin, &username, Shown::default()).await
}

/// The page of the user `username` (404 in words when there is none).
pub async fn render(
    req: &HttpRequest,
    state: &AppState,
    admin: &Admin,
    username: &str,
    shown: Shown,
) -> HttpResponse {
    let (name, now) = (username.to_string(), state.clock.now());
    let details = match state.db.run(move |c| view::details(c, &name, now)).await {
        Ok(details) => details,
        Err(e) => {
            let Some((status, message)) = refusal(&e) else {
                return failed(e);
            };
            let chrome = admin
                .chrome("users", req, state)
                .with_error(message.replace(" Nothing was changed.", ""));
            return super::render(
                state,
                chrome,
                status,
                Default::default(),
                Default::default(),
            )
            .await;
        }
    };
    let mut chrome = admin.chrome("users", req, state);
    if shown.notice.is_some() {
        chrome.notice = shown.notice;
    }
    if let Some(error) = shown.error {
        chrome = chrome.with_error(error);
    }
    let view = UserPage {
        chrome,
        claims: serde_json::to_string_pretty(&details.user.claims).unwrap_or_default(),
        locked_until: details.sign_in.locked_until.map(rfc3339),
        link_expires: details.password_link_expires_at.map(rfc3339),
        link: shown.link.map(|(url, at)| (url, rfc3339(at))),
        own: details.user.id == admin.account.session.user.id,
        sessions: details
            .sessions
            .iter()
            .map(|s| SessionView {
                sid: s.sid.clone(),
                started: rfc3339(s.created_at),
                last_seen: rfc3339(s.last_seen_at),
                acr: s.acr.clone(),
                address: s.client_address.clone(),
                user_agent: s.user_agent.clone(),
            })
            .collect(),
        consents: details
            .consents
            .iter()
            .map(|c| (c.client_id.clone(), c.scope.clone(), rfc3339(c.granted_at)))
            .collect(),
        u: details,
    };
    super::super::page(shown.status.unwrap_or(StatusCode::OK), &view)
}
