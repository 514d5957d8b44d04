//! The console's resource servers (RFC 8707): the list, registration from a form (URI and
//! scopes) or pasted metadata JSON (`admin::resources::create`, as `sigil resource add`
//! does), editing the metadata JSON (`admin::resources::update`, the admin API's PUT), removal.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{json, Value};

use super::{change, done, page, refusal, viewer, Admin, Chrome};
use crate::admin::resources::{self as admin_resources, ResourceError, ResourceRecord};
use crate::state::AppState;
use crate::web::first_party::failed;

const PATH: &str = "/admin/resources";

#[derive(Template)]
#[template(path = "admin/resources.html")]
struct ResourcesPage {
    chrome: Chrome,
    resources: Vec<Listed>,
    resource: String,
    scope: String,
    metadata: String,
}

/// GET /admin/resources
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let chrome = admin.chrome("resources", &req, &state);
    render(&state, chrome, StatusCode::OK, Default::default()).await
}

/// A registered resource server and its metadata as the edit form shows it.
struct Listed {
    record: ResourceRecord,
    json: String,
}

async fn render(
    state: &AppState,
    chrome: Chrome,
    status: StatusCode,
    (resource, scope, metadata): (String, String, String),
) -> HttpResponse {
    let resources = match state.db.run(admin_resources::list).await {
        Ok(resources) => resources,
        Err(e) => return failed(e),
    };
    let resources = resources
        .into_iter()
        .map(|record| Listed {
            json: serde_json::to_string_pretty(&record.metadata).unwrap_or_default(),
            record,
        })
        .collect();
    let view = ResourcesPage {
        chrome,
        resources,
        resource,
        scope,
        metadata,
    };
    page(status, &view)
}

async fn refused(
    req: &HttpRequest,
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    message: String,
    form: (String, String, String),
) -> HttpResponse {
    let chrome = admin.chrome("resources", req, state).with_error(message);
    render(state, chrome, status, form).await
}

/// POST /admin/resources, fields `resource` and `scope`, or `metadata` (JSON).
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let field = |k: &str| params.get(k).unwrap_or("").trim().to_string();
    let form = (field("resource"), field("scope"), field("metadata"));
    let json = if form.2.is_empty() {
        json!({ "resource": form.0, "scope": form.1 }).to_string()
    } else {
        match serde_json::from_str::<Value>(&form.2) {
            Ok(v) if v.is_object() => form.2.clone(),
            _ => {
                let message = "The metadata must be a JSON object. Nothing was changed.".into();
                return refused(&req, &state, &admin, StatusCode::BAD_REQUEST, message, form).await;
            }
        }
    };
    let (by, now) = (admin.by.clone(), state.clock.now());
    let registered = state
        .db
        .run(move |c| admin_resources::create(c, json.as_bytes(), &by, now))
        .await;
    answer(
        &req,
        &state,
        &admin,
        registered,
        "resource-added",
        "registered",
        form,
    )
    .await
}

/// POST /admin/resources/update, fields `resource` and `metadata` (the full metadata JSON, its
/// `resource` unchanged).
pub async fn update(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let resource = params.get("resource").unwrap_or("").to_string();
    let metadata = params.get("metadata").unwrap_or("").trim().to_string();
    let (by, now) = (admin.by.clone(), state.clock.now());
    let json = metadata.clone();
    let updated = state
        .db
        .run(move |c| admin_resources::update(c, &resource, json.as_bytes(), &by, now))
        .await;
    let form = (String::new(), String::new(), String::new());
    answer(
        &req,
        &state,
        &admin,
        updated,
        "resource-updated",
        "changed",
        form,
    )
    .await
}

/// A change's outcome: 303 with `notice`, or the page with the refusal in plain words.
async fn answer(
    req: &HttpRequest,
    state: &AppState,
    admin: &Admin,
    outcome: Result<ResourceRecord, ResourceError>,
    notice: &str,
    verb: &str,
    form: (String, String, String),
) -> HttpResponse {
    let (status, message) = match outcome {
        Ok(_) => return done(state, PATH, notice),
        Err(ResourceError::Storage(e)) => match refusal(&e) {
            Some(refused) => refused,
            None => return failed(e),
        },
        Err(ResourceError::Metadata(e)) => (
            StatusCode::BAD_REQUEST,
            format!(
                "The resource server was not {verb}: {}. Nothing was changed.",
                e.description.as_deref().unwrap_or(e.code.as_str())
            ),
        ),
    };
    refused(req, state, admin, status, message, form).await
}

/// POST /admin/resources/remove, field `resource`.
pub async fn remove(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let resource = params.get("resource").unwrap_or("").to_string();
    let (by, now) = (admin.by.clone(), state.clock.now());
    let removed = state
        .db
        .run(move |c| admin_resources::remove(c, &resource, &by, now))
        .await;
    match removed {
        Ok(()) => done(&state, PATH, "resource-removed"),
        Err(e) => match refusal(&e) {
            Some((status, message)) => {
                refused(&req, &state, &admin, status, message, Default::default()).await
            }
            None => failed(e),
        },
    }
}
