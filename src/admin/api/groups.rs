//! The admin API's groups: the operations of `admin::groups`, as JSON. Each change is logged
//! once, by the operation, with the calling client as its actor.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{acting, caller, json_body, ok, ApiError};
use crate::admin::groups::{self as admin, Added, GroupError};
use crate::state::AppState;
use crate::storage::groups::GroupListing;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::get().to(list))
        .route("/groups", web::post().to(add))
        .route("/groups/{name}", web::patch().to(rename))
        .route("/groups/{name}", web::delete().to(remove))
        .route("/groups/{name}/members", web::get().to(members))
        .route(
            "/groups/{name}/members/{username}",
            web::put().to(add_member),
        )
        .route(
            "/groups/{name}/members/{username}",
            web::delete().to(remove_member),
        );
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Invalid(m) => ApiError::bad_request(m),
            GroupError::Storage(s) => s.into(),
        }
    }
}

/// `{"name": …}`: the body of a creation and of a rename.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: Option<String>,
}

fn name_of(body: &[u8]) -> Result<String, ApiError> {
    // An object, not the same fields in an array (which serde would take for a struct).
    let value: Value = json_body(body)?;
    let wrong = || ApiError::bad_request("the body must be {\"name\": \"…\"}");
    if !value.is_object() {
        return Err(wrong());
    }
    let body: NameBody = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))?;
    body.name.ok_or_else(wrong)
}

fn no_store(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let rows = state.db.run(admin::list).await?;
    Ok(ok(Value::Array(rows.iter().map(admin::describe).collect())))
}

async fn add(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = acting(&req, &state).await?;
    let now = state.clock.now();
    let name = name_of(&body)?;
    let row = state
        .db
        .run(move |conn| admin::add(conn, &name, &who, now))
        .await?;
    let shown = admin::describe(&GroupListing {
        group: row,
        members: 0,
    });
    Ok(no_store(StatusCode::CREATED, shown))
}

async fn rename(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = acting(&req, &state).await?;
    let now = state.clock.now();
    let new_name = name_of(&body)?;
    let name = path.into_inner();
    let listing = state
        .db
        .run(move |conn| {
            let group = admin::rename(conn, &name, &new_name, &who, now)?;
            let members = admin::members(conn, &group.name)?.len() as i64;
            Ok::<_, GroupError>(GroupListing { group, members })
        })
        .await?;
    Ok(ok(admin::describe(&listing)))
}

async fn remove(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = acting(&req, &state).await?;
    let now = state.clock.now();
    let name = path.into_inner();
    state
        .db
        .run(move |conn| admin::remove(conn, &name, &who, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn members(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let name = path.into_inner();
    let rows = state
        .db
        .run(move |conn| admin::members(conn, &name))
        .await?;
    Ok(ok(Value::Array(
        rows.iter().map(admin::describe_member).collect(),
    )))
}

async fn add_member(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = acting(&req, &state).await?;
    let now = state.clock.now();
    let (group, username) = path.into_inner();
    let (g, u) = (group.clone(), username.clone());
    let added = state
        .db
        .run(move |conn| admin::add_member(conn, &g, &u, &who, now))
        .await?;
    // PUT: 201 when the membership was made, 200 when it was there already.
    let status = match added {
        Added::Now => StatusCode::CREATED,
        Added::Already => StatusCode::OK,
    };
    let body = json!({"group": group, "username": username, "added": added == Added::Now});
    Ok(no_store(status, body))
}

async fn remove_member(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = acting(&req, &state).await?;
    let now = state.clock.now();
    let (group, username) = path.into_inner();
    state
        .db
        .run(move |conn| admin::remove_member(conn, &group, &username, &who, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
