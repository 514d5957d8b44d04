//! `/password/set?token=…`: a user created without a password (or sent a new link by an
//! administrator) chooses one (`admin::users::links`). GET shows the form when the link is
//! live; POST — same origin, the CSRF cookie's token, the link still live — hashes the password
//! on the password pool and then uses the link in one transaction (consumed once even under a
//! race), which ends every earlier token and session of the user. An unknown, used or expired
//! link gets a plain error page and changes nothing.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use subtle::ConstantTimeEq;

use super::{client_address, cookies, forms, logout};
use crate::admin::users::links::{self, LinkError};
use crate::crypto::password::{Busy, Lane};
use crate::crypto::random;
use crate::endpoints::pages::{error_page, render, unavailable_page};
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::StorageError;

#[derive(Template)]
#[template(path = "password_set.html")]
struct SetPage<'a> {
    action: &'a str,
    username: &'a str,
    token: &'a str,
    csrf_token: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "password_set_done.html")]
struct DonePage<'a> {
    username: &'a str,
}

fn invalid() -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "This password link is not valid: it may have expired or been used already. Ask your \
         administrator for a new one.",
    )
}

fn failed(e: StorageError) -> HttpResponse {
    if e.is_unavailable() {
        return unavailable_page();
    }
    tracing::error!(error = %e, "password link");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "Something went wrong on our side. Try again later.",
    )
}

/// The form, with this browser's CSRF token (made now if it has none).
fn form(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    username: &str,
    token: &str,
    error: Option<&str>,
) -> HttpResponse {
    let existing = cookies::read(req, &state.settings, cookies::CSRF).filter(|c| c.len() >= 32);
    let csrf = existing.clone().unwrap_or_else(random::secret_256);
    let mut response = render(
        status,
        &SetPage {
            action: links::PATH,
            username,
            token,
            csrf_token: &csrf,
            error,
        },
    );
    if existing.is_none() {
        let _ = response.add_cookie(&cookies::build(&state.settings, cookies::CSRF, csrf));
    }
    response
}

/// The live link's holder, or the answer to give instead.
async fn holder(
    state: &AppState,
    token: &str,
) -> Result<crate::storage::users::UserRow, HttpResponse> {
    if token.is_empty() || token.len() > 128 {
        return Err(invalid());
    }
    let (token, now) = (token.to_string(), state.clock.now());
    match state
        .db
        .run(move |conn| links::holder(conn, &token, now))
        .await
    {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(invalid()),
        Err(e) => Err(failed(e)),
    }
}

/// GET /password/set?token=…
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = match Params::parse(
        req.query_string().as_bytes(),
        state.settings.http.max_param_bytes,
    ) {
        Ok(p) => p,
        Err(_) => return invalid(),
    };
    let token = params.get("token").unwrap_or("");
    match holder(&state, token).await {
        Ok(user) => form(&req, &state, StatusCode::OK, &user.username, token, None),
        Err(response) => response,
    }
}

/// POST /password/set: fields `token`, `password`, `password_confirm`, `csrf_token`.
pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Ok(params) = Params::parse(&body, state.settings.http.max_param_bytes) else {
        return forms::forbidden();
    };
    let csrf = cookies::read(&req, &state.settings, cookies::CSRF).unwrap_or_default();
    let given = params.get("csrf_token").unwrap_or("");
    let token_matches = !csrf.is_empty() && bool::from(csrf.as_bytes().ct_eq(given.as_bytes()));
    if !forms::same_origin(&req, &state) || !token_matches {
        return forms::forbidden();
    }
    let token = params.get("token").unwrap_or("").to_string();
    let user = match holder(&state, &token).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let password = params.get("password").unwrap_or("").to_string();
    let confirmation = params.get("password_confirm").unwrap_or("");
    if let Err(e) = links::check(&password, confirmation) {
        let message = match &e {
            LinkError::Password(m) => format!("{m}. Nothing was changed."),
            _ => e.to_string(),
        };
        return form(
            &req,
            &state,
            StatusCode::BAD_REQUEST,
            &user.username,
            &token,
            Some(&message),
        );
    }
    let address = client_address::of(&req, &state.settings.http.trusted_proxies);
    let hash = match state
        .passwords
        .hash(password, Lane::Priority, &address.throttle_bucket())
        .await
    {
        Ok(Some(hash)) => hash,
        Ok(None) | Err(Busy) => return unavailable_page(),
    };
    let (now, shown_address) = (state.clock.now(), address.to_string());
    let used = state
        .db
        .run(move |conn| links::use_link(conn, &token, &hash, &shown_address, now))
        .await;
    match used {
        Ok(user) => {
            state.verdicts.invalidate();
            // Sessions from before the new password end, their clients told.
            if let Err(e) = logout::end_every_session(&state, &user.id).await {
                return failed(e);
            }
            render(
                StatusCode::OK,
                &DonePage {
                    username: &user.username,
                },
            )
        }
        Err(LinkError::Storage(e)) => failed(e),
        Err(_) => invalid(),
    }
}
