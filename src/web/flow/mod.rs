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
use super::strength::Acr;
use crate::crypto::{b64url, random, sha256};
use crate::endpoints::pages::{error_page, html_with_csp};
use crate::endpoints::paths;
use crate::factors;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Login,
    /// The session's user must give a second factor (step-up).
    SecondFactor,
    /// The client needs a level the user has no factor for: they enrol one first.
    Enrol,
    Consent,
    Issue,
}

/// How long the second step may follow the first (the password, or the step-up's start).
pub const SECOND_STEP_TTL: i64 = 300;

/// What a request and its client ask of the sign-in's strength, for a given user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// The session must be at least this strong.
    Level(Acr),
    /// The client's `minimum_acr` is above anything the user can give: enrol a factor first.
    Enrol(Acr),
}

/// DESIGN.md "Authentication strength", for a user who can reach `best`: `acr_values` asks
/// for the strongest listed level the user can give; an essential `acr` for its weakest value
/// (none reachable → `unmet_authentication_requirements`); the client's `minimum_acr` always.
pub fn needed(
    request: &AuthorizationRequest,
    minimum: Option<Acr>,
    best: Acr,
) -> Result<Needed, OAuthError> {
    let mut level = request
        .acr_values
        .iter()
        .copied()
        .filter(|a| *a <= best)
        .max()
        .unwrap_or(Acr::Pwd);
    if let Some(values) = &request.essential_acr {
        let weakest = values
            .iter()
            .copied()
            .filter(|v| minimum.is_none_or(|m| *v >= m))
            .min();
        match weakest {
            Some(w) if w <= best => level = level.max(w),
            _ => {
                return Err(OAuthError::new(
                    ErrorCode::UnmetAuthenticationRequirements,
                    "the user cannot meet the essential acr asked for",
                ))
            }
        }
    }
    if let Some(min) = minimum {
        if min > best {
            return Ok(Needed::Enrol(min));
        }
        level = level.max(min);
    }
    Ok(Needed::Level(level))
}

/// The `acr` a grant reports for a session of level `session`: with an essential `acr`, the
/// strongest of its values the session meets (OIDC Core §5.5.1.1: one of the values asked
/// for); otherwise the session's.
pub fn reported_acr(request: &AuthorizationRequest, session: Acr) -> Acr {
    request
        .essential_acr
        .as_ref()
        .and_then(|vs| vs.iter().copied().filter(|v| *v <= session).max())
        .unwrap_or(session)
}

/// What the request needs of `user_id`'s sign-in (one database call).
pub async fn needed_for(
    state: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
    user_id: &str,
) -> Result<Needed, OAuthError> {
    let user_id = user_id.to_string();
    let held = {
        let on = state.webauthn.is_some();
        state
            .db
            .run(move |c| factors::held(c, &user_id, on))
            .await?
    };
    needed(request, client.metadata.minimum_acr, held.best())
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
    /// What the request needs of the session's strength (`Level(Pwd)` without a session).
    pub needed: Needed,
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
    /// The session is weaker than the request needs: the user gives a second factor.
    Weaker,
    /// The client needs a level the user holds no factor for.
    Enrol,
}

/// SECURITY.md 26, OIDC Core §3.1.2.1: the one decision whether `session` satisfies the sign-in
/// rules of a parked request — `prompt=login` and `max_age` (met only by the sign-in made on the
/// login page for this very request), the `id_token_hint` subject, and the strength needed
/// (`acr_values`, an essential `acr`, the client's `minimum_acr`).
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
    let too_old = request
        .max_age
        .is_some_and(|max| s.now - session.auth_time > max);
    if !fresh && (request.prompt.login || too_old) {
        return Err(Unmet::SignIn);
    }
    match s.needed {
        Needed::Enrol(_) => Err(Unmet::Enrol),
        Needed::Level(level) if session.strength() < level => Err(Unmet::Weaker),
        Needed::Level(_) => Ok(()),
    }
}

fn interaction_required() -> OAuthError {
    OAuthError::new(
        ErrorCode::InteractionRequired,
        "the sign-in must be made stronger, which needs the user",
    )
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
        Err(Unmet::Weaker | Unmet::Enrol) if request.prompt.none => {
            return Err(interaction_required())
        }
        Err(Unmet::Weaker) => return Ok(Next::SecondFactor),
        Err(Unmet::Enrol) => return Ok(Next::Enrol),
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
    /// A sign-in waiting for its second factor, if one is.
    pub pending: Option<Pending>,
}

/// The first step of a sign-in is done; the second is awaited.
#[derive(Debug, Clone)]
pub struct Pending {
    pub user_id: String,
    /// The methods given so far in this flow (`pwd`); none for a step-up of a session.
    pub amr: Vec<String>,
    pub since: i64,
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
    let pending = match (row.pending_user_id, row.pending_at) {
        (Some(user_id), Some(since)) => Some(Pending {
            user_id,
            amr: super::strength::split(row.pending_amr.as_deref().unwrap_or("")),
            since,
        }),
        _ => None,
    };
    Ok(Some(Parked {
        id: id.to_string(),
        request,
        signed_in_sid: row.signed_in_sid,
        pending,
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
    // One trip: what the user consented to, and which factors they hold.
    let (remembered_scope, needed) = match &session {
        Some(s) => {
            let (user, client_id) = (s.user.id.clone(), client.client_id.clone());
            let webauthn_on = state.webauthn.is_some();
            let found = state
                .db
                .run(move |c| {
                    Ok::<_, StorageError>((
                        consents::scope_of(c, &user, &client_id)?,
                        factors::held(c, &user, webauthn_on)?,
                    ))
                })
                .await;
            let (scope, held) = match found {
                Ok(found) => found,
                Err(e) => return reply(state, &request.reply_to(), Err(OAuthError::from(e))),
            };
            let needed = match needed(&request, client.metadata.minimum_acr, held.best()) {
                Ok(needed) => needed,
                Err(e) => {
                    forget(state, parked.as_ref().map(|p| p.id.as_str())).await;
                    return reply(state, &request.reply_to(), Err(e));
                }
            };
            (scope.and_then(|t| Scope::parse(&t).ok()), needed)
        }
        None => (None, Needed::Level(Acr::Pwd)),
    };
    let situation = Situation {
        session: session.as_ref(),
        signed_in_sid: parked.as_ref().and_then(|p| p.signed_in_sid.as_deref()),
        remembered_scope,
        // RFC 8628 §5.4: a device is only ever approved by the user, on the consent page.
        skip_consent: client.metadata.skip_consent && request.device.is_none(),
        hint_sub,
        needed,
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
            return allowed(state, &request, &session).await;
        }
        Next::Login => paths::LOGIN,
        Next::SecondFactor => paths::LOGIN_FACTOR,
        Next::Enrol => paths::LOGIN_ENROL,
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
    if next == Next::SecondFactor {
        // Step-up: the session's user gives the missing factor on the second-step page.
        // No method given yet in this flow (an empty `amr`): the second step strengthens the
        // session rather than starting one.
        if let Some(session) = &session {
            let (id_hash, user) = (hash(&id), session.user.id.clone());
            if let Err(e) = state
                .db
                .run(move |c| auth_requests::mark_pending(c, &id_hash, &user, "", now))
                .await
            {
                return reply(state, &request.reply_to(), Err(OAuthError::from(e)));
            }
        }
    }
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

/// The answer to a request the user allowed (or that needed no consent): a code for the
/// client on its redirect_uri or — for a device authorization (RFC 8628) — the device's
/// approval, and a page that sends the user back to their device.
pub async fn allowed(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &Session,
) -> HttpResponse {
    if let Some(link) = &request.device {
        return super::device::approve(state, request, link, session).await;
    }
    let result = issue_code(state, request, session)
        .await
        .map_err(OAuthError::from);
    reply(state, &request.reply_to(), result)
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
        acr: reported_acr(request, session.strength())
            .as_str()
            .to_string(),
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
        // A device authorization's request has no redirect_uri to go back to: its errors are
        // shown on Sigil's page (the device learns of a denial through its polling).
        if request.device {
            return super::device::refused(e);
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
