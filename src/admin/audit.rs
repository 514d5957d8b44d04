//! Reading the audit log, shared by `sigil audit list` and `GET /admin/api/audit` (and the
//! console to come): the filters as people write them, checked, and each event as JSON.
//!
//! ```text
//! GET /admin/api/audit?actor=&target=&type=&since=&until=&before=&limit=
//!     → {"events": [...newest first...], "next": <before-id for the next page, or null>}
//! ```

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{caller, ApiError};
use crate::audit::EventType;
use crate::clock::rfc3339;
use crate::config::DurationSetting;
use crate::state::AppState;
use crate::storage::audit::{self as stored, EventRow, Filter};

/// Events per page unless a limit is given.
pub const DEFAULT_LIMIT: i64 = 100;

/// A point in time as written in a filter: a duration back from `now` (`1h`: an hour ago), an
/// RFC 3339 date (`2026-11-28T10:00:00Z`), or Unix seconds.
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return if secs >= 0 {
            Ok(secs)
        } else {
            Err(format!("time {text:?} is before 1970"))
        };
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .map_err(|_| format!("time {text:?} is before 1970"));
    }
    let ago: DurationSetting = text.parse().map_err(|_| {
        format!("{text:?} is neither a duration (1h, 7d), an RFC 3339 time, nor Unix seconds")
    })?;
    Ok(now.saturating_sub(ago.as_secs() as i64))
}

/// The filters as given (CLI options or query parameters), all optional.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Query {
    pub actor: Option<String>,
    pub target: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

impl Query {
    /// The storage filter, or what is wrong with the query, in words. An empty parameter is
    /// no filter.
    pub fn filter(self, now: i64) -> Result<Filter, String> {
        let given = |v: Option<String>| v.filter(|s| !s.is_empty());
        let event_type = given(self.event_type)
            .map(|t| t.parse::<EventType>().map(|t| t.as_str().to_string()))
            .transpose()?;
        let time = |v: Option<String>| given(v).map(|t| parse_time(&t, now)).transpose();
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=stored::MAX_LIMIT).contains(&limit) {
            return Err(format!("limit must be 1–{}", stored::MAX_LIMIT));
        }
        if self.before.is_some_and(|b| b < 1) {
            return Err("before must be an event id (1 or more)".into());
        }
        Ok(Filter {
            actor: given(self.actor),
            target: given(self.target),
            event_type,
            since: time(self.since)?,
            until: time(self.until)?,
            before: self.before,
            limit,
        })
    }
}

/// One event as JSON: its id, the time (RFC 3339), who, from where, what, on what, how it
/// went, and the details object.
pub fn describe(row: &EventRow) -> Value {
    json!({
        "id": row.id,
        "time": rfc3339(row.time),
        "actor_kind": row.actor_kind,
        "actor": row.actor,
        "actor_name": row.actor_name,
        "client_address": row.client_address,
        "type": row.event_type,
        "target": row.target,
        "outcome": row.outcome,
        "details": serde_json::from_str::<Value>(&row.details).unwrap_or(Value::Null),
    })
}

/// A page of events and the `before` of the next page: the oldest id shown when the page is
/// full (there may be more), else none.
pub fn page(rows: &[EventRow], limit: i64) -> Value {
    let full = rows.len() as i64 >= limit;
    let next = rows.last().filter(|_| full).map(|r| r.id);
    json!({
        "events": rows.iter().map(describe).collect::<Vec<_>>(),
        "next": next,
    })
}

/// The audit log, newest first, filtered; `next` is the `before` of the following page.
#[utoipa::path(get, path = "/admin/api/audit", tag = "audit", params(Query),
    responses(
        (status = 200, description = "{events: [...], next}", body = Object),
        (status = 400, description = "a bad filter", body = super::api::ErrorBody)))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let query = web::Query::<Query>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("the query is not understood: {e}")))?
        .into_inner();
    let filter = query
        .filter(state.clock.now())
        .map_err(ApiError::bad_request)?;
    let limit = filter.limit;
    let rows = state
        .db
        .run(move |conn| stored::list(conn, &filter))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(page(&rows, limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_durations_back_dates_or_unix_seconds() {
        let now = 1_000_000;
        assert_eq!(parse_time("1h", now).unwrap(), now - 3600);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400);
        assert_eq!(parse_time("1700000000", now).unwrap(), 1_700_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("-5", now).is_err());
    }

    #[test]
    fn bad_filters_are_refused_in_words() {
        let q = |f: fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q.filter(0)
        };
        assert!(q(|q| q.event_type = Some("user.nope".into())).is_err());
        assert!(q(|q| q.limit = Some(0)).is_err());
        assert!(q(|q| q.limit = Some(stored::MAX_LIMIT + 1)).is_err());
        assert!(q(|q| q.before = Some(0)).is_err());
        assert!(q(|q| q.since = Some("soon".into())).is_err());
        let ok = q(|q| q.event_type = Some("signin.failed".into())).unwrap();
        assert_eq!(ok.event_type.as_deref(), Some("signin.failed"));
        assert_eq!(ok.limit, DEFAULT_LIMIT);
        // An empty parameter is no filter.
        assert_eq!(q(|q| q.actor = Some(String::new())).unwrap().actor, None);
    }
}
