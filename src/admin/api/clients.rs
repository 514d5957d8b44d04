//! `/admin/api/clients`: OAuth clients as RFC 7591 metadata — list, show, register, replace the
//! registration, rotate the secret, remove (`admin::clients`, the same checks as `sigil client`
//! and `/register`). A change is seen on this node at once (its client cache forgets the
//! client) and on the others within `clients.cache_ttl`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{acting, caller, change, created, no_content, ok, query, ApiError, ErrorBody};
use crate::admin::clients as admin;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/clients", web::get().to(list))
        .route("/clients", web::post().to(add))
        .route("/clients/{client_id}", web::get().to(show))
        .route("/clients/{client_id}", web::put().to(update))
        .route("/clients/{client_id}", web::delete().to(remove))
        .route("/clients/{client_id}/secret", web::post().to(rotate_secret));
}

/// Every client's registered metadata with `client_id` and `client_id_issued_at` (never a
/// secret).
#[utoipa::path(get, path = "/admin/api/clients", tag = "clients",
    responses((status = 200, description = "every client", body = Vec<Object>)))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    Ok(ok(state.db.run(admin::list).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NewClientQuery {
    /// The client id to register under (A–Z a–z 0–9 - . _ ~ :); random when absent.
    client_id: Option<String>,
}

/// Registers a client from RFC 7591 metadata; the answer is the RFC 7591 registration
/// response, with the `client_secret` of a confidential client shown this once.
#[utoipa::path(post, path = "/admin/api/clients", tag = "clients", params(NewClientQuery),
    request_body(content = Object, description = "RFC 7591 client metadata"),
    responses(
        (status = 201, description = "the registration response", body = Object),
        (status = 400, description = "invalid_client_metadata, invalid_redirect_uri", body = ErrorBody),
        (status = 409, description = "the client id is taken", body = ErrorBody)))]
pub async fn add(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let ask: NewClientQuery = query(&req)?;
    let master = state.master.clone();
    let response = change(&state, by, move |conn, by, now| {
        admin::create(conn, &master, &body, ask.client_id, by, now)
    })
    .await?;
    Ok(created(response))
}

#[utoipa::path(get, path = "/admin/api/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "the client's metadata", body = Object),
        (status = 404, description = "no such client", body = ErrorBody)))]
pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let id = path.into_inner();
    let shown = state
        .db
        .run(move |conn| admin::show(conn, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such client"))?;
    Ok(ok(shown))
}

/// Replaces the whole registration (checked as at registration; the id stays). A client that
/// starts to authenticate with a secret gets one in the answer, once.
#[utoipa::path(put, path = "/admin/api/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    request_body(content = Object, description = "RFC 7591 client metadata"),
    responses(
        (status = 200, description = "the client as registered now", body = Object),
        (status = 400, description = "invalid metadata; nothing changed", body = ErrorBody),
        (status = 404, description = "no such client", body = ErrorBody)))]
pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let id = path.into_inner();
    let (master, key) = (state.master.clone(), id.clone());
    let response = change(&state, by, move |conn, by, now| {
        admin::update(conn, &master, &id, &body, by, now)
    })
    .await?;
    state.clients.forget(&key);
    Ok(ok(response))
}

/// A new client secret, shown this once; the old one stops working.
#[utoipa::path(post, path = "/admin/api/clients/{client_id}/secret", tag = "clients",
    params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "{client_id, client_secret, client_secret_expires_at}", body = Object),
        (status = 400, description = "the client authenticates without a secret", body = ErrorBody),
        (status = 404, description = "no such client", body = ErrorBody)))]
pub async fn rotate_secret(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let id = path.into_inner();
    let (master, key) = (state.master.clone(), id.clone());
    let response = change(&state, by, move |conn, by, now| {
        admin::rotate_secret(conn, &master, &id, by, now)
    })
    .await?;
    state.clients.forget(&key);
    Ok(ok(response))
}

/// Removes the client with its grants and consents; its tokens stop being accepted.
#[utoipa::path(delete, path = "/admin/api/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such client", body = ErrorBody)))]
pub async fn remove(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let id = path.into_inner();
    let key = id.clone();
    change(&state, by, move |conn, by, now| {
        admin::remove(conn, &id, by, now)
    })
    .await?;
    state.clients.forget(&key);
    state.verdicts.invalidate();
    Ok(no_content())
}
