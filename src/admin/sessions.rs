//! Live sessions at Sigil, for the sessions page and the admin API: a page of them (everyone's
//! or one user's), and ending one — with its grants and back-channel logout to the clients that
//! took part, like a sign-out (`web::logout`).

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::users::view::SessionSummary;
use super::users::{existing, UserError};
use crate::audit::{By, EventType};
use crate::state::AppState;
use crate::storage::{atomically, sessions, users, AnyConnection, StorageError};
use crate::web::{backchannel, flow::grant_horizon, logout};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Default, Clone, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Only this user's sessions.
    pub username: Option<String>,
    /// The `next` of the previous page.
    pub before: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

/// Live sessions, newest first; `next` is the `before` of the following page, or null.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    pub next: Option<String>,
}

/// A page cursor: `CREATED_AT.SID` of the last session shown.
fn cursor(text: &str) -> Option<(i64, &str)> {
    let (at, sid) = text.split_once('.')?;
    let ok = !sid.is_empty() && crate::storage::storable(sid);
    ok.then_some((at.parse().ok()?, sid))
}

pub fn list(
    conn: &mut AnyConnection,
    query: &SessionQuery,
    now: i64,
) -> Result<SessionPage, UserError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(UserError::Invalid(format!("limit must be 1–{MAX_LIMIT}")));
    }
    let before = match query.before.as_deref().filter(|b| !b.is_empty()) {
        Some(text) => Some(cursor(text).ok_or_else(|| {
            UserError::Invalid("before must be the next of an earlier page".into())
        })?),
        None => None,
    };
    let user = match query.username.as_deref().filter(|u| !u.is_empty()) {
        Some(username) => Some(existing(conn, username)?),
        None => None,
    };
    let mut rows = sessions::live_page(
        conn,
        user.as_ref().map(|u| u.id.as_str()),
        before,
        limit + 1,
        now,
    )?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let names = users::usernames(conn, &ids)?;
    Ok(SessionPage {
        next: rows
            .last()
            .filter(|_| more)
            .map(|r| format!("{}.{}", r.created_at, r.sid)),
        sessions: rows
            .iter()
            .map(|r| SessionSummary::of(r, names.get(&r.user_id).cloned()))
            .collect(),
    })
}

/// Ends the live session `sid`: the session and its grants without `offline_access` end with
/// the audit event in one transaction; then the clients that took part hear of it
/// (back-channel logout). `NotFound` when no live session has that id.
pub async fn end(state: &web::Data<AppState>, sid: &str, by: &By) -> Result<(), StorageError> {
    let (owned, by, now) = (sid.to_string(), by.clone(), state.clock.now());
    let horizon = grant_horizon(&state.settings);
    let (user_id, clients) = state
        .db
        .run(move |conn| {
            atomically(conn, |conn| {
                let row = sessions::live_by_sid(conn, &owned, now)?
                    .ok_or_else(|| StorageError::NotFound(format!("no live session {owned:?}")))?;
                let clients = logout::end_in_db(conn, &row.id_hash, &row.sid, now, horizon)?;
                let username = users::by_id(conn, &row.user_id)?.map(|u| u.username);
                by.event(EventType::SessionEnded)
                    .target(owned.as_str())
                    .details(json!({ "username": username, "clients": clients }))
                    .record(conn, now)?;
                Ok::<_, StorageError>((row.user_id, clients))
            })
        })
        .await?;
    state.verdicts.invalidate();
    backchannel::notify(state, &user_id, sid, clients);
    Ok(())
}

/// Ends every live session of `username` (before disabling them or logging them out
/// everywhere), with back-channel logout; how many ended. `NotFound` for an unknown user.
pub async fn end_all_of_user(
    state: &web::Data<AppState>,
    username: &str,
) -> Result<usize, StorageError> {
    let name = username.to_string();
    let user = state.db.run(move |conn| existing(conn, &name)).await?;
    logout::end_every_session(state, &user.id).await
}
