//! The console's audit log: the events `sigil audit list` and `GET /admin/api/audit` read
//! (`admin::audit`), filtered by actor, target, event type and time, newest first, a page at a
//! time ("Older events" continues below the last one shown).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{page, viewer, Chrome};
use crate::admin::audit::Query;
use crate::audit::EventType;
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::storage::audit::{self as stored, EventRow};
use crate::web::first_party::failed;

/// Events per page.
const PAGE: i64 = 50;

/// One event as the tables show it.
pub struct EventView {
    pub time: String,
    pub actor: String,
    pub address: String,
    pub kind: String,
    pub target: String,
    pub failed: bool,
    pub details: String,
}

/// The rows as the tables show them.
pub fn rows(rows: &[EventRow]) -> Vec<EventView> {
    rows.iter()
        .map(|r| EventView {
            // UTC, as the table's caption says: "2026-11-28 10:00:00".
            time: rfc3339(r.time).replace('T', " ").replace('Z', ""),
            actor: match &r.actor_name {
                Some(name) => name.clone(),
                None => r.actor.clone(),
            },
            address: r.client_address.clone().unwrap_or_default(),
            kind: r.event_type.clone(),
            target: r.target.clone().unwrap_or_default(),
            failed: r.outcome != "success",
            details: if r.details == "{}" {
                String::new()
            } else {
                r.details.clone()
            },
        })
        .collect()
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    chrome: Chrome,
    actor: String,
    target: String,
    kind: String,
    since: String,
    until: String,
    types: Vec<&'static str>,
    events: Vec<EventView>,
    /// The query of the next (older) page, when this one is full.
    older: Option<String>,
}

/// GET /admin/audit?actor=&target=&type=&since=&until=&before=
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let chrome = admin.chrome("audit", &req, &state);
    let query = web::Query::<Query>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| "This filter is not understood: use the form below.".to_string());
    let given = |v: &Option<String>| v.clone().unwrap_or_default();
    let (mut view, query) = match query {
        Ok(q) => (
            AuditPage {
                chrome,
                actor: given(&q.actor),
                target: given(&q.target),
                kind: given(&q.event_type),
                since: given(&q.since),
                until: given(&q.until),
                types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
                events: Vec::new(),
                older: None,
            },
            Some(q),
        ),
        Err(e) => (empty(chrome.with_error(e)), None),
    };
    let Some(mut query) = query else {
        return page(StatusCode::BAD_REQUEST, &view);
    };
    query.limit = Some(PAGE);
    let filter = match query.filter(state.clock.now()) {
        Ok(filter) => filter,
        Err(e) => {
            view.chrome = view
                .chrome
                .with_error(format!("The filter is not right: {e}."));
            return page(StatusCode::BAD_REQUEST, &view);
        }
    };
    let listed = state.db.run(move |c| stored::list(c, &filter)).await;
    let found = match listed {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    if found.len() as i64 >= PAGE {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &view.actor),
            ("target", &view.target),
            ("type", &view.kind),
            ("since", &view.since),
            ("until", &view.until),
        ] {
            if !v.is_empty() {
                next.append_pair(k, v);
            }
        }
        if let Some(last) = found.last() {
            next.append_pair("before", &last.id.to_string());
        }
        view.older = Some(next.finish());
    }
    view.events = rows(&found);
    page(StatusCode::OK, &view)
}

fn empty(chrome: Chrome) -> AuditPage {
    AuditPage {
        chrome,
        actor: String::new(),
        target: String::new(),
        kind: String::new(),
        since: String::new(),
        until: String::new(),
        types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
        events: Vec::new(),
        older: None,
    }
}
