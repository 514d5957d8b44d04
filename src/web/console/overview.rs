//! The console's overview: how many users, clients, resource servers and signing keys there
//! are, what each section is for, and the latest audit events.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::audit_log::{rows, EventView};
use super::{page, viewer, Chrome};
use crate::state::AppState;
use crate::storage::audit::Filter;
use crate::storage::{clients, resources, signing_keys, users, StorageError};
use crate::web::first_party::failed;

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct Overview {
    chrome: Chrome,
    users: i64,
    clients: usize,
    resources: usize,
    keys: usize,
    events: Vec<EventView>,
}

/// GET /admin/
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let counted = state
        .db
        .run(|c| -> Result<_, StorageError> {
            let latest = Filter {
                limit: 10,
                ..Filter::default()
            };
            Ok((
                users::count(c)?,
                clients::all(c)?.len(),
                resources::all(c)?.len(),
                signing_keys::published(c)?.len(),
                crate::storage::audit::list(c, &latest)?,
            ))
        })
        .await;
    let (users, clients, resources, keys, latest) = match counted {
        Ok(counted) => counted,
        Err(e) => return failed(e),
    };
    let view = Overview {
        chrome: admin.chrome("overview", &req, &state),
        users,
        clients,
        resources,
        keys,
        events: rows(&latest),
    };
    page(StatusCode::OK, &view)
}
