//! The admin API, an OAuth-protected resource of Sigil itself (RFC 6750): it accepts Sigil's own
//! access tokens (audience = the issuer) that a client obtained with the client_credentials grant
//! and the scope `sigil:admin` — which only clients registered with that scope can get. JSON in
//! and out; every change is an audit event (stored in the change's transaction) whose actor is
//! the calling client.
//!
//! ```text
//! GET    /admin/api/keys                          signing keys (kid, alg, state, dates)
//! POST   /admin/api/keys/rotate                   {"alg"?: "ES256", "force"?: false}
//! POST   /admin/api/keys/{kid}/retire
//! GET    /admin/api/resources[?resource=URI]      resource servers, or one
//! POST   /admin/api/resources                     resource metadata → the stored record (201)
//! DELETE /admin/api/resources?resource=URI
//! POST   /admin/api/users/{username}/logout-everywhere | disable | enable | unlock
//! GET    /admin/api/groups                        [{"name", "members", "created_at"}]
//! POST   /admin/api/groups                        {"name"} → the group (201)
//! PATCH  /admin/api/groups/{name}                 {"name"}: rename
//! DELETE /admin/api/groups/{name}                 with its memberships (204)
//! GET    /admin/api/groups/{name}/members         [{"username", "added_at"}]
//! PUT    /admin/api/groups/{name}/members/{username}   201 added, 200 already a member
//! DELETE /admin/api/groups/{name}/members/{username}   204, 404 when not a member
//! GET    /admin/api/audit?actor=&target=&type=&since=&until=&before=&limit=   (admin/audit.rs)
//! ```
//!
//! Errors: 400 a malformed body or a name that breaks the rule, 404 an unknown name, 409 a
//! name already taken (or a key rotated too early).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};

mod groups;

use crate::admin::{resources, users as admin_users};
use crate::audit::{By, EventType};
use crate::clock::rfc3339;
use crate::crypto::keys::SigningAlg;
use crate::crypto::rotation::{self, KeyError, Lifecycle};
use crate::state::AppState;
use crate::storage::{signing_keys, StorageError};
use crate::tokens::validate::{self, Audience};
use crate::web::client_address;

/// The scope that opens the admin API.
pub const ADMIN_SCOPE: &str = "sigil:admin";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/keys", web::get().to(list_keys))
        .route("/keys/rotate", web::post().to(rotate_keys))
        .route("/keys/{kid}/retire", web::post().to(retire_key))
        .route("/resources", web::get().to(get_resources))
        .route("/resources", web::post().to(add_resource))
        .route("/resources", web::delete().to(remove_resource))
        .route("/users/{username}/{action}", web::post().to(user_action))
        .route("/audit", web::get().to(super::audit::list))
        .configure(groups::routes);
}

/// A JSON error: `{"error", "error_description"}` with its status (RFC 6750 §3 for the token).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }
    fn invalid_token(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
    }
    pub(crate) fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
    fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self.status {
            StatusCode::UNAUTHORIZED => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"sigil\", error=\"{}\"", self.error),
                ));
            }
            StatusCode::FORBIDDEN => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"sigil\", error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\""),
                ));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((
                    header::RETRY_AFTER,
                    crate::oauth::error::RETRY_AFTER_SECS.to_string(),
                ));
            }
            _ => {}
        }
        response.json(json!({"error": self.error, "error_description": self.description}))
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(m) => Self::not_found(m),
            StorageError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            // Logged once by the pool when the outage starts.
            other if other.is_unavailable() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the database cannot be reached; try again in a few seconds",
            ),
            other => {
                tracing::error!(error = %other, "admin API storage error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the database could not be used",
                )
            }
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Storage(s) => s.into(),
            KeyError::UnknownKey(_) => Self::not_found(e.to_string()),
            KeyError::TooEarly { .. } => {
                Self::new(StatusCode::CONFLICT, "too_early", e.to_string())
            }
            KeyError::Generate(_) => {
                tracing::error!(error = %e, "key generation failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "a key could not be generated",
                )
            }
            other => Self::new(StatusCode::CONFLICT, "conflict", other.to_string()),
        }
    }
}

/// The client behind the request's bearer token, when it may use the admin API.
pub(crate) async fn caller(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let token = crate::endpoints::userinfo::bearer(req)
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::invalid_token("a bearer access token is required"))?;
    let keys = state.keyring.current();
    let issuer = state.settings.issuer_str();
    let token = validate::check(
        &keys,
        &token,
        issuer,
        Audience::Only(issuer),
        state.clock.now(),
    )
    .map_err(ApiError::invalid_token)?;
    // Only a client acting for itself (client_credentials), never a user's token.
    if token.grant_id.is_some() {
        return Err(ApiError::invalid_token(
            "the admin API takes client_credentials tokens",
        ));
    }
    let has_scope = |scope: &str| scope.split(' ').any(|s| s == ADMIN_SCOPE);
    if !token.claim("scope").is_some_and(has_scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("the token lacks the scope {ADMIN_SCOPE}"),
        ));
    }
    let client_id = token.claim("client_id").unwrap_or("").to_string();
    // The client must still be registered with the scope, and the token not revoked.
    let client = state
        .client(&client_id)
        .await?
        .filter(|c| has_scope(&c.metadata.scope))
        .ok_or_else(|| ApiError::invalid_token("the client may no longer use the admin API"))?;
    let revoked = state
        .db
        .run(move |conn| validate::is_revoked(conn, &token))
        .await?;
    if revoked {
        return Err(ApiError::invalid_token("the token was revoked"));
    }
    Ok(client.client_id)
}

/// The caller as the actor of its changes' audit events, with the request's client address.
pub(crate) async fn acting(req: &HttpRequest, state: &AppState) -> Result<By, ApiError> {
    let client_id = caller(req, state).await?;
    let address = client_address::of(req, &state.settings.http.trusted_proxies);
    Ok(By::client(&client_id, address))
}

fn ok(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// JSON or nothing: an empty body is `{}`.
fn json_body<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
}

async fn list_keys(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let rows = state.db.run(signing_keys::all).await?;
    Ok(ok(Value::Array(
        rows.iter().map(crate::admin::keys::describe).collect(),
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    alg: Option<SigningAlg>,
    #[serde(default)]
    force: bool,
}

async fn rotate_keys(
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
    let done =
        web::block(move || rotation::rotate(&db, &master, lifecycle, &algs, ask.force, now, &by))
            .await
            .map_err(|_| StorageError::Canceled)??;
    crate::admin::keys::reload(&state).await;
    Ok(ok(json!(done)))
}

async fn retire_key(
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
    crate::admin::keys::reload(&state).await;
    Ok(ok(crate::admin::keys::describe(&row)))
}

#[derive(Debug, Default, Deserialize)]
struct ResourceQuery {
    resource: Option<String>,
}

async fn get_resources(
    req: HttpRequest,
    query: web::Query<ResourceQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    match query.into_inner().resource {
        Some(uri) => {
            let shown = state
                .db
                .run(move |conn| resources::show(conn, &uri))
                .await?
                .ok_or_else(|| ApiError::not_found("no such resource"))?;
            Ok(ok(json!(shown)))
        }
        None => Ok(ok(json!(state.db.run(resources::list).await?))),
    }
}

async fn add_resource(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let now = state.clock.now();
    let record = state
        .db
        .run(move |conn| Ok(resources::create(conn, &body, &by, now)))
        .await
        .map_err(|e: StorageError| ApiError::from(e))?;
    match record {
        Ok(record) => Ok(HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(record)),
        Err(resources::ResourceError::Storage(e)) => Err(e.into()),
        Err(e) => Ok(HttpResponse::BadRequest()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(e.to_json())),
    }
}

async fn remove_resource(
    req: HttpRequest,
    query: web::Query<ResourceQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let uri = query
        .into_inner()
        .resource
        .ok_or_else(|| ApiError::bad_request("the resource query parameter is required"))?;
    let now = state.clock.now();
    state
        .db
        .run(move |conn| resources::remove(conn, &uri, &by, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn user_action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let (username, action) = path.into_inner();
    let kind = match action.as_str() {
        "logout-everywhere" => EventType::UserLoggedOutEverywhere,
        "disable" => EventType::UserDisabled,
        "enable" => EventType::UserEnabled,
        "unlock" => EventType::UserUnlocked,
        _ => return Err(ApiError::not_found(format!("no action {action:?}"))),
    };
    let now = state.clock.now();
    if matches!(action.as_str(), "logout-everywhere" | "disable") {
        // End the user's sessions first, so that every client that took part hears of it
        // (back-channel logout); then every token issued before now stops being accepted.
        crate::admin::sessions::end_all_of_user(&state, &username).await?;
    }
    let name = username.clone();
    state
        .db
        .run(move |conn| match kind {
            EventType::UserLoggedOutEverywhere => {
                admin_users::logout_everywhere(conn, &name, &by, now)
            }
            EventType::UserDisabled => admin_users::disable(conn, &name, &by, now),
            EventType::UserEnabled => admin_users::enable(conn, &name, &by, now),
            // Clears the sign-in counters; no token changes, so the caches stay.
            _ => admin_users::unlock(conn, &name, &by, now),
        })
        .await?;
    if kind != EventType::UserUnlocked {
        state.verdicts.invalidate();
    }
    Ok(ok(json!({
        "username": username,
        "action": action,
        "at": rfc3339(now),
    })))
}
