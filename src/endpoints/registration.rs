//! Dynamic client registration: `POST /register` (RFC 7591 §3) and the client configuration
//! endpoint `GET`/`PUT`/`DELETE /register/{client_id}` (RFC 7592 §2), when
//! `registration.mode` is `token` or `open` (with `off`, the default, every one answers 404).
//!
//! - `token`: `/register` takes `Authorization: Bearer <initial access token>` (from
//!   `sigil client initial-token`), good for one registration before it expires.
//! - `open`: anyone registers, `registration.max_per_address_per_hour` per client address
//!   (beyond it 429 `temporarily_unavailable` with `Retry-After` until the address's hour is
//!   over).
//! - In both, at most `registration.max_clients` dynamically registered clients exist: beyond
//!   it 503 `temporarily_unavailable` with `Retry-After` (an operator raises the cap, or
//!   clients are removed).
//!
//! Every failure to authenticate — no token, a wrong, expired or used one, another client's
//! registration access token, a client an administrator registered, no such client — is the
//! same 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::paths;
use crate::admin::registration::{self as registry, Admission, RegistrationError};
use crate::config::RegistrationMode;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::login_failures::{self, Limits, Reserved};
use crate::web::client_address;

/// The window of `registration.max_per_address_per_hour`.
const HOUR: i64 = 3600;

/// `Retry-After` when the registry is full.
const FULL_RETRY_AFTER: i64 = 3600;

/// POST /register.
pub async fn register(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mode = state.settings.registration.mode;
    if mode == RegistrationMode::Off {
        return HttpResponse::NotFound().finish();
    }
    let now = state.clock.now();
    let admission = match mode {
        RegistrationMode::Token => {
            let Some(token) = bearer(&req) else {
                return invalid_token();
            };
            let hash = registry::token_hash(&token);
            let probe = hash.clone();
            match state
                .db
                .run(move |c| crate::storage::registrations::initial_token_is_live(c, &probe, now))
                .await
            {
                Ok(true) => Admission::InitialToken(hash),
                Ok(false) => return invalid_token(),
                Err(e) => return oauth(OAuthError::from(e)),
            }
        }
        _ => Admission::Open,
    };
    let body = match read_json(&req, body, &state).await {
        Ok(body) => body,
        Err(e) => return oauth(e),
    };
    let allow_private = state.settings.outbound.allow_private_networks;
    let checked = match registry::check(&body, allow_private) {
        Ok(json) => json,
        Err(e) => return refused(e),
    };
    let address = client_address::of(&req, &state.settings.http.trusted_proxies);
    let slots = match admission {
        Admission::Open => match address_slot(&state, &address, now).await {
            Ok(slots) => slots,
            Err(answer) => return answer,
        },
        Admission::InitialToken(_) => Vec::new(),
    };
    let (master, max) = (
        state.master.clone(),
        state.settings.registration.max_clients,
    );
    let by = address.to_string();
    let registered = state
        .db
        .run(move |c| registry::register(c, &master, &checked, &admission, max, &by, now))
        .await;
    match registered {
        Ok(mut response) => {
            let id = response["client_id"].as_str().unwrap_or_default();
            response["registration_client_uri"] = client_uri(&state, id).into();
            no_store(HttpResponse::Created()).json(response)
        }
        Err(e) => {
            // What was refused did not register: the address keeps its slot for another try.
            // (A slot that cannot be given back stays taken: the cautious side.)
            for slot in slots {
                let _ = state
                    .db
                    .run(move |c| login_failures::release(c, &slot))
                    .await;
            }
            refused(e)
        }
    }
}

/// A registration slot of the client address in open mode, or the 429 to answer. RFC 7591 §5
/// leaves open registration's abuse to the server: a fixed number a client address may
/// register in an hour, counted in the sign-in counters' table (one atomic upsert, so
/// concurrent requests cannot outrun it; purged after its window), whatever becomes of the
/// clients.
async fn address_slot(
    state: &AppState,
    address: &client_address::ClientAddress,
    now: i64,
) -> Result<Vec<login_failures::Slot>, HttpResponse> {
    let key = format!("register:{}", address.throttle_bucket());
    let limits = Limits {
        max_failures: i32::try_from(state.settings.registration.max_per_address_per_hour)
            .unwrap_or(i32::MAX),
        window: HOUR,
        max_lockout: HOUR,
    };
    match state
        .db
        .run(move |c| login_failures::reserve(c, &[key], now, limits))
        .await
    {
        Ok(Reserved::All(slots)) => Ok(slots),
        Ok(Reserved::Refused(wait)) => Err(unavailable(
            429,
            wait,
            "this address has registered as many clients as it may for now",
        )),
        Err(e) => Err(oauth(OAuthError::from(e))),
    }
}

/// GET /register/{client_id} (RFC 7592 §2.1).
pub async fn read(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (id, token) = match authenticated(&req, path.into_inner(), &state).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let key = id.clone();
    match state.db.run(move |c| registry::read(c, &key)).await {
        Ok(response) => configuration(&state, &id, &token, response),
        Err(e) => refused(e),
    }
}

/// PUT /register/{client_id} (RFC 7592 §2.2): the full metadata replaces the registration.
pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (id, token) = match authenticated(&req, path.into_inner(), &state).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let body = match read_json(&req, body, &state).await {
        Ok(body) => body,
        Err(e) => return oauth(e),
    };
    let (master, key, now) = (state.master.clone(), id.clone(), state.clock.now());
    let allow_private = state.settings.outbound.allow_private_networks;
    let address = client_address::of(&req, &state.settings.http.trusted_proxies).to_string();
    let updated = state
        .db
        .run(move |c| registry::update(c, &master, &key, &body, allow_private, &address, now))
        .await;
    state.clients.forget(&id);
    match updated {
        Ok(response) => configuration(&state, &id, &token, response),
        Err(e) => refused(e),
    }
}

/// DELETE /register/{client_id} (RFC 7592 §2.3): 204, and the client is gone with its grants
/// and tokens.
pub async fn remove(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (id, _) = match authenticated(&req, path.into_inner(), &state).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let (key, now) = (id.clone(), state.clock.now());
    let address = client_address::of(&req, &state.settings.http.trusted_proxies).to_string();
    let removed = state
        .db
        .run(move |c| registry::remove(c, &key, &address, now))
        .await;
    state.clients.forget(&id);
    state.verdicts.invalidate();
    match removed {
        Ok(()) => no_store(HttpResponse::NoContent()).finish(),
        Err(e) => refused(e),
    }
}

/// The client id and registration access token of a request to the client configuration
/// endpoint, once they match; else the answer to give (404 when registration is off, the one
/// 401 otherwise).
async fn authenticated(
    req: &HttpRequest,
    client_id: String,
    state: &AppState,
) -> Result<(String, String), HttpResponse> {
    if state.settings.registration.mode == RegistrationMode::Off {
        return Err(HttpResponse::NotFound().finish());
    }
    let token = bearer(req).ok_or_else(invalid_token)?;
    let (id, presented) = (client_id.clone(), token.clone());
    match state
        .db
        .run(move |c| registry::authenticate(c, &id, &presented))
        .await
    {
        Ok(true) => Ok((client_id, token)),
        Ok(false) => Err(invalid_token()),
        Err(e) => Err(oauth(OAuthError::from(e))),
    }
}

/// RFC 7592 §3: the metadata with the client configuration endpoint's URL and the token (which
/// the client already holds: it does not rotate).
fn configuration(state: &AppState, id: &str, token: &str, mut response: Value) -> HttpResponse {
    response["registration_client_uri"] = client_uri(state, id).into();
    response["registration_access_token"] = token.into();
    no_store(HttpResponse::Ok()).json(response)
}

/// `registration_client_uri`: the issuer's `/register/{client_id}`.
pub fn client_uri(state: &AppState, client_id: &str) -> String {
    let endpoint = state.settings.endpoint_url(paths::REGISTRATION);
    match url::Url::parse(&endpoint) {
        Ok(mut url) => {
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.push(client_id);
            }
            url.to_string()
        }
        Err(_) => endpoint,
    }
}

/// The bearer token of `Authorization` (RFC 6750 §2.1), if any.
fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 512)
        .then(|| token.to_string())
}

/// The JSON body (RFC 7591 §3.1: `application/json`), at most `http.max_body_bytes` (413).
async fn read_json(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<web::Bytes, OAuthError> {
    if !req.content_type().eq_ignore_ascii_case("application/json") {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the body must be application/json",
        ));
    }
    let limit = state.settings.http.max_body_bytes;
    match body.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the body could not be read",
        )),
        Err(_) => Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            format!("the body is larger than {limit} bytes"),
        )
        .with_status(413)),
    }
}

fn refused(e: RegistrationError) -> HttpResponse {
    match e {
        RegistrationError::InvalidToken => invalid_token(),
        RegistrationError::Full => unavailable(
            503,
            FULL_RETRY_AFTER,
            "no more clients can register for now",
        ),
        RegistrationError::Metadata(e) => oauth(e),
        RegistrationError::Storage(e) => oauth(OAuthError::from(e)),
    }
}

/// The one 401 (RFC 6750 §3.1).
fn invalid_token() -> HttpResponse {
    oauth(OAuthError::new(
        ErrorCode::InvalidToken,
        "the access token is missing, invalid, expired or used",
    ))
}

fn oauth(e: OAuthError) -> HttpResponse {
    actix_web::ResponseError::error_response(&e)
}

/// `temporarily_unavailable` with the wait in `Retry-After`.
fn unavailable(status: u16, retry_after: i64, description: &'static str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
    no_store(HttpResponse::build(status))
        .insert_header((header::RETRY_AFTER, retry_after.max(1).to_string()))
        .json(json!({
            "error": ErrorCode::TemporarilyUnavailable,
            "error_description": description,
        }))
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    builder
}

/// The routes, mounted whatever the mode (each answers 404 while it is `off`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(paths::REGISTRATION)
            .route(web::post().to(register))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource(format!("{}/{{client_id}}", paths::REGISTRATION))
            .route(web::get().to(read))
            .route(web::put().to(update))
            .route(web::delete().to(remove))
            .default_service(web::to(other_method)),
    );
}

/// Any other method: 405, or 404 while registration is off (there is nothing here then).
async fn other_method(state: web::Data<AppState>) -> HttpResponse {
    if state.settings.registration.mode == RegistrationMode::Off {
        HttpResponse::NotFound().finish()
    } else {
        HttpResponse::MethodNotAllowed().finish()
    }
}
