//! The authorization flow after the request checks: decide whether the person must sign in or
//! consent, park the request while they do, and answer the client with a code or an error.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use url::Url;

use super::client_address::{self, ClientAddress};
use super::cookies;
use super::session::Session;
use crate::crypto::{b64url, random, sha256};
use crate::endpoints::pages::{error_page, html_with_csp};
use crate::endpoints::paths;
use crate::oauth::authorize_request::{AuthorizationRequest, ReplyTo, ResponseMode};
use crate::oauth::client_metadata::Client;
use crate::oauth::resource_metadata;
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::auth_requests::{self, AuthRequestRow};
use crate::storage::grants::{self, CodeRow, GrantRow};
use crate::storage::{consents, StorageError};
use crate::tokens::id_token;

/// Authorization codes live 60 s (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_TTL: i64 = 60;

#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Login,
    Consent,
    Issue,
}

/// What the flow knows when it decides.
pub struct Situation<'a> {
    pub session: Option<&'a Session>,
    /// The session that signed in on the login page for this request: that fresh sign-in
    /// satisfies `prompt=login` and `max_age`.
    pub signed_in_sid: Option<&'a str>,
    pub remembered_scope: Option<Scope>,
    pub skip_consent: bool,
    /// The `sub` of a verified `id_token_hint`.
    pub hint_sub: Option<String>,
    pub now: i64,
}

/// Why a session does not (yet) satisfy a request's sign-in rules.
#[derive(Debug, PartialEq, Eq)]
pub enum Unmet {
    /// The person must sign in (again): no session, `prompt=login`, `max_age` passed, or the
    /// session belongs to someone other than the `id_token_hint` names.
    SignIn,
    /// They signed in during this flow, as someone other than the `id_token_hint` names.
    OtherUser,
}

/// SECURITY.md 26, OIDC Core §3.1.2.1: the one decision whether `session` satisfies the sign-in
/// rules of a parked request — `prompt=login` and `max_age` (met only by the sign-in made on the
/// login page for this very request) and the `id_token_hint` subject.
/// Every path that ends in a code asks it: `/authorize`, its resumption after the login page,
/// and the consent form (and every later second step).
pub fn session_meets(request: &AuthorizationRequest, s: &Situation<'_>) -> Result<(), Unmet> {
    let Some(session) = s.session else {
        return Err(Unmet::SignIn);
    };
    let fresh = s.signed_in_sid == Some(session.sid.as_str());
    if s.hint_sub
        .as_deref()
        .is_some_and(|sub| sub != session.user.id)
    {
        return Err(if fresh {
            Unmet::OtherUser
        } else {
            Unmet::SignIn
        });
    }
    if fresh {
        return Ok(());
    }
    let too_old = request
        .max_age
        .is_some_and(|max| s.now - session.auth_time > max);
    if request.prompt.login || too_old {
        return Err(Unmet::SignIn);
    }
    Ok(())
}

/// The error for a request whose `id_token_hint` names someone else than the person who signed
/// in (OIDC Core §3.1.2.1: "it SHOULD return an error, such as login_required").
pub fn other_user() -> OAuthError {
    OAuthError::new(
        ErrorCode::LoginRequired,
        "the signed-in user is not the one the id_token_hint names",
    )
}

/// OIDC Core §3.1.2.3–§3.1.2.4: sign-in first (prompt, max_age, hint), then consent.
pub fn decide(request: &AuthorizationRequest, s: &Situation<'_>) -> Result<Next, OAuthError> {
    match session_meets(request, s) {
        Ok(()) => {}
        Err(Unmet::OtherUser) => return Err(other_user()),
        Err(Unmet::SignIn) if request.prompt.none => {
            return Err(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user is not signed in",
            ))
        }
        Err(Unmet::SignIn) => return Ok(Next::Login),
    }
    let requested = Scope::parse(&request.scope).unwrap_or_default();
    let covered = s
        .remembered_scope
        .as_ref()
        .is_some_and(|r| requested.is_subset(r));
    let needs_consent = !s.skip_consent && (request.prompt.consent || !covered);
    if needs_consent {
        return if request.prompt.none {
            Err(OAuthError::new(
                ErrorCode::ConsentRequired,
                "the user has not consented to this client",
            ))
        } else {
            Ok(Next::Consent)
        };
    }
    Ok(Next::Issue)
}

pub fn hash(value: &str) -> String {
    b64url(&sha256(value.as_bytes()))
}

/// The browser's CSRF value, and the cookie to set when it had none.
pub fn csrf_value(req: &HttpRequest, state: &AppState) -> (String, Option<Cookie<'static>>) {
    match cookies::read(req, &state.settings, cookies::CSRF).filter(|v| v.len() == 43) {
        Some(v) => (v, None),
        None => {
            let v = random::secret_256();
            let cookie = cookies::build(&state.settings, cookies::CSRF, v.clone());
            (v, Some(cookie))
        }
    }
}

/// A parked request, found by its id and bound to the browser that started it.
pub struct Parked {
    pub id: String,
    pub request: AuthorizationRequest,
    /// The session that signed in on the login page for it, if one did.
    pub signed_in_sid: Option<String>,
}

/// Parks `request` for this browser; returns the request id.
pub async fn park(
    state: &AppState,
    request: &AuthorizationRequest,
    csrf: &str,
    client_address: &ClientAddress,
) -> Result<String, StorageError> {
    let id = random::secret_256();
    let now = state.clock.now();
    let row = AuthRequestRow {
        id_hash: hash(&id),
        client_id: request.client_id.clone(),
        request: serde_json::to_string(request)
            .map_err(|e| StorageError::Corrupt(e.to_string()))?,
        csrf_hash: hash(csrf),
        created_at: now,
        expires_at: now + state.settings.login.request_ttl.as_secs() as i64,
        client_address: client_address.throttle_bucket(),
        signed_in_sid: None,
        pending_user_id: None,
        pending_amr: None,
        pending_at: None,
    };
    let cap = i64::from(state.settings.login.max_parked_per_address);
    state
        .db
        .run(move |conn| auth_requests::insert_capped(conn, &row, cap))
        .await?;
    Ok(id)
}

/// Records that the session `sid` signed in on the login page for the parked request `id`.
pub async fn mark_signed_in(state: &AppState, id: &str, sid: String) -> Result<(), StorageError> {
    let id_hash = hash(id);
    state
        .db
        .run(move |conn| auth_requests::mark_signed_in(conn, &id_hash, &sid))
        .await
}

/// Finds a parked request; `None` when it is unknown, expired, or was started by another
/// browser (its CSRF cookie differs).
pub async fn find_parked(
    state: &AppState,
    id: &str,
    csrf: Option<&str>,
) -> Result<Option<Parked>, StorageError> {
    let Some(csrf) = csrf else { return Ok(None) };
    let id_hash = hash(id);
    let now = state.clock.now();
    let row = state
        .db
        .run(move |conn| auth_requests::live(conn, &id_hash, now))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let same_browser: bool =
        subtle::ConstantTimeEq::ct_eq(row.csrf_hash.as_bytes(), hash(csrf).as_bytes()).into();
    if !same_browser {
        return Ok(None);
    }
    let request =
        serde_json::from_str(&row.request).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    Ok(Some(Parked {
        id: id.to_string(),
        request,
        signed_in_sid: row.signed_in_sid,
    }))
}

/// Moves the flow on: to the login page, the consent page, or a code for the client.
pub async fn proceed(
    req: &HttpRequest,
    state: &AppState,
    client: &Client,
    request: AuthorizationRequest,
    session: Option<Session>,
    parked: Option<Parked>,
    hint_sub: Option<String>,
) -> HttpResponse {
    if let Err(e) = check_resource(state, client, &request).await {
        forget(state, parked.as_ref().map(|p| p.id.as_str())).await;
        return reply(state, &request.reply_to(), Err(e));
    }
    let now = state.clock.now();
    let remembered_scope = match &session {
        Some(s) => {
            let (user, client_id) = (s.user.id.clone(), client.client_id.clone());
            match state
                .db
                .run(move |c| consents::scope_of(c, &user, &client_id))
                .await
            {
                Ok(scope) => scope.and_then(|t| Scope::parse(&t).ok()),
                Err(e) => return reply(state, &request.reply_to(), Err(OAuthError::from(e))),
            }
        }
        None => None,
    };
    let situation = Situation {
        session: session.as_ref(),
        signed_in_sid: parked.as_ref().and_then(|p| p.signed_in_sid.as_deref()),
        remembered_scope,
        skip_consent: client.metadata.skip_consent,
        hint_sub,
        now,
    };
    let next = match decide(&request, &situation) {
        Ok(next) => next,
        Err(e) => {
            forget(state, parked.as_ref().map(|p| p.id.as_str())).await;
            return reply(state, &request.reply_to(), Err(e));
        }
    };
    let page = match next {
        Next::Issue => {
            let Some(session) = session else {
                return reply(
                    state,
                    &request.reply_to(),
                    Err(OAuthError::server_error("issue without a session")),
                );
            };
            forget(state, parked.as_ref().map(|p| p.id.as_str())).await;
            let result = issue_code(state, &request, &session)
                .await
                .map_err(OAuthError::from);
            return reply(state, &request.reply_to(), result);
        }
        Next::Login => paths::LOGIN,
        Next::Consent => paths::CONSENT,
    };
    let (csrf, new_cookie) = csrf_value(req, state);
    let id = match parked {
        Some(p) => p.id,
        None => match park(
            state,
            &request,
            &csrf,
            &client_address::of(req, &state.settings.http.trusted_proxies),
        )
        .await
        {
            Ok(id) => id,
            Err(e) => return reply(state, &request.reply_to(), Err(OAuthError::from(e))),
        },
    };
    let mut response = to_page(state, page, &id);
    if let Some(cookie) = new_cookie {
        if let Err(e) = response.add_cookie(&cookie) {
            tracing::error!(error = %e, "could not set the CSRF cookie");
        }
    }
    response
}

/// 303 to one of Sigil's pages (login, consent) for the parked request `id`.
pub fn to_page(state: &AppState, page: &str, id: &str) -> HttpResponse {
    let mut location = Url::parse(&state.settings.endpoint_url(page)).expect("issuer-based URL");
    location.query_pairs_mut().append_pair("request", id);
    HttpResponse::SeeOther()
        .insert_header(("Location", location.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// OIDC Core §3.1.2.1: an `id_token_hint` must be an ID token Sigil issued to this client; its
/// `sub` is who the request is for.
pub fn hint_subject(
    state: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
) -> Result<Option<String>, OAuthError> {
    let Some(token) = &request.id_token_hint else {
        return Ok(None);
    };
    let keys = state.keyring.current();
    id_token::verify_hint(&keys, token, state.settings.issuer_str(), &client.client_id).map(Some)
}

/// RFC 8707 §2: a named resource must be registered and open to this client, and the request
/// must ask for at least one scope it accepts (else its tokens would carry none).
async fn check_resource(
    state: &AppState,
    client: &Client,
    request: &AuthorizationRequest,
) -> Result<(), OAuthError> {
    let Some(uri) = &request.resource else {
        return Ok(());
    };
    let resource = resource_metadata::admit(state.resource(uri).await?, client)?;
    resource
        .token_scope(&Scope::parse(&request.scope).unwrap_or_default())
        .map(|_| ())
}

async fn forget(state: &AppState, parked_id: Option<&str>) {
    if let Some(id) = parked_id {
        let id_hash = hash(id);
        if let Err(e) = state
            .db
            .run(move |c| auth_requests::take(c, &id_hash))
            .await
        {
            // It expires anyway; an outage is logged once by the pool.
            if e.is_unavailable() {
                tracing::debug!(error = %e, "could not remove a finished authorization request");
            } else {
                tracing::warn!(error = %e, "could not remove a finished authorization request");
            }
        }
    }
}

/// How long after its last token was issued a grant may still have a valid one: the longest
/// access-token lifetime plus the clock skew.
pub fn grant_horizon(settings: &crate::config::Settings) -> i64 {
    (*crate::config::ACCESS_TTL_RANGE.end() + settings.tokens.clock_skew.as_secs()) as i64
}

/// A grant and its one-time code (256-bit, stored hashed, 60 s).
pub async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &Session,
) -> Result<String, StorageError> {
    let now = state.clock.now();
    let code = random::secret_256();
    let grant = GrantRow {
        id: random::id_128(),
        user_id: session.user.id.clone(),
        client_id: request.client_id.clone(),
        scope: request.scope.clone(),
        sid: session.sid.clone(),
        nonce: request.nonce.clone(),
        auth_time: session.auth_time,
        amr: session.amr.join(" "),
        acr: session.acr.clone(),
        created_at: now,
        revoked_at: None,
        resource: request.resource.clone(),
        expires_at: now + CODE_TTL + grant_horizon(&state.settings),
    };
    let code_row = CodeRow {
        code_hash: hash(&code),
        grant_id: grant.id.clone(),
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        created_at: now,
        expires_at: now + CODE_TTL,
        consumed_at: None,
    };
    state
        .db
        .run(move |c| grants::insert_with_code(c, &grant, &code_row))
        .await?;
    Ok(code)
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPost<'a> {
    action: &'a str,
    fields: Vec<(&'a str, &'a str)>,
}

/// The authorization response (RFC 6749 §4.1.2 / §4.1.2.1) on the client's redirect_uri, with
/// `state` and `iss` (RFC 9207), by redirect (`query`) or by an auto-submitted form
/// (`form_post`).
pub fn reply(
    state: &AppState,
    request: &ReplyTo,
    result: Result<String, OAuthError>,
) -> HttpResponse {
    // Sigil cannot answer for now (its database): the person gets the 503 page and can reload,
    // rather than be sent back to the client with an error that ends the sign-in.
    if let Err(e) = &result {
        if e.code == ErrorCode::TemporarilyUnavailable {
            return crate::endpoints::pages::unavailable_page();
        }
    }
    let issuer = state.settings.issuer_str();
    let mut fields: Vec<(&str, &str)> = Vec::new();
    let description;
    match &result {
        Ok(code) => fields.push(("code", code)),
        Err(e) => {
            fields.push(("error", e.code.as_str()));
            description = e.description.clone();
            if let Some(d) = &description {
                fields.push(("error_description", d));
            }
        }
    }
    if let Some(s) = &request.state {
        fields.push(("state", s));
    }
    fields.push(("iss", issuer));
    match request.response_mode {
        ResponseMode::Query => {
            let Ok(mut url) = Url::parse(&request.redirect_uri) else {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "redirect_uri is not a URL",
                );
            };
            url.query_pairs_mut().extend_pairs(fields.iter());
            HttpResponse::SeeOther()
                .insert_header(("Location", url.as_str()))
                .insert_header(("Cache-Control", "no-store"))
                .finish()
        }
        ResponseMode::FormPost => {
            let origin = Url::parse(&request.redirect_uri)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_else(|_| "'none'".into());
            let page = FormPost {
                action: &request.redirect_uri,
                fields,
            };
            match page.render() {
                Ok(body) => {
                    let csp = format!(
                        "default-src 'none'; script-src 'self'; style-src 'self'; form-action {origin}; \
                         frame-ancestors 'none'; base-uri 'none'"
                    );
                    html_with_csp(StatusCode::OK, &csp).body(body)
                }
                Err(e) => {
                    tracing::error!(error = %e, "form_post page did not render");
                    error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "internal error",
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
