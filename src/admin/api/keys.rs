//! `/admin/api/keys`: the signing keys, their rotation schedule, rotating and retiring
//! (`crypto::rotation`, which records the audit events).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{acting, caller, json_body, ok, ApiError, ErrorBody};
use crate::admin::keys::{self as admin, KeysOverview};
use crate::crypto::keys::SigningAlg;
use crate::crypto::rotation::{self, Lifecycle, Rotation};
use crate::crypto::schedule::Schedule;
use crate::state::AppState;
use crate::storage::{signing_keys, StorageError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/keys", web::get().to(list))
        .route("/keys/schedule", web::get().to(schedule))
        .route("/keys/rotate", web::post().to(rotate))
        .route("/keys/{kid}/retire", web::post().to(retire));
}

/// Every signing key: kid, alg, state (next, active, retiring, retired) and dates.
#[utoipa::path(get, path = "/admin/api/keys", tag = "keys",
    responses((status = 200, description = "every key, retired ones too", body = Vec<Object>)))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let rows = state.db.run(signing_keys::all).await?;
    Ok(ok(Value::Array(rows.iter().map(admin::describe).collect())))
}

/// The keys with each algorithm's schedule: when the next rotation is due and from when the
/// next key may sign without `force`.
#[utoipa::path(get, path = "/admin/api/keys/schedule", tag = "keys",
    responses((status = 200, description = "keys and schedule", body = KeysOverview)))]
pub async fn schedule(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let rows = state.db.run(signing_keys::all).await?;
    let plan = Schedule::from_settings(&state.settings);
    Ok(ok(admin::overview(&rows, &plan, state.clock.now())))
}

/// What to rotate: one algorithm or all; `force` activates a next key published for less than
/// 2 × `keys.jwks_max_age` (a compromised key).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    #[schema(value_type = Option<String>, example = "ES256")]
    alg: Option<SigningAlg>,
    #[serde(default)]
    force: bool,
}

/// Each algorithm's rotation: activated, retiring and new next kid.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RotationDone {
    pub alg: String,
    pub activated: String,
    pub retiring: Option<String>,
    pub next: String,
}

/// Rotates: next → active, active → retiring, a new next; refused (409 `too_early`) while the
/// next key has not been published long enough, unless `force`.
#[utoipa::path(post, path = "/admin/api/keys/rotate", tag = "keys",
    request_body(content = RotateRequest, description = "empty: every algorithm, no force"),
    responses(
        (status = 200, description = "the rotations", body = Vec<RotationDone>),
        (status = 400, description = "a malformed body", body = ErrorBody),
        (status = 409, description = "too early (force to override)", body = ErrorBody)))]
pub async fn rotate(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let ask: RotateRequest = json_body(&body)?;
    let algs: Vec<SigningAlg> = ask
        .alg
        .map(|a| vec![a])
        .unwrap_or_else(|| SigningAlg::ALL.to_vec());
    let (db, master) = (state.db.clone(), state.master.clone());
    let lifecycle = Lifecycle::from_settings(&state.settings);
    let now = state.clock.now();
    // Key generation (RSA) and the transaction run off the async workers.
    let done: Vec<Rotation> =
        web::block(move || rotation::rotate(&db, &master, lifecycle, &algs, ask.force, now, &by))
            .await
            .map_err(|_| StorageError::Canceled)??;
    admin::reload(&state).await;
    Ok(ok(json!(done)))
}

/// Takes a next or retiring key out of the JWKS now (a retired next key is replaced).
#[utoipa::path(post, path = "/admin/api/keys/{kid}/retire", tag = "keys",
    params(("kid" = String, Path, description = "the key id")),
    responses(
        (status = 200, description = "the retired key", body = Object),
        (status = 404, description = "no such key", body = ErrorBody),
        (status = 409, description = "the key is active or already retired", body = ErrorBody)))]
pub async fn retire(
    req: HttpRequest,
    kid: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let kid = kid.into_inner();
    let (db, master, now) = (state.db.clone(), state.master.clone(), state.clock.now());
    let row = web::block(move || rotation::retire(&db, &master, &kid, now, &by))
        .await
        .map_err(|_| StorageError::Canceled)??;
    admin::reload(&state).await;
    Ok(ok(admin::describe(&row)))
}
