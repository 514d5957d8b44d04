//! The console's clients: the list; registration from a form of the common fields or from
//! pasted RFC 7591 metadata JSON (`admin::clients::create`, as `sigil client add` and the admin
//! API do), its secret shown on that one answer; a client's page with its full metadata, which
//! is edited as JSON (`update`: every field); a new secret (`rotate_secret`, shown once);
//! removal.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{json, Map, Value};

use super::{change, done, page, query, refusal, viewer, Admin, Chrome};
use crate::admin::clients::{self as admin_clients, ClientError};
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::{clients, StorageError};
use crate::web::first_party::failed;

const PATH: &str = "/admin/clients";

struct ClientView {
    client_id: String,
    name: String,
    auth_method: String,
    grant_types: String,
    redirect_uris: String,
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage {
    chrome: Chrome,
    clients: Vec<ClientView>,
    /// The creation form as sent, when it is shown again with an error.
    form: Form,
}

/// The creation form's fields.
#[derive(Default)]
struct Form {
    client_id: String,
    client_name: String,
    redirect_uris: String,
    auth_method: String,
    scope: String,
    refresh: bool,
    skip_consent: bool,
    metadata: String,
}

#[derive(Template)]
#[template(path = "admin/client.html")]
struct ClientPage {
    chrome: Chrome,
    client_id: String,
    name: String,
    /// The registered metadata, pretty-printed.
    metadata: String,
    /// A secret made by this answer: shown once.
    secret: Option<String>,
    first_party: bool,
    /// Whether the client authenticates with a secret (one can be rotated).
    has_secret: bool,
}

/// GET /admin/clients
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let chrome = admin.chrome("clients", &req, &state);
    render_list(&state, chrome, StatusCode::OK, Form::default()).await
}

async fn render_list(
    state: &AppState,
    chrome: Chrome,
    status: StatusCode,
    form: Form,
) -> HttpResponse {
    let rows = match state.db.run(clients::all).await {
        Ok(rows) => rows,
        Err(e) => return failed(e),
    };
    let mut views = Vec::new();
    for row in rows {
        let m = match admin_clients::metadata_of(&row) {
            Ok(m) => admin_clients::describe(&row, &m),
            Err(e) => return failed(e),
        };
        let words = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        views.push(ClientView {
            name: m["client_name"].as_str().unwrap_or("").to_string(),
            auth_method: m["token_endpoint_auth_method"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            grant_types: words(&m["grant_types"]),
            redirect_uris: words(&m["redirect_uris"]),
            client_id: row.client_id,
        });
    }
    let view = ClientsPage {
        chrome,
        clients: views,
        form,
    };
    page(status, &view)
}

/// The metadata JSON the form describes: the pasted JSON when given, else the common fields.
fn metadata_json(form: &Form) -> Result<Vec<u8>, String> {
    if !form.metadata.trim().is_empty() {
        let v: Value = serde_json::from_str(&form.metadata)
            .map_err(|e| format!("The metadata is not JSON: {e}. Nothing was changed."))?;
        if !v.is_object() {
            return Err("The metadata must be a JSON object. Nothing was changed.".into());
        }
        return Ok(form.metadata.clone().into_bytes());
    }
    let uris: Vec<&str> = form
        .redirect_uris
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut m = Map::new();
    m.insert("redirect_uris".into(), json!(uris));
    if !form.client_name.is_empty() {
        m.insert("client_name".into(), json!(form.client_name));
    }
    if !form.auth_method.is_empty() {
        m.insert("token_endpoint_auth_method".into(), json!(form.auth_method));
    }
    if !form.scope.is_empty() {
        m.insert("scope".into(), json!(form.scope));
    }
    let mut grants = vec!["authorization_code"];
    if form.refresh {
        grants.push("refresh_token");
    }
    m.insert("grant_types".into(), json!(grants));
    if form.skip_consent {
        m.insert("skip_consent".into(), json!(true));
    }
    Ok(Value::Object(m).to_string().into_bytes())
}

fn form_of(params: &Params) -> Form {
    let text = |k: &str| params.get(k).unwrap_or("").trim().to_string();
    Form {
        client_id: text("client_id"),
        client_name: text("client_name"),
        redirect_uris: params.get("redirect_uris").unwrap_or("").to_string(),
        auth_method: text("token_endpoint_auth_method"),
        scope: text("scope"),
        refresh: params.get("refresh_token") == Some("yes"),
        skip_consent: params.get("skip_consent") == Some("yes"),
        metadata: params.get("metadata").unwrap_or("").to_string(),
    }
}

/// POST /admin/clients: registers a client from the form; the answer shows its secret once.
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let form = form_of(&params);
    let json = match metadata_json(&form) {
        Ok(json) => json,
        Err(e) => return list_error(&req, &state, &admin, StatusCode::BAD_REQUEST, e, form).await,
    };
    let client_id = (!form.client_id.is_empty()).then(|| form.client_id.clone());
    let (master, now, by) = (state.master.clone(), state.clock.now(), admin.by.clone());
    let registered = state
        .db
        .run(move |c| admin_clients::create(c, &master, &json, client_id, &by, now))
        .await;
    let response = match registered {
        Ok(response) => response,
        Err(e) => {
            let (status, message) = match refused_because(e, "registered") {
                Ok(refused) => refused,
                Err(e) => return failed(e),
            };
            return list_error(&req, &state, &admin, status, message, form).await;
        }
    };
    let (described, secret) = without_secret(response);
    let mut chrome = admin.chrome("clients", &req, &state);
    chrome.notice = Some(if secret.is_some() {
        "The client was registered. Copy its secret now: it is shown only this once."
    } else {
        "The client was registered. It has no secret (a public client, or one that signs with \
         its own keys)."
    });
    client_page(chrome, &described, secret)
}

/// Why a change to a client was refused, in words (`Err`: Sigil's own failure).
fn refused_because(e: ClientError, what: &str) -> Result<(StatusCode, String), StorageError> {
    match e {
        ClientError::Storage(e) => refusal(&e).ok_or(e),
        ClientError::Metadata(e) => Ok((
            StatusCode::BAD_REQUEST,
            format!(
                "The client was not {what}: {}. Nothing was changed.",
                e.description.as_deref().unwrap_or(e.code.as_str())
            ),
        )),
    }
}

/// The RFC 7591 response without its secret, and the secret.
fn without_secret(mut response: Value) -> (Value, Option<String>) {
    let secret = response
        .as_object_mut()
        .and_then(|o| {
            o.remove("client_secret_expires_at");
            o.remove("client_secret")
        })
        .and_then(|s| s.as_str().map(str::to_string));
    (response, secret)
}

async fn list_error(
    req: &HttpRequest,
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    message: String,
    form: Form,
) -> HttpResponse {
    let chrome = admin.chrome("clients", req, state).with_error(message);
    render_list(state, chrome, status, form).await
}

fn client_page(chrome: Chrome, described: &Value, secret: Option<String>) -> HttpResponse {
    let client_id = described["client_id"].as_str().unwrap_or("").to_string();
    let view = ClientPage {
        chrome,
        name: described["client_name"].as_str().unwrap_or("").to_string(),
        metadata: serde_json::to_string_pretty(described).unwrap_or_default(),
        secret,
        first_party: is_first_party(&client_id),
        has_secret: described["token_endpoint_auth_method"]
            .as_str()
            .is_some_and(|m| m.starts_with("client_secret")),
        client_id,
    };
    page(StatusCode::OK, &view)
}

/// Sigil's own clients: registered at every start, so the console does not offer to change them.
fn is_first_party(client_id: &str) -> bool {
    [crate::web::account::SITE.client_id, super::SITE.client_id].contains(&client_id)
}

/// GET /admin/clients/view?client_id=
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let admin = match viewer(&req, &state).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let id = query(&req, &state)
        .and_then(|q| q.get("client_id").map(str::to_string))
        .unwrap_or_default();
    let found = state.db.run(move |c| admin_clients::show(c, &id)).await;
    match found {
        Ok(Some(described)) => client_page(admin.chrome("clients", &req, &state), &described, None),
        Ok(None) => {
            let chrome = admin
                .chrome("clients", &req, &state)
                .with_error("There is no such client.");
            render_list(&state, chrome, StatusCode::NOT_FOUND, Form::default()).await
        }
        Err(e) => failed(e),
    }
}

/// POST /admin/clients/{action}, field `client_id`: `remove`, `update` (field `metadata`, the
/// full metadata JSON) or `rotate-secret` (the new secret shown once).
pub async fn act(
    req: HttpRequest,
    action: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, admin) = match change(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let client_id = params.get("client_id").unwrap_or("").to_string();
    let refuse = |status: StatusCode, message: String| {
        let chrome = admin.chrome("clients", &req, &state).with_error(message);
        render_list(&state, chrome, status, Form::default())
    };
    if is_first_party(&client_id) {
        let message = "This is one of Sigil's own clients (its account page or this console): \
                       Sigil registers it at every start, so it is not changed here. Nothing was \
                       changed."
            .to_string();
        return refuse(StatusCode::CONFLICT, message).await;
    }
    let (master, now, by) = (state.master.clone(), state.clock.now(), admin.by.clone());
    let id = client_id.clone();
    let (changed, what) = match action.as_str() {
        "remove" => {
            let removed = state
                .db
                .run(move |c| admin_clients::remove(c, &id, &by, now))
                .await;
            match removed {
                Ok(()) => return done(&state, PATH, "client-removed"),
                Err(e) => (Err(ClientError::Storage(e)), "removed"),
            }
        }
        "update" => {
            let metadata = params.get("metadata").unwrap_or("").to_string();
            if serde_json::from_str::<Value>(&metadata).map_or(true, |v| !v.is_object()) {
                let message = "The metadata must be a JSON object. Nothing was changed.".into();
                return refuse(StatusCode::BAD_REQUEST, message).await;
            }
            let updated = state
                .db
                .run(move |c| admin_clients::update(c, &master, &id, metadata.as_bytes(), &by, now))
                .await;
            (updated, "changed")
        }
        "rotate-secret" => {
            let rotated = state
                .db
                .run(move |c| admin_clients::rotate_secret(c, &master, &id, &by, now))
                .await;
            (rotated, "given a new secret")
        }
        _ => {
            let message = "The console cannot do that to a client. Nothing was changed.".into();
            return refuse(StatusCode::NOT_FOUND, message).await;
        }
    };
    let response = match changed {
        Ok(response) => response,
        Err(e) => {
            return match refused_because(e, what) {
                Ok((status, message)) => refuse(status, message).await,
                Err(e) => failed(e),
            }
        }
    };
    let (described, secret) = without_secret(response);
    let mut chrome = admin.chrome("clients", &req, &state);
    chrome.notice = Some(match (action.as_str(), &secret) {
        ("rotate-secret", Some(_)) => {
            "The client has a new secret. Copy it now: it is shown only this once. The old \
             secret no longer works."
        }
        _ => "The client's metadata was saved.",
    });
    client_page(chrome, &described, secret)
}
