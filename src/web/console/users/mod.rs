//! The console's users: search (by username prefix, or part of an email address or name; a
//! page at a time, `admin::users::view::search`), creation without a password — a one-time
//! password-set link is shown once instead —, and each user's page (`user.rs`): claims,
//! switches, sign-in counter, second factors, groups, sessions and consents, and every change
//! to them (`actions.rs`).

mod actions;
mod user;

pub use actions::act;
pub use user::show;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{change, query, refusal, viewer, Admin, Chrome};
use crate::admin::users::view::{self, UserQuery, UserSummary};
use crate::admin::users::{self as admin_users, links, NewUser, UserError};
use crate::state::AppState;
use crate::web::first_party::failed;

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: Chrome,
    q: String,
    users: Vec<UserSummary>,
    /// The query of the next page, when there is one.
    next: Option<String>,
    form: Form,
}

/// The creation form as sent.
#[derive(Default)]
struct Form {
    username: String,
    email: String,
    name: String,
    admin: bool,
}

/// GET /admin/users?q=&after=
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let chrome = admin.chrome("users", &req, &state);
    let q = query(&req, &state);
    let given = |k: &str| {
        q.as_ref()
            .and_then(|q| q.get(k).map(str::to_string))
            .filter(|v| !v.is_empty())
    };
    let search = UserQuery {
        q: given("q"),
        after: given("after"),
        limit: None,
    };
    render(&state, chrome, StatusCode::OK, search, Form::default()).await
}

async fn render(
    state: &AppState,
    chrome: Chrome,
    status: StatusCode,
    search: UserQuery,
    form: Form,
) -> HttpResponse {
    let q = search.q.clone().unwrap_or_default();
    let found = state.db.run(move |c| view::search(c, &search)).await;
    let (found, chrome, status) = match found {
        Ok(found) => (found, chrome, status),
        Err(UserError::Invalid(why)) => {
            let empty = view::UserPage {
                users: Vec::new(),
                next: None,
            };
            let error = format!("This search cannot be made: {why}.");
            (empty, chrome.with_error(error), StatusCode::BAD_REQUEST)
        }
        Err(UserError::Storage(e)) => return failed(e),
    };
    let next = found.next.map(|after| {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            next.append_pair("q", &q);
        }
        next.append_pair("after", &after);
        next.finish()
    });
    let view = UsersPage {
        chrome,
        q,
        users: found.users,
        next,
        form,
    };
    super::page(status, &view)
}

/// POST /admin/users, fields `username`, `email`, `name`, `admin` (`yes`): a user without a
/// password, and their password-set link, shown on this answer only.
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let text = |k: &str| params.get(k).unwrap_or("").trim().to_string();
    let form = Form {
        username: text("username"),
        email: text("email"),
        name: text("name"),
        admin: params.get("admin") == Some("yes"),
    };
    let new = NewUser {
        username: form.username.clone(),
        email: Some(form.email.clone()).filter(|e| !e.is_empty()),
        email_verified: false,
        name: Some(form.name.clone()).filter(|n| !n.is_empty()),
        admin: form.admin,
        claims: Default::default(),
    };
    let (by, now) = (admin.by.clone(), state.clock.now());
    let created = state
        .db
        .run(move |c| admin_users::create(c, new, None, links::DEFAULT_TTL, &by, now))
        .await;
    let created = match created {
        Ok(created) => created,
        Err(e) => {
            let (status, message) = match e {
                UserError::Invalid(why) => (
                    StatusCode::BAD_REQUEST,
                    super::sentence(&format!("The user was not created: {why}")),
                ),
                UserError::Storage(e) => match refusal(&e) {
                    Some(refused) => refused,
                    None => return failed(e),
                },
            };
            return refused(&req, &state, &admin, status, message, form).await;
        }
    };
    let link = created
        .link
        .map(|l| (l.url(&state.settings.issuer), l.expires_at));
    user::render(
        &req,
        &state,
        &admin,
        &created.user.username,
        user::Shown {
            notice: Some(
                "The user was created without a password. Give them the link below: it is \
                 shown only this once, and lets them choose their password.",
            ),
            link,
            ..Default::default()
        },
    )
    .await
}

async fn refused(
    req: &HttpRequest,
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    message: String,
    form: Form,
) -> HttpResponse {
    let chrome = admin.chrome("users", req, state).with_error(message);
    render(state, chrome, status, UserQuery::default(), form).await
}
