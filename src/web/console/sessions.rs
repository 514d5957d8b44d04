//! The console's live sessions at Sigil (everyone's, or one user's), newest first, a page at a
//! time (`admin::sessions::list`), and ending one (`admin::sessions::end`: its grants revoked,
//! its apps told by back-channel logout, an audit event).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{change, done, page, query, refusal, sentence, viewer, Chrome};
use crate::admin::sessions::{self, SessionQuery};
use crate::admin::users::view::SessionSummary;
use crate::admin::users::UserError;
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::web::first_party::failed;

const PATH: &str = "/admin/sessions";

struct SessionView {
    sid: String,
    username: String,
    started: String,
    last_seen: String,
    acr: String,
    address: String,
    user_agent: String,
}

#[derive(Template)]
#[template(path = "admin/sessions.html")]
struct SessionsPage {
    chrome: Chrome,
    username: String,
    sessions: Vec<SessionView>,
    next: Option<String>,
}

/// GET /admin/sessions?username=&before=
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let q = query(&req, &state);
    let given = |k: &str| {
        q.as_ref()
            .and_then(|q| q.get(k).map(str::to_string))
            .filter(|v| !v.is_empty())
    };
    let ask = SessionQuery {
        username: given("username"),
        before: given("before"),
        limit: None,
    };
    let username = ask.username.clone().unwrap_or_default();
    let now = state.clock.now();
    let mut chrome = admin.chrome("sessions", &req, &state);
    let (found, status) = match state.db.run(move |c| sessions::list(c, &ask, now)).await {
        Ok(found) => (found, StatusCode::OK),
        Err(e) => {
            let (status, message) = match e {
                UserError::Invalid(why) => (StatusCode::BAD_REQUEST, why),
                UserError::Storage(e) => match refusal(&e) {
                    Some(refused) => refused,
                    None => return failed(e),
                },
            };
            let message = sentence(&message).replace(" Nothing was changed.", "");
            chrome = chrome.with_error(message);
            let empty = sessions::SessionPage {
                sessions: Vec::new(),
                next: None,
            };
            (empty, status)
        }
    };
    let next = found.next.map(|before| {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        if !username.is_empty() {
            next.append_pair("username", &username);
        }
        next.append_pair("before", &before);
        next.finish()
    });
    let view = SessionsPage {
        chrome,
        username,
        sessions: found.sessions.iter().map(view_of).collect(),
        next,
    };
    page(status, &view)
}

fn view_of(s: &SessionSummary) -> SessionView {
    SessionView {
        sid: s.sid.clone(),
        username: s.username.clone().unwrap_or_default(),
        started: rfc3339(s.created_at),
        last_seen: rfc3339(s.last_seen_at),
        acr: s.acr.clone(),
        address: s.client_address.clone(),
        user_agent: s.user_agent.clone(),
    }
}

/// POST /admin/sessions/end, field `sid`.
pub async fn end(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let sid = params.get("sid").unwrap_or("").to_string();
    match sessions::end(&state, &sid, &admin.by).await {
        Ok(()) => done(&state, PATH, "session-ended"),
        Err(e) => match refusal(&e) {
            Some(_) => done(&state, PATH, "session-gone"),
            None => failed(e),
        },
    }
}
