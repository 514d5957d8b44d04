//! The console's groups (DESIGN.md "Groups": the `groups` claim apps map to roles): the list
//! with member counts, creation, and each group's page — rename, members added and removed,
//! removal — through `admin::groups`, which writes each change's audit event.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{change, done, page, query, refusal, sentence, viewer, Admin, Chrome};
use crate::admin::groups::{self as admin_groups, Added, GroupError};
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::storage::groups::{GroupListing, MemberRow};
use crate::storage::StorageError;
use crate::web::first_party::failed;

const PATH: &str = "/admin/groups";

#[derive(Template)]
#[template(path = "admin/groups.html")]
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<GroupListing>,
    name: String,
}

#[derive(Template)]
#[template(path = "admin/group.html")]
struct GroupPage {
    chrome: Chrome,
    name: String,
    members: Vec<(String, String)>,
}

/// GET /admin/groups
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let chrome = admin.chrome("groups", &req, &state);
    render_list(&state, chrome, StatusCode::OK, String::new()).await
}

async fn render_list(
    state: &AppState,
    chrome: Chrome,
    status: StatusCode,
    name: String,
) -> HttpResponse {
    match state.db.run(admin_groups::list).await {
        Ok(groups) => page(
            status,
            &GroupsPage {
                chrome,
                groups,
                name,
            },
        ),
        Err(e) => failed(e),
    }
}

/// GET /admin/groups/view?name=
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let name = query(&req, &state)
        .and_then(|q| q.get("name").map(str::to_string))
        .unwrap_or_default();
    let chrome = admin.chrome("groups", &req, &state);
    render_group(&state, chrome, StatusCode::OK, name).await
}

async fn render_group(
    state: &AppState,
    chrome: Chrome,
    status: StatusCode,
    name: String,
) -> HttpResponse {
    let group = name.clone();
    match state
        .db
        .run(move |c| admin_groups::members(c, &group))
        .await
    {
        Ok(members) => page(
            status,
            &GroupPage {
                chrome,
                name,
                members: members
                    .into_iter()
                    .map(|MemberRow { username, added_at }| (username, rfc3339(added_at)))
                    .collect(),
            },
        ),
        Err(e) => match refusal(&e) {
            Some((status, message)) => {
                let chrome = chrome.with_error(message.replace(" Nothing was changed.", ""));
                render_list(state, chrome, status, String::new()).await
            }
            None => failed(e),
        },
    }
}

/// POST /admin/groups, field `name`: a new group.
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let name = params.get("name").unwrap_or("").trim().to_string();
    let (group, by, now) = (name.clone(), admin.by.clone(), state.clock.now());
    match state
        .db
        .run(move |c| admin_groups::add(c, &group, &by, now))
        .await
    {
        Ok(_) => to_group(&state, &name, "group-added"),
        Err(e) => {
            let (status, message) = match words(e) {
                Ok(refused) => refused,
                Err(e) => return failed(e),
            };
            let chrome = admin.chrome("groups", &req, &state).with_error(message);
            render_list(&state, chrome, status, name).await
        }
    }
}

/// POST /admin/groups/{action}, field `name`: `rename` (field `new_name`), `add-member` and
/// `remove-member` (field `username`), `remove`.
pub async fn act(
    req: HttpRequest,
    action: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let name = params.get("name").unwrap_or("").to_string();
    let field = |k: &str| params.get(k).unwrap_or("").trim().to_string();
    let (group, by, now) = (name.clone(), admin.by.clone(), state.clock.now());
    let outcome: Result<(String, &'static str), GroupError> = match action.as_str() {
        "rename" => {
            let new_name = field("new_name");
            state
                .db
                .run(move |c| admin_groups::rename(c, &group, &new_name, &by, now))
                .await
                .map(|row| (row.name, "group-renamed"))
        }
        "add-member" => {
            let username = field("username");
            state
                .db
                .run(move |c| admin_groups::add_member(c, &group, &username, &by, now))
                .await
                .map(|added| {
                    let done = match added {
                        Added::Now => "member-added",
                        Added::Already => "member-already",
                    };
                    (name.clone(), done)
                })
        }
        "remove-member" => {
            let username = field("username");
            state
                .db
                .run(move |c| admin_groups::remove_member(c, &group, &username, &by, now))
                .await
                .map(|()| (name.clone(), "member-removed"))
        }
        "remove" => {
            return match state
                .db
                .run(move |c| admin_groups::remove(c, &group, &by, now))
                .await
            {
                Ok(()) => done(&state, PATH, "group-removed"),
                Err(e) => refused(&req, &state, &admin, name, e).await,
            }
        }
        _ => Err(GroupError::Invalid(
            "the console cannot do that to a group".into(),
        )),
    };
    match outcome {
        Ok((name, done)) => to_group(&state, &name, done),
        Err(e) => refused(&req, &state, &admin, name, e).await,
    }
}

/// The group's page with why the change was refused.
async fn refused(
    req: &HttpRequest,
    state: &AppState,
    admin: &Admin,
    name: String,
    e: GroupError,
) -> HttpResponse {
    let (status, message) = match words(e) {
        Ok(refused) => refused,
        Err(e) => return failed(e),
    };
    let chrome = admin.chrome("groups", req, state).with_error(message);
    render_group(state, chrome, status, name).await
}

/// A refusal in words, or Sigil's failure.
fn words(e: GroupError) -> Result<(StatusCode, String), StorageError> {
    match e {
        GroupError::Invalid(why) => Ok((StatusCode::BAD_REQUEST, sentence(&why))),
        GroupError::Storage(e) => refusal(&e).ok_or(e),
    }
}

/// 303 to the group's page with the notice `done`.
fn to_group(state: &AppState, name: &str, done: &str) -> HttpResponse {
    let mut url =
        url::Url::parse(&state.settings.endpoint_url("/admin/groups/view")).expect("issuer");
    url.query_pairs_mut()
        .append_pair("name", name)
        .append_pair("done", done);
    HttpResponse::SeeOther()
        .insert_header(("Location", url.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}
