//! Second factors on the account page: an authenticator app (TOTP) — started, shown as a QR
//! code (inline SVG) and its secret, turned on only by a first code, removable — and recovery
//! codes, shown once when made. Every change passes `super::guard` (same origin, CSRF, a sign-in
//! within 5 minutes) and is an audit event, stored with the change.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use serde_json::json;

use super::{event, failed, guard, page_with, to_page, Extra};
use crate::audit::EventType;
use crate::crypto::totp;
use crate::factors;
use crate::state::AppState;
use crate::storage::{atomically, StorageError};

/// What the page shows of the user's authenticator app.
pub enum TotpView {
    Off,
    /// Started, waiting for its first code: the QR code and the secret to type.
    Waiting {
        qr_svg: String,
        secret: String,
    },
    On,
}

/// The factors part of the page for `user_id`.
pub async fn view(
    state: &AppState,
    user_id: &str,
    username: &str,
) -> Result<(TotpView, i64), StorageError> {
    let (id, master) = (user_id.to_string(), state.master.clone());
    let (totp_row, recovery_left) = state
        .db
        .run(move |c| -> Result<_, StorageError> {
            Ok((
                factors::totp_of(c, &master, &id)?,
                crate::storage::factors::unused_recovery_codes(c, &id)?,
            ))
        })
        .await?;
    let view = match totp_row {
        None => TotpView::Off,
        Some((row, _)) if row.confirmed_at.is_some() => TotpView::On,
        Some((_, secret)) => {
            let uri = totp::uri(&state.settings.totp_issuer(), username, &secret);
            TotpView::Waiting {
                qr_svg: totp::qr_svg(&uri),
                secret: totp::encode_secret(&secret),
            }
        }
    };
    Ok((view, recovery_left))
}

/// POST /account/totp/start: a new secret, waiting for its first code (starting again replaces
/// a waiting one; a factor that is on is removed first, deliberately).
pub async fn start(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let account = match guard(&req, &state, &body).await {
        Ok((_, account)) => account,
        Err(response) => return response,
    };
    let (user_id, now, master) = (
        account.session.user.id.clone(),
        state.clock.now(),
        state.master.clone(),
    );
    let id = user_id.clone();
    let started_event = event(
        &req,
        &state,
        &account.session.user,
        EventType::FactorTotpStarted,
    )
    .details(json!({ "via": "account" }));
    let started = state
        .db
        .run(move |c| {
            atomically(c, |c| -> Result<bool, StorageError> {
                if crate::storage::factors::totp(c, &id)?.is_some_and(|t| t.confirmed_at.is_some())
                {
                    return Ok(false);
                }
                factors::enrol_totp(c, &master, &id, false, now)?;
                started_event.record(c, now)?;
                Ok(true)
            })
        })
        .await;
    match started {
        Ok(true) => to_page(&state, Some("totp-started")),
        Ok(false) => to_page(&state, Some("totp-on")),
        Err(e) => failed(e),
    }
}

/// POST /account/totp/confirm, field `otp`: the first code turns the factor on.
pub async fn confirm(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, account) = match guard(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let code = params.get("otp").unwrap_or("").to_string();
    let (user_id, now, master) = (
        account.session.user.id.clone(),
        state.clock.now(),
        state.master.clone(),
    );
    let id = user_id.clone();
    let added = event(
        &req,
        &state,
        &account.session.user,
        EventType::FactorTotpAdded,
    )
    .details(json!({ "via": "account" }));
    match state
        .db
        .run(move |c| {
            atomically(c, |c| {
                let confirmed = factors::confirm_totp(c, &master, &id, &code, now)?;
                if confirmed {
                    added.record(c, now)?;
                }
                Ok::<_, StorageError>(confirmed)
            })
        })
        .await
    {
        Ok(true) => to_page(&state, Some("totp-added")),
        Ok(false) => {
            page_with(
                &state,
                &account,
                StatusCode::BAD_REQUEST,
                None,
                Some("That code is not right. Enter the 6-digit code your app shows now."),
                Extra::default(),
            )
            .await
        }
        Err(e) => failed(e),
    }
}

/// POST /account/totp/remove: the authenticator app and the recovery codes go.
pub async fn remove(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let account = match guard(&req, &state, &body).await {
        Ok((_, account)) => account,
        Err(response) => return response,
    };
    let id = account.session.user.id.clone();
    let removed = event(
        &req,
        &state,
        &account.session.user,
        EventType::FactorTotpRemoved,
    )
    .details(json!({ "via": "account" }));
    let now = state.clock.now();
    let done = state
        .db
        .run(move |c| {
            atomically(c, |c| {
                if factors::remove_totp(c, &id)? {
                    removed.record(c, now)?;
                }
                Ok::<_, StorageError>(())
            })
        })
        .await;
    match done {
        Ok(()) => to_page(&state, Some("totp-removed")),
        Err(e) => failed(e),
    }
}

/// POST /account/recovery-codes: ten new codes, shown on this answer only (the earlier ones
/// stop working).
pub async fn recovery_codes(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let account = match guard(&req, &state, &body).await {
        Ok((_, account)) => account,
        Err(response) => return response,
    };
    let (id, now) = (account.session.user.id.clone(), state.clock.now());
    let issued = event(
        &req,
        &state,
        &account.session.user,
        EventType::FactorRecoveryCodesIssued,
    )
    .details(json!({ "via": "account" }));
    match state
        .db
        .run(move |c| {
            atomically(c, |c| {
                let codes = factors::new_recovery_codes(c, &id, now)?;
                issued.record(c, now)?;
                Ok::<_, StorageError>(codes)
            })
        })
        .await
    {
        Ok(codes) => {
            page_with(
                &state,
                &account,
                StatusCode::OK,
                Some("New recovery codes were made. Keep them somewhere safe: they are shown only now, and the earlier ones no longer work."),
                None,
                Extra { new_codes: codes },
            )
            .await
        }
        Err(e) => failed(e),
    }
}
