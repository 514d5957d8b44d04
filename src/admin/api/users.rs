//! `/admin/api/users`: search, one user's picture, create (with a password or a one-time
//! password-set link), update, remove, and the account switches — the operations of
//! `admin::users`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    acting, caller, change, created, json_body, no_content, ok, query, ApiError, ErrorBody,
};
use crate::admin::sessions::end_all_of_user;
use crate::admin::users::links::{self, IssuedLink};
use crate::admin::users::view::{self, UserDetails, UserPage, UserQuery, UserSummary};
use crate::admin::users::{self as admin, FactorsRemoved, NewUser, UserPatch};
use crate::audit::By;
use crate::clock::rfc3339;
use crate::crypto::password::Lane;
use crate::state::AppState;
use crate::storage::{users, AnyConnection, StorageError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list))
        .route("/users", web::post().to(add))
        .route("/users/{username}", web::get().to(show))
        .route("/users/{username}", web::patch().to(update))
        .route("/users/{username}", web::delete().to(remove))
        // Before `{action}`, which would match them too.
        .route(
            "/users/{username}/reset-factors",
            web::post().to(reset_factors),
        )
        .route(
            "/users/{username}/password-link",
            web::post().to(password_link),
        )
        .route("/users/{username}/{action}", web::post().to(switch_account));
}

/// A page of users, optionally only those matching `q`.
#[utoipa::path(get, path = "/admin/api/users", tag = "users", params(UserQuery),
    responses(
        (status = 200, description = "a page of users in username order", body = UserPage),
        (status = 400, description = "a bad query", body = ErrorBody)))]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let q: UserQuery = query(&req)?;
    let page = state.db.run(move |conn| view::search(conn, &q)).await?;
    Ok(ok(page))
}

/// A new user. Without `password`, the answer holds a one-time link to choose one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    username: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    name: Option<String>,
    #[serde(default)]
    admin: bool,
    /// Further standard claims (given_name, locale, address, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    claims: Map<String, Value>,
    password: Option<String>,
}

/// A one-time password-set link: give it to the user; it works once, until `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordLink {
    pub url: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl PasswordLink {
    fn of(link: &IssuedLink, state: &AppState) -> Self {
        Self {
            url: link.url(&state.settings.issuer),
            expires_at: rfc3339(link.expires_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserSummary,
    /// Present when the user was created without a password.
    pub password_link: Option<PasswordLink>,
}

#[utoipa::path(post, path = "/admin/api/users", tag = "users", request_body = NewUserRequest,
    responses(
        (status = 201, description = "the user (and a password-set link)", body = CreatedUser),
        (status = 400, description = "a bad body, username, email, claim or password", body = ErrorBody),
        (status = 409, description = "the username is taken", body = ErrorBody)))]
pub async fn add(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let ask: NewUserRequest = object_body(&body)?;
    let new = NewUser {
        username: ask.username,
        email: ask.email,
        email_verified: ask.email_verified,
        name: ask.name,
        admin: ask.admin,
        claims: ask.claims,
    };
    let hash = match ask.password {
        Some(password) => {
            admin::prepare(&new, &password)?;
            // A taken name is refused before the slow hash.
            let name = new.username.clone();
            if state
                .db
                .run(move |c| users::by_username(c, &name))
                .await?
                .is_some()
            {
                return Err(StorageError::Conflict(format!(
                    "user {:?} already exists",
                    new.username
                ))
                .into());
            }
            let bucket = crate::web::client_address::of(&req, &state.settings.http.trusted_proxies)
                .throttle_bucket();
            match state
                .passwords
                .hash(password, Lane::Priority, &bucket)
                .await
            {
                Ok(Some(hash)) => Some(hash),
                _ => return Err(StorageError::Busy.into()),
            }
        }
        None => None,
    };
    let made = change(&state, by, move |conn, by, now| {
        admin::create(conn, new, hash, links::DEFAULT_TTL, by, now)
    })
    .await?;
    Ok(created(CreatedUser {
        user: UserSummary::from(&made.user),
        password_link: made.link.as_ref().map(|l| PasswordLink::of(l, &state)),
    }))
}

/// A JSON object body (an array or a scalar is a 400, even where serde would take it).
fn object_body<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = json_body(body)?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
}

/// The user with sign-in counter, second factors, groups, live sessions, consents and any
/// waiting password-set link.
#[utoipa::path(get, path = "/admin/api/users/{username}", tag = "users",
    params(("username" = String, Path)),
    responses(
        (status = 200, description = "the user", body = UserDetails),
        (status = 404, description = "no such user", body = ErrorBody)))]
pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller(&req, &state).await?;
    let (username, now) = (path.into_inner(), state.clock.now());
    let details = state
        .db
        .run(move |conn| view::details(conn, &username, now))
        .await?;
    Ok(ok(details))
}

/// Changes the profile: fields given replace the stored ones (`null` clears); `claims` adds or
/// replaces standard claims, a claim set to `null` is removed.
#[utoipa::path(patch, path = "/admin/api/users/{username}", tag = "users",
    params(("username" = String, Path)), request_body = UserPatch,
    responses(
        (status = 200, description = "the user as changed", body = UserSummary),
        (status = 400, description = "a bad body or value; nothing changed", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody)))]
pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let patch: UserPatch = object_body(&body)?;
    let username = path.into_inner();
    let row = change(&state, by, move |conn, by, now| {
        admin::update(conn, &username, &patch, by, now)
    })
    .await?;
    Ok(ok(UserSummary::from(&row)))
}

/// Removes the user: their sessions end (back-channel logout), then the account with all that
/// is theirs.
#[utoipa::path(delete, path = "/admin/api/users/{username}", tag = "users",
    params(("username" = String, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such user", body = ErrorBody)))]
pub async fn remove(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let username = path.into_inner();
    end_all_of_user(&state, &username).await?;
    switch(&state, username, by, admin::remove).await?;
    Ok(no_content())
}

/// What an account switch answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Switched {
    pub username: String,
    /// disable, enable, unlock or logout-everywhere.
    pub action: String,
    /// RFC 3339.
    pub at: String,
}

type Switch = fn(&mut AnyConnection, &str, &By, i64) -> Result<(), StorageError>;

/// Runs an account switch; the verdict cache drops what it knew of tokens.
async fn switch(state: &AppState, username: String, by: By, op: Switch) -> Result<i64, ApiError> {
    let now = state.clock.now();
    state
        .db
        .run(move |conn| op(conn, &username, &by, now))
        .await?;
    state.verdicts.invalidate();
    Ok(now)
}

/// An account switch, by name.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Refuses sign-in and ends every session and token of the user.
    Disable,
    /// Allows sign-in again (earlier tokens stay dead).
    Enable,
    /// Clears the account's sign-in counters (a lockout ends).
    Unlock,
    /// Ends every session and token issued to the user before now.
    LogoutEverywhere,
}

/// `disable`: refuses sign-in and ends every session and token of the user; `enable`: allows
/// sign-in again (earlier tokens stay dead); `unlock`: clears the account's sign-in counters;
/// `logout-everywhere`: ends every session and token issued to the user before now.
#[utoipa::path(post, path = "/admin/api/users/{username}/{action}", tag = "users",
    params(("username" = String, Path), ("action" = Action, Path)),
    responses(
        (status = 200, description = "done", body = Switched),
        (status = 404, description = "no such user or action", body = ErrorBody)))]
pub async fn switch_account(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let (username, action) = path.into_inner();
    let op: Switch = match serde_json::from_value(Value::String(action.clone())) {
        Ok(Action::Disable) => admin::disable,
        Ok(Action::Enable) => admin::enable,
        Ok(Action::Unlock) => admin::unlock,
        Ok(Action::LogoutEverywhere) => admin::logout_everywhere,
        Err(_) => return Err(ApiError::not_found(format!("no action {action:?}"))),
    };
    if matches!(action.as_str(), "logout-everywhere" | "disable") {
        // End the user's sessions first, so that every client that took part hears of it
        // (back-channel logout); then every token issued before now stops being accepted.
        end_all_of_user(&state, &username).await?;
    }
    let at = switch(&state, username.clone(), by, op).await?;
    Ok(ok(Switched {
        username,
        action,
        at: rfc3339(at),
    }))
}

/// Removes every second factor (TOTP, recovery codes, passkeys) of the user.
#[utoipa::path(post, path = "/admin/api/users/{username}/reset-factors", tag = "users",
    params(("username" = String, Path)),
    responses(
        (status = 200, description = "what was removed", body = FactorsRemoved),
        (status = 404, body = ErrorBody)))]
pub async fn reset_factors(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let username = path.into_inner();
    let removed = change(&state, by, move |conn, by, now| {
        admin::reset_factors(conn, &username, by, now)
    })
    .await?;
    Ok(ok(removed))
}

/// A new one-time password-set link for the user (an earlier one stops working).
#[utoipa::path(post, path = "/admin/api/users/{username}/password-link", tag = "users",
    params(("username" = String, Path)),
    responses(
        (status = 201, description = "the link, shown this once", body = PasswordLink),
        (status = 404, body = ErrorBody)))]
pub async fn password_link(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = acting(&req, &state).await?;
    let username = path.into_inner();
    let link = change(&state, by, move |conn, by, now| {
        links::issue_for(conn, &username, links::DEFAULT_TTL, by, now)
    })
    .await?;
    Ok(created(PasswordLink::of(&link, &state)))
}
