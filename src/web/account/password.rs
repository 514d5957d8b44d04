//! Change password on the account page: the current password (checked on the password pool and
//! counted like a sign-in failure: `web::throttle` on the account's key and the client
//! address), the new one twice. Success re-hashes on the pool and, like `sigil user passwd`,
//! sets `tokens_valid_after`: every session and token of the user ends (sessions through
//! logout's code, so their clients hear of it), and this browser is signed in afresh — a new IdP
//! session, and the account session bound to it.

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::SITE;
use super::{address, audit, broken, event, failed, guard, page, to_page};
use crate::admin::users::{check_password, UserError};
use crate::audit::EventType;
use crate::crypto::password::{Busy, Lane};
use crate::state::AppState;
use crate::storage::{users, StorageError};
use crate::web::first_party::{self as session, Account};
use crate::web::login::{verify_reserved, Verified, BUSY_RETRY_AFTER};
use crate::web::{cookies, logout, session as idp, throttle};

const WRONG: &str = "Your current password is not correct. Nothing was changed.";
const BUSY: &str = "Too many password checks at once. Try again in a few seconds.";

/// POST /account/password, fields `current_password`, `new_password`, `repeat_password`.
pub async fn change_password(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, account) = match guard(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let current = params.get("current_password").unwrap_or("").to_string();
    let new = params.get("new_password").unwrap_or("").to_string();
    if params.get("repeat_password").unwrap_or("") != new {
        let error = "The new password and its repetition differ. Nothing was changed.";
        return page(&state, &account, StatusCode::BAD_REQUEST, None, Some(error)).await;
    }
    if let Err(UserError::Invalid(why)) = check_password(&new) {
        let error = format!("The new {why}. Nothing was changed.");
        return page(
            &state,
            &account,
            StatusCode::BAD_REQUEST,
            None,
            Some(&error),
        )
        .await;
    }
    let answer = match checked(&req, &state, &account, current).await {
        Ok(Check::Right) => changed(&req, &state, &account, new).await,
        Ok(Check::Wrong) => {
            let kind = EventType::AccountPasswordChangeRefused;
            audit(
                &state,
                event(&req, &state, &account.session.user, kind).failed(),
            )
            .await;
            page(
                &state,
                &account,
                StatusCode::UNAUTHORIZED,
                None,
                Some(WRONG),
            )
            .await
        }
        Ok(Check::Locked(wait)) => {
            let minutes = (wait + 59) / 60;
            let error = format!(
                "Too many wrong passwords. Try again in {minutes} minute(s). Nothing was changed."
            );
            let mut r = page(
                &state,
                &account,
                StatusCode::TOO_MANY_REQUESTS,
                None,
                Some(&error),
            )
            .await;
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(wait.max(1)));
            r
        }
        Ok(Check::Busy) => busy(&state, &account).await,
        Err(e) => failed(e),
    };
    // Refusals wait like the login form's (a guessing script gains nothing here either).
    if answer.status() != StatusCode::SEE_OTHER {
        state
            .tarpit
            .hold(state.settings.login.refusal_delay.0)
            .await;
    }
    answer
}

enum Check {
    Right,
    Wrong,
    Locked(i64),
    Busy,
}

/// The current password, checked like a sign-in: the slots first, the pool, then the outcome.
async fn checked(
    req: &HttpRequest,
    state: &AppState,
    account: &Account,
    password: String,
) -> Result<Check, StorageError> {
    let now = state.clock.now();
    let limits = throttle::limits(&state.settings.login);
    let bucket = address(req, state).throttle_bucket();
    let own = throttle::account_key(&account.session.user.username);
    let address_key = throttle::address_key(&bucket);
    let reserved = state
        .db
        .run(move |c| throttle::reserve(c, Some(own), address_key, now, limits))
        .await?;
    let reservation = match reserved {
        Ok(r) => r,
        Err(wait) => return Ok(Check::Locked(wait)),
    };
    let phc = Some(account.session.user.password_hash.clone());
    // A signed-in browser's check: the priority lane, as for a trusted device.
    let (matches, reservation) =
        match verify_reserved(state, reservation, password, phc, Lane::Priority, &bucket).await? {
            Verified::Checked(matches, reservation) => (matches, reservation),
            Verified::Busy => return Ok(Check::Busy),
        };
    state
        .db
        .run(move |c| -> Result<_, StorageError> {
            if matches {
                throttle::succeeded(c, &reservation)?;
                return Ok(Check::Right);
            }
            for key in throttle::failed(c, &reservation, now, limits)? {
                tracing::info!(%key, "sign-ins locked out after repeated failures");
            }
            Ok(Check::Wrong)
        })
        .await
}

async fn busy(state: &AppState, account: &Account) -> HttpResponse {
    let mut r = page(
        state,
        account,
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        Some(BUSY),
    )
    .await;
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(BUSY_RETRY_AFTER));
    r
}

/// The right current password: the new hash, `tokens_valid_after`, every session ended, and
/// this browser signed in afresh.
async fn changed(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    account: &Account,
    new: String,
) -> HttpResponse {
    let bucket = address(req, state).throttle_bucket();
    let hash = match state.passwords.hash(new, Lane::Priority, &bucket).await {
        Ok(Some(hash)) => hash,
        Ok(None) => return broken("the password pool closed"),
        Err(Busy) => return busy(state, account).await,
    };
    let user = account.session.user.clone();
    let changed_at = state.clock.now();
    let username = user.username.clone();
    let changed_event = event(req, state, &user, EventType::AccountPasswordChanged);
    let stored = state
        .db
        .run(move |c| {
            crate::storage::transaction::<_, StorageError, _>(c, |c| {
                users::set_password(c, &username, &hash, changed_at)?;
                users::set_tokens_valid_after(c, &username, changed_at)?;
                changed_event.record(c, changed_at)
            })
        })
        .await;
    if let Err(e) = stored {
        return failed(e);
    }
    state.verdicts.invalidate();
    // Every session, this browser's too: their grants are revoked and their clients told.
    if let Err(e) = logout::end_every_session(state, &user.id).await {
        return failed(e);
    }
    // Sessions count as signed in after `tokens_valid_after` only from the next second on:
    // wait for it (at most a second) rather than date the new session ahead.
    while state.clock.now() <= changed_at {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (now, lifetime) = (
        state.clock.now(),
        state.settings.sessions.lifetime.as_secs() as i64,
    );
    let origin = idp::Origin::of(req, address(req, state).to_string());
    let amr = account.session.amr.clone();
    let user_id = user.id.clone();
    let started = state
        .db
        .run(move |c| -> Result<_, StorageError> {
            let Some(user) = users::by_id(c, &user_id)? else {
                return Ok(None);
            };
            idp::start(c, user, None, now, lifetime, amr, &origin).map(Some)
        })
        .await;
    let (cookie, started) = match started {
        Ok(Some(started)) => started,
        Ok(None) => return broken("the user went away while changing their password"),
        Err(e) => return failed(e),
    };
    let claims = session::claims_for(state, &started, now, &started.acr);
    let mut response = to_page(state, Some("password"));
    for c in [
        cookies::build(&state.settings, cookies::SESSION, cookie),
        SITE.cookie(state, &claims),
    ] {
        if let Err(e) = response.add_cookie(&c) {
            return broken(e);
        }
    }
    response
}
