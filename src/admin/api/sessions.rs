//! `/admin/api/sessions`: live sessions at Sigil, everyone's or one user's, and ending one
//! (`admin::sessions`: its grants end and its clients hear of it by back-channel logout).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{acting, caller, no_content, ok, query, ApiError, ErrorBody};
use crate::admin::sessions::{self as admin, SessionPage, SessionQuery};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sessions", web::get().to(list))
        .route("/sessions/{sid}", web::delete().to(end));
}

/// A page of live sessions, newest first.
#[utoipa::path(get, path = "/admin/api/sessions", tag = "sessions", params(SessionQuery),
    responses(
        (status = 200, description = "a page of live sessions", body = SessionPage),
        (status = 400, description = "a bad query", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody)))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let q: SessionQuery = query(&req)?;
    let now = state.clock.now();
    Ok(ok(state
        .db
        .run(move |conn| admin::list(conn, &q, now))
        .await?))
}

/// Ends the live session `sid` (as in ID tokens).
#[utoipa::path(delete, path = "/admin/api/sessions/{sid}", tag = "sessions",
    params(("sid" = String, Path)),
    responses(
        (status = 204, description = "ended"),
        (status = 404, description = "no live session with that id", body = ErrorBody)))]
pub async fn end(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    admin::end(&state, &path.into_inner(), &by).await?;
    Ok(no_content())
}
