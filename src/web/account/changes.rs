//! The account page's sessions and apps: end one session, end every other one, withdraw an
//! app's consent. Ending goes through logout's own code (`web::logout`), so the session's
//! grants are revoked and its clients get back-channel logout tokens.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{audit, event, failed, guard, page, to_page};
use crate::audit::EventType;
use crate::state::AppState;
use crate::storage::{consents, grants, sessions, StorageError};
use crate::web::flow::grant_horizon;
use crate::web::logout;

/// POST /account/sessions/end, field `session` (the session's `sid`): ends one of the user's
/// other sessions. This browser's own is ended by signing out.
pub async fn end_session(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, account) = match guard(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let sid = params.get("session").unwrap_or("").to_string();
    if sid == account.session.sid {
        return page(
            &state,
            &account,
            StatusCode::BAD_REQUEST,
            None,
            Some("That is the browser you are using now: sign out to end its session."),
        )
        .await;
    }
    let (user_id, now) = (account.session.user.id.clone(), state.clock.now());
    let owned = user_id.clone();
    let found = state
        .db
        .run(move |c| -> Result<_, StorageError> {
            Ok(sessions::live_of_user(c, &owned, now)?
                .into_iter()
                .find(|s| s.sid == sid))
        })
        .await;
    let row = match found {
        Ok(Some(row)) => row,
        Ok(None) => return to_page(&state, Some("session-gone")),
        Err(e) => return failed(e),
    };
    if let Err(e) = logout::end(&state, &row.id_hash, &row.sid, &user_id).await {
        return failed(e);
    }
    let ended = event(
        &req,
        &state,
        &account.session.user,
        EventType::AccountSessionEnded,
    )
    .details(serde_json::json!({ "sid": row.sid }));
    audit(&state, ended).await;
    to_page(&state, Some("session"))
}

/// POST /account/sessions/end-others: ends every session of the user but this browser's.
pub async fn end_other_sessions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let account = match guard(&req, &state, &body).await {
        Ok((_, account)) => account,
        Err(response) => return response,
    };
    let user_id = &account.session.user.id;
    match logout::end_sessions_but(&state, user_id, Some(&account.session.sid)).await {
        Ok(count) => {
            let kind = EventType::AccountOtherSessionsEnded;
            let ended = event(&req, &state, &account.session.user, kind)
                .details(serde_json::json!({ "count": count }));
            audit(&state, ended).await;
            to_page(&state, Some("others"))
        }
        Err(e) => failed(e),
    }
}

/// POST /account/apps/withdraw, field `client_id`: forgets the consent and revokes every grant
/// the user gave that client (its refresh and access tokens stop working; the tokens revision
/// moves, as at `/revoke`, so introspection on every node sees it).
pub async fn withdraw_consent(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, account) = match guard(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let client_id = params.get("client_id").unwrap_or("").to_string();
    let user_id = account.session.user.id.clone();
    let (now, horizon) = (state.clock.now(), grant_horizon(&state.settings));
    let (owned_user, owned_client) = (user_id.clone(), client_id.clone());
    let withdrawn_event = event(
        &req,
        &state,
        &account.session.user,
        EventType::ConsentWithdrawn,
    )
    .target(client_id.as_str());
    let withdrawn = state
        .db
        .run(move |c| {
            crate::storage::transaction::<_, StorageError, _>(c, |c| {
                let had = consents::forget(c, &owned_user, &owned_client)?;
                let mut revoked = 0usize;
                for g in grants::of_user_for_client(c, &owned_user, &owned_client)? {
                    if grants::revoke_grant(c, &g.id, now, horizon)? {
                        revoked += 1;
                    }
                }
                // Recorded with the withdrawal itself, when there was anything to withdraw.
                if had || revoked > 0 {
                    withdrawn_event
                        .details(serde_json::json!({ "grants_revoked": revoked }))
                        .record(c, now)?;
                }
                Ok((had, revoked))
            })
        })
        .await;
    match withdrawn {
        Ok((had, revoked)) => {
            if revoked > 0 {
                state.verdicts.invalidate();
            }
            if !had && revoked == 0 {
                return page(
                    &state,
                    &account,
                    StatusCode::BAD_REQUEST,
                    None,
                    Some("You have not given that app access."),
                )
                .await;
            }
            to_page(&state, Some("consent"))
        }
        Err(e) => failed(e),
    }
}
