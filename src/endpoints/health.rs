//! `/healthz` (the process answers) and `/readyz` (the database answers too).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// How long `/readyz` waits for a database connection: a load balancer's probe must hear
/// "not ready" well within a second, whatever `database.acquire_timeout` is.
pub const READY_WAIT: Duration = Duration::from_millis(500);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let wait = READY_WAIT.min(state.settings.database.acquire_timeout.0);
    // The outer limit also covers a blocking pool busy with requests that wait for the
    // database themselves. The outage itself is logged once by the pool.
    let ready = tokio::time::timeout(wait * 2, state.db.ping(wait)).await;
    match ready {
        Ok(Ok(())) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "status": "ready" })),
        Ok(Err(e)) if e.is_unavailable() => not_ready(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness check failed");
            not_ready()
        }
        Err(_) => not_ready(),
    }
}

fn not_ready() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::RETRY_AFTER,
            crate::oauth::error::RETRY_AFTER_SECS.to_string(),
        ))
        .json(json!({ "status": "unavailable" }))
}
