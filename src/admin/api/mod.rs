//! The admin API, an OAuth-protected resource of Sigil itself (RFC 6750): it accepts Sigil's own
//! access tokens (audience = the issuer) that a client obtained with the client_credentials grant
//! and the scope `sigil:admin` — which only clients registered with that scope can get. JSON in
//! and out; every change is an audit event (stored in the change's transaction) whose actor is
//! the calling client. The operations are `admin::*`'s, shared with the CLI and the console.
//!
//! One module a resource (`users`, `clients`, `resources`, `sessions`, `keys`, `groups`, and
//! `admin::audit`); each handler carries its OpenAPI description (`utoipa`), gathered in
//! `openapi` and served at `GET /admin/api/openapi.json` (public: it describes, it grants
//! nothing). README.md lists the routes.
//!
//! Errors: `{"error", "error_description"}` — 400 a malformed body or a value that breaks a
//! rule, 401 no valid token, 403 a token without the scope, 404 an unknown name, 409 a name
//! already taken (or a key rotated too early), 503 the database out of reach.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

mod groups;

mod clients;
mod keys;
pub mod openapi;
mod resources;
mod sessions;
mod users;

use crate::admin::clients::ClientError;
use crate::admin::resources::ResourceError;
use crate::admin::users::UserError;
use crate::audit::By;
use crate::crypto::rotation::KeyError;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::storage::StorageError;
use crate::tokens::validate::{self, Audience};
use crate::web::client_address;

/// The scope that opens the admin API.
pub const ADMIN_SCOPE: &str = "sigil:admin";

/// Every route of the admin API (`openapi` describes each; a test checks they agree).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi::serve))
        .route("/audit", web::get().to(super::audit::list))
        .configure(users::routes)
        .configure(clients::routes)
        .configure(resources::routes)
        .configure(sessions::routes)
        .configure(keys::routes)
        .configure(groups::routes);
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `invalid_request`, `invalid_client_metadata`, `not_found`, `conflict`, `too_early`,
    /// `invalid_token`, `insufficient_scope`, `temporarily_unavailable`, `server_error`.
    pub error: String,
    pub error_description: String,
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
    pub(crate) fn not_found(description: impl Into<String>) -> Self {
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
    // RFC 9449 §7.2 (SECURITY.md 33): a DPoP-bound token is no bearer token.
    if crate::oauth::dpop::bound_jkt(&token.claims).is_some() {
        return Err(ApiError::invalid_token(
            "the admin API takes bearer tokens, not DPoP-bound ones",
        ));
    }
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

fn ok(body: impl serde::Serialize) -> HttpResponse {
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

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid(m) => Self::bad_request(m),
            UserError::Storage(s) => s.into(),
        }
    }
}

/// A refused registration keeps its RFC 7591 §3.2.2 error code, with status 400.
impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            e.code.as_str(),
            e.description.as_deref().unwrap_or("").to_string(),
        )
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Metadata(e) => e.into(),
            ClientError::Storage(s) => s.into(),
        }
    }
}

impl From<ResourceError> for ApiError {
    fn from(e: ResourceError) -> Self {
        match e {
            ResourceError::Metadata(e) => e.into(),
            ResourceError::Storage(s) => s.into(),
        }
    }
}

/// A change by the caller: `op` runs on a pooled connection, off the async workers, with the
/// caller as the actor of its audit event and the current time.
async fn change<T, E, F>(state: &AppState, by: By, op: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: From<StorageError> + Send + 'static,
    ApiError: From<E>,
    F: FnOnce(&mut crate::storage::AnyConnection, &By, i64) -> Result<T, E> + Send + 'static,
{
    let now = state.clock.now();
    Ok(state.db.run(move |conn| op(conn, &by, now)).await?)
}

/// 201 with `body`, never cached.
fn created(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// A change that answers nothing: 204.
fn no_content() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The query string as `T`; a malformed or unknown parameter is a 400 in words.
fn query<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::bad_request(format!("the query is not understood: {e}")))
}
