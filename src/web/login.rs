//! The login page: GET shows the form, POST checks the password (argon2id on the blocking
//! pool; unknown users verify a dummy hash so answer and timing match a wrong password), starts
//! a fresh session and answers 303.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::flow::{self, Parked};
use super::{client_address, cookies, forms, session, throttle};
use crate::endpoints::authorize::{known_client, page};
use crate::endpoints::pages::{csp_with_form_target, render_with_csp};
use crate::endpoints::paths;
use crate::oauth::client_metadata::Client;
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
    let at = match forms::page_request(&req, &state).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let hint = at.parked.request.login_hint.as_deref().unwrap_or("");
    login_page(StatusCode::OK, &at.client, &at.parked, &at.csrf, hint, None)
}

fn login_page(
    status: StatusCode,
    client: &Client,
    parked: &Parked,
    csrf_token: &str,
    username: &str,
    error: Option<String>,
) -> HttpResponse {
    let page = LoginPage {
        client_name: client.display_name(),
        request_id: &parked.id,
        csrf_token,
        username,
        error,
    };
    render_with_csp(
        status,
        &page,
        &csp_with_form_target(&parked.request.redirect_uri),
    )
}

enum Outcome {
    /// The session cookie's value and the session's `sid`.
    SignedIn(String, String),
    Failed,
    Locked(i64),
}

pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, parked) = match forms::check(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let client = match known_client(&state, Some(&parked.request.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    let username = params.get("username").unwrap_or("").to_string();
    let given = params.get("password").unwrap_or("").to_string();
    let address = client_address::of(&req, &state.settings.http.trusted_proxies).throttle_bucket();
    let previous = cookies::read(&req, &state.settings, cookies::SESSION);
    let outcome = sign_in(&state, username.clone(), given, address, previous).await;
    let csrf = params.get("csrf_token").unwrap_or("");
    match outcome {
        Ok(Outcome::SignedIn(cookie_value, sid)) => {
            // Only this sign-in satisfies the request's prompt=login / max_age (SECURITY.md 26).
            if let Err(e) = flow::mark_signed_in(&state, &parked.id, sid).await {
                return page(&OAuthError::from(e));
            }
            let mut location =
                url::Url::parse(&state.settings.endpoint_url(paths::AUTHORIZE_RESUME))
                    .expect("issuer URL");
            location
                .query_pairs_mut()
                .append_pair("request", &parked.id);
            // SECURITY.md attack 16: 303, so the browser follows with GET and drops the body.
            HttpResponse::SeeOther()
                .insert_header(("Location", location.as_str()))
                .insert_header(("Cache-Control", "no-store"))
                .cookie(cookies::build(
                    &state.settings,
                    cookies::SESSION,
                    cookie_value,
                ))
                .finish()
        }
        Ok(Outcome::Failed) => login_page(
            StatusCode::UNAUTHORIZED,
            &client,
            &parked,
            csrf,
            &username,
            Some(FAILED.to_string()),
        ),
        Ok(Outcome::Locked(wait)) => {
            let minutes = (wait + 59) / 60;
            let message = format!("Too many failed sign-ins. Try again in {minutes} minute(s).");
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                &client,
                &parked,
                csrf,
                &username,
                Some(message),
            );
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(wait.max(1)),
            );
            response
        }
        Err(e) => page(&OAuthError::from(e)),
    }
}

/// Throttle check and user lookup (database), the password check (password pool), then the
/// counters or the new session (database). The lock is checked again before a session starts,
/// so that guesses sent in parallel cannot slip past the limit.
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
    let account = throttle::account_key(&username);
    let keys = [account.clone(), throttle::address_key(&address)];
    let lookup_keys = keys.clone();
    let (locked, user) = state
        .db
        .run(move |conn| -> Result<_, StorageError> {
            let locked = throttle::locked_for(conn, &lookup_keys, now)?;
            let user = match locked {
                Some(_) => None,
                None => users::by_username(conn, &username)?,
            };
            Ok((locked, user))
        })
        .await?;
    if let Some(wait) = locked {
        return Ok(Outcome::Locked(wait));
    }
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let matches = state.passwords.verify(given, phc).await;
    state
        .db
        .run(move |conn| match user {
            Some(user) if matches && !user.disabled => {
                if let Some(wait) = throttle::locked_for(conn, &keys, now)? {
                    return Ok(Outcome::Locked(wait));
                }
                throttle::clear(conn, &account)?;
                let (cookie, session) =
                    session::start(conn, user, previous.as_deref(), now, lifetime)?;
                Ok(Outcome::SignedIn(cookie, session.sid))
            }
            _ => {
                for key in &keys {
                    throttle::record_failure(conn, key, now, &rules)?;
                }
                Ok(Outcome::Failed)
            }
        })
        .await
}
