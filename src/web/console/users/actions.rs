//! The changes to one user, each through the operation the CLI and the admin API use
//! (`admin::users`, `admin::users::links`, `admin::sessions`), which writes its audit event —
//! actor: the signed-in admin — in the change's own transaction.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::super::{change, refusal};
use super::user::{render, Shown};
use crate::admin::sessions;
use crate::admin::users::{self as admin_users, links, UserError, UserPatch};
use crate::oauth::form::Params;
use crate::state::AppState;
use crate::storage::StorageError;
use crate::web::first_party::failed;

/// POST /admin/users/{action}, field `username`: `update`, `disable`, `enable`, `unlock`,
/// `logout-everywhere`, `reset-factors`, `password-link`, `end-session` (field `sid`),
/// `remove`. Each answers 303 to the user's page with its notice, or the page with the
/// refusal in words.
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
    let username = params.get("username").unwrap_or("").to_string();
    let own = username == admin.username();
    let (by, now) = (admin.by.clone(), state.clock.now());
    let name = username.clone();
    let outcome: Result<&'static str, UserError> = match action.as_str() {
        "disable" | "remove" if own => Err(UserError::Invalid(
            "you cannot disable or remove your own account here: you would lock yourself out \
             of the console"
                .into(),
        )),
        "update" => {
            let patch = match patch_of(&params) {
                Ok(patch) => patch,
                Err(why) => {
                    return refused(
                        &req,
                        &state,
                        &admin,
                        &username,
                        StatusCode::BAD_REQUEST,
                        why,
                    )
                    .await
                }
            };
            if own && patch.admin == Some(false) {
                let why = "You cannot take the admin flag from your own account here: you \
                           would lock yourself out of the console. Nothing was changed."
                    .to_string();
                return refused(
                    &req,
                    &state,
                    &admin,
                    &username,
                    StatusCode::BAD_REQUEST,
                    why,
                )
                .await;
            }
            let updated = state
                .db
                .run(move |c| {
                    // Claims left out of the edited object are removed.
                    let stored = admin_users::existing(c, &name)?;
                    let mut patch = patch;
                    if let (Some(claims), Ok(Value::Object(before))) = (
                        patch.claims.as_mut(),
                        serde_json::from_str::<Value>(&stored.claims),
                    ) {
                        for (gone, _) in before {
                            claims.entry(gone).or_insert(Value::Null);
                        }
                    }
                    admin_users::update(c, &name, &patch, &by, now)
                })
                .await;
            updated.map(|_| "user-updated")
        }
        "disable" => run(&state, move |c| admin_users::disable(c, &name, &by, now))
            .await
            .map(|()| "user-disabled"),
        "enable" => run(&state, move |c| admin_users::enable(c, &name, &by, now))
            .await
            .map(|()| "user-enabled"),
        "unlock" => run(&state, move |c| admin_users::unlock(c, &name, &by, now))
            .await
            .map(|()| "user-unlocked"),
        "logout-everywhere" => run(&state, move |c| {
            admin_users::logout_everywhere(c, &name, &by, now)
        })
        .await
        .map(|()| "user-logged-out"),
        "reset-factors" => run(&state, move |c| {
            admin_users::reset_factors(c, &name, &by, now).map(|_| ())
        })
        .await
        .map(|()| "user-factors-reset"),
        "remove" => run(&state, move |c| admin_users::remove(c, &name, &by, now))
            .await
            .map(|()| "user-removed"),
        "end-session" => {
            let sid = params.get("sid").unwrap_or("").to_string();
            sessions::end(&state, &sid, &by)
                .await
                .map(|()| "session-ended")
                .map_err(UserError::Storage)
        }
        "password-link" => {
            let issued = state
                .db
                .run(move |c| links::issue_for(c, &name, links::DEFAULT_TTL, &by, now))
                .await;
            return match issued {
                Ok(link) => {
                    let shown = Shown {
                        notice: Some(
                            "A new password-set link was made (any earlier one no longer \
                             works). Give it to the user: it is shown only this once.",
                        ),
                        link: Some((link.url(&state.settings.issuer), link.expires_at)),
                        ..Default::default()
                    };
                    render(&req, &state, &admin, &username, shown).await
                }
                Err(e) => {
                    answer_error(&req, &state, &admin, &username, UserError::Storage(e)).await
                }
            };
        }
        _ => Err(UserError::Invalid(
            "the console cannot do that to a user".into(),
        )),
    };
    match outcome {
        Ok("user-removed") => super::super::done(&state, "/admin/users", "user-removed"),
        Ok(done) => to_user(&state, &username, done),
        Err(e) => answer_error(&req, &state, &admin, &username, e).await,
    }
}

async fn run(
    state: &AppState,
    f: impl FnOnce(&mut crate::storage::AnyConnection) -> Result<(), StorageError> + Send + 'static,
) -> Result<(), UserError> {
    state.db.run(f).await.map_err(UserError::Storage)
}

/// 303 to the user's page with the notice `done`.
fn to_user(state: &AppState, username: &str, done: &str) -> HttpResponse {
    let mut url =
        url::Url::parse(&state.settings.endpoint_url("/admin/users/view")).expect("issuer");
    url.query_pairs_mut()
        .append_pair("username", username)
        .append_pair("done", done);
    HttpResponse::SeeOther()
        .insert_header(("Location", url.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

async fn answer_error(
    req: &HttpRequest,
    state: &AppState,
    admin: &super::super::Admin,
    username: &str,
    e: UserError,
) -> HttpResponse {
    let (status, message) = match e {
        UserError::Invalid(why) => (StatusCode::BAD_REQUEST, super::super::sentence(&why)),
        UserError::Storage(e) => match refusal(&e) {
            Some(refused) => refused,
            None => return failed(e),
        },
    };
    refused(req, state, admin, username, status, message).await
}

async fn refused(
    req: &HttpRequest,
    state: &AppState,
    admin: &super::super::Admin,
    username: &str,
    status: StatusCode,
    message: String,
) -> HttpResponse {
    let shown = Shown {
        status: Some(status),
        error: Some(message),
        ..Default::default()
    };
    render(req, state, admin, username, shown).await
}

/// The profile form as a patch: email, email_verified, name, admin, and the claims object.
fn patch_of(params: &Params) -> Result<UserPatch, String> {
    let text =
        |k: &str| Some(params.get(k).unwrap_or("").trim().to_string()).filter(|v| !v.is_empty());
    let claims = match params
        .get("claims")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        None => Map::new(),
        Some(json) => match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(claims)) => claims,
            _ => {
                return Err(
                    "The claims must be a JSON object, such as {\"given_name\": \"Alice\"}. \
                     Nothing was changed."
                        .into(),
                )
            }
        },
    };
    Ok(UserPatch {
        email: Some(text("email")),
        email_verified: Some(params.get("email_verified") == Some("yes")),
        name: Some(text("name")),
        admin: Some(params.get("admin") == Some("yes")),
        claims: Some(claims),
    })
}
