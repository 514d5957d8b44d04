//! The login page: GET shows the form, POST checks the password (argon2id on the blocking
//! pool; unknown users verify a dummy hash so answer and timing match a wrong password), starts
//! a fresh session and answers 303.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{cookies, flow, forms, session, throttle};
use crate::crypto::password;
use crate::endpoints::authorize::{known_client, page};
use crate::endpoints::pages::render;
use crate::endpoints::paths;
use crate::oauth::form::Params;
use crate::oauth::OAuthError;
use crate::state::AppState;
use crate::storage::{users, StorageError};

/// The one message for every failed sign-in (SECURITY.md attack 19).
pub const FAILED: &str = "Incorrect username or password.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    client_name: &'a str,
    request_id: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    error: Option<String>,
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Ok(params) = Params::parse(req.query_string().as_bytes()) else {
        return forms::forbidden();
    };
    let Some(csrf) = cookies::read(&req, &state.settings, cookies::CSRF) else {
        return forms::forbidden();
    };
    let id = params.get("request").unwrap_or("");
    let parked = match flow::find_parked(&state, id, Some(&csrf)).await {
        Ok(Some(p)) => p,
        Ok(None) => return forms::forbidden(),
        Err(e) => return page(&e.into()),
    };
    let client = match known_client(&state, Some(&parked.request.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    let name = client
        .metadata
        .client_name
        .as_deref()
        .unwrap_or(&client.client_id);
    render(
        StatusCode::OK,
        &LoginPage {
            client_name: name,
            request_id: id,
            csrf_token: &csrf,
            username: parked.request.login_hint.as_deref().unwrap_or(""),
            error: None,
        },
    )
}

enum Outcome {
    SignedIn(String),
    Failed,
    Locked(i64),
}

pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Ok(params) = Params::parse(&body) else {
        return forms::forbidden();
    };
    let parked = match forms::check(&req, &state, &params).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let client = match known_client(&state, Some(&parked.request.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    let username = params.get("username").unwrap_or("").to_string();
    let given = params.get("password").unwrap_or("").to_string();
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let previous = cookies::read(&req, &state.settings, cookies::SESSION);
    let outcome = sign_in(&state, username.clone(), given, address, previous).await;
    let (status, message) = match outcome {
        Ok(Outcome::SignedIn(cookie_value)) => {
            let mut location =
                url::Url::parse(&state.settings.endpoint_url(paths::AUTHORIZE_RESUME))
                    .expect("issuer URL");
            location
                .query_pairs_mut()
                .append_pair("request", &parked.id);
            // SECURITY.md attack 16: 303, so the browser follows with GET and drops the body.
            return HttpResponse::SeeOther()
                .insert_header(("Location", location.as_str()))
                .insert_header(("Cache-Control", "no-store"))
                .cookie(cookies::build(
                    &state.settings,
                    cookies::SESSION,
                    cookie_value,
                ))
                .finish();
        }
        Ok(Outcome::Failed) => (StatusCode::UNAUTHORIZED, FAILED.to_string()),
        Ok(Outcome::Locked(wait)) => {
            let minutes = (wait + 59) / 60;
            let mut response = render(
                StatusCode::TOO_MANY_REQUESTS,
                &LoginPage {
                    client_name: client
                        .metadata
                        .client_name
                        .as_deref()
                        .unwrap_or(&client.client_id),
                    request_id: &parked.id,
                    csrf_token: params.get("csrf_token").unwrap_or(""),
                    username: &username,
                    error: Some(format!(
                        "Too many failed sign-ins. Try again in {minutes} minute(s)."
                    )),
                },
            );
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(wait.max(1)),
            );
            return response;
        }
        Err(e) => return page(&OAuthError::from(e)),
    };
    render(
        status,
        &LoginPage {
            client_name: client
                .metadata
                .client_name
                .as_deref()
                .unwrap_or(&client.client_id),
            request_id: &parked.id,
            csrf_token: params.get("csrf_token").unwrap_or(""),
            username: &username,
            error: Some(message),
        },
    )
}

/// Throttle check, password check, counters and the new session, on the blocking pool.
async fn sign_in(
    state: &AppState,
    username: String,
    given: String,
    address: String,
    previous: Option<String>,
) -> Result<Outcome, StorageError> {
    let now = state.clock.now();
    let rules = state.settings.login.clone();
    let lifetime = state.settings.sessions.lifetime.as_secs() as i64;
    let dummy = state.dummy_password_hash.clone();
    state
        .db
        .run(move |conn| {
            let account = throttle::account_key(&username);
            let keys = [account.clone(), throttle::address_key(&address)];
            if let Some(wait) = throttle::locked_for(conn, &keys, now)? {
                return Ok(Outcome::Locked(wait));
            }
            let user = users::by_username(conn, &username)?;
            let phc = user
                .as_ref()
                .map(|u| u.password_hash.as_str())
                .unwrap_or_else(|| dummy.get());
            let matches = password::verify(&given, phc);
            match user {
                Some(user) if matches && !user.disabled => {
                    throttle::clear(conn, &account)?;
                    let (cookie, _) =
                        session::start(conn, user, previous.as_deref(), now, lifetime)?;
                    Ok(Outcome::SignedIn(cookie))
                }
                _ => {
                    for key in &keys {
                        throttle::record_failure(conn, key, now, &rules)?;
                    }
                    Ok(Outcome::Failed)
                }
            }
        })
        .await
}
