//! `/admin/api/resources?resource=URI`: resource servers (RFC 8707) — list or show, register,
//! replace, remove (`admin::resources`, the same checks as `sigil resource`). The URI goes in
//! the query, not the path: it holds slashes of its own.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{acting, caller, change, created, no_content, ok, query, ApiError, ErrorBody};
use crate::admin::resources as admin;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/resources", web::get().to(get))
        .route("/resources", web::post().to(add))
        .route("/resources", web::put().to(update))
        .route("/resources", web::delete().to(remove));
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResourceQuery {
    /// The resource server's URI (its tokens' `aud`).
    resource: Option<String>,
}

impl ResourceQuery {
    fn required(self) -> Result<String, ApiError> {
        self.resource
            .ok_or_else(|| ApiError::bad_request("the resource query parameter is required"))
    }
}

/// Every resource server, or the one named by `resource`.
#[utoipa::path(get, path = "/admin/api/resources", tag = "resources", params(ResourceQuery),
    responses(
        (status = 200, description = "the list, or the one record", body = Object),
        (status = 404, description = "no such resource", body = ErrorBody)))]
pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    match query::<ResourceQuery>(&req)?.resource {
        Some(uri) => {
            let shown = state
                .db
                .run(move |conn| admin::show(conn, &uri))
                .await?
                .ok_or_else(|| ApiError::not_found("no such resource"))?;
            Ok(ok(json!(shown)))
        }
        None => Ok(ok(json!(state.db.run(admin::list).await?))),
    }
}

/// Registers a resource server: `resource`, `scope`, optional `access_token_ttl`, `jwks` and
/// encryption algorithms.
#[utoipa::path(post, path = "/admin/api/resources", tag = "resources",
    request_body(content = Object, description = "resource server metadata"),
    responses(
        (status = 201, description = "the stored record", body = Object),
        (status = 400, description = "invalid metadata", body = ErrorBody),
        (status = 409, description = "already registered", body = ErrorBody)))]
pub async fn add(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let record = change(&state, by, move |conn, by, now| {
        admin::create(conn, &body, by, now)
    })
    .await?;
    Ok(created(record))
}

/// Replaces the registration of `resource` (its URI stays).
#[utoipa::path(put, path = "/admin/api/resources", tag = "resources", params(ResourceQuery),
    request_body(content = Object, description = "resource server metadata"),
    responses(
        (status = 200, description = "the stored record", body = Object),
        (status = 400, description = "invalid metadata, or another URI; nothing changed", body = ErrorBody),
        (status = 404, description = "no such resource", body = ErrorBody)))]
pub async fn update(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let uri = query::<ResourceQuery>(&req)?.required()?;
    let key = uri.clone();
    let record = change(&state, by, move |conn, by, now| {
        admin::update(conn, &uri, &body, by, now)
    })
    .await?;
    state.resources.forget(&key);
    Ok(ok(record))
}

/// Removes a resource server; its tokens stay valid until they expire.
#[utoipa::path(delete, path = "/admin/api/resources", tag = "resources", params(ResourceQuery),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "no resource given", body = ErrorBody),
        (status = 404, description = "no such resource", body = ErrorBody)))]
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let uri = query::<ResourceQuery>(&req)?.required()?;
    let key = uri.clone();
    change(&state, by, move |conn, by, now| {
        admin::remove(conn, &uri, by, now)
    })
    .await?;
    state.resources.forget(&key);
    Ok(no_content())
}
