//! The consent page: the client's name and the scopes in words; `decision=allow|deny`. Only a
//! POST with a valid CSRF token grants anything.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{client_address, device, flow, forms, session};
use crate::audit;
use crate::endpoints::authorize::{known_client, page};
use crate::endpoints::pages::{csp_with_form_target, error_page, render_with_csp};
use crate::endpoints::paths;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::storage::{atomically, auth_requests, consents};

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<String>,
    /// A device authorization's user code, to compare with the device's (RFC 8628 §5.4).
    user_code: Option<String>,
    request_id: &'a str,
    csrf_token: &'a str,
}

/// What each scope lets the client do, in words.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account identifier)".into(),
        "profile" => "See your name and profile details".into(),
        "email" => "See your email address".into(),
        "address" => "See your postal address".into(),
        "phone" => "See your phone number".into(),
        "groups" => "See which groups you belong to".into(),
        "offline_access" => "Stay connected to your account when you are not using it".into(),
        other => format!("Use the “{other}” permission"),
    }
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let at = match forms::page_request(&req, &state).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let session = match session::current(&req, &state).await {
        Ok(Some(session)) => session,
        Ok(None) => return not_signed_in(),
        Err(e) => return page(&e.into()),
    };
    let scopes = at.parked.request.scope.split(' ').filter(|s| !s.is_empty());
    let page = ConsentPage {
        client_name: at.client.display_name(),
        username: &session.user.username,
        scopes: scopes.map(describe_scope).collect(),
        user_code: at
            .parked
            .request
            .device
            .as_ref()
            .and_then(|link| device::shown_code(&state, link)),
        request_id: &at.parked.id,
        csrf_token: &at.csrf,
    };
    let csp = csp_with_form_target(&at.parked.request.redirect_uri);
    render_with_csp(StatusCode::OK, &page, &csp)
}

fn not_signed_in() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "login_required",
        "You are not signed in. Go back to the application and try again.",
    )
}

pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (params, parked) = match forms::check(&req, &state, &body).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let session = match session::current(&req, &state).await {
        Ok(Some(session)) => session,
        Ok(None) => return not_signed_in(),
        Err(e) => return page(&e.into()),
    };
    let allow = match params.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "decision must be allow or deny",
            );
        }
    };
    let client = match known_client(&state, Some(&parked.request.client_id)).await {
        Ok(c) => c,
        Err(e) => return page(&e),
    };
    // SECURITY.md 26: the form alone never stands in for a sign-in the request still needs.
    let hint_sub = match flow::hint_subject(&state, &parked.request, &client) {
        Ok(sub) => sub,
        Err(e) => return page(&e),
    };
    let needed = match flow::needed_for(&state, &parked.request, &client, &session.user.id).await {
        Ok(needed) => needed,
        Err(e) => return page(&e),
    };
    let situation = flow::Situation {
        session: Some(&session),
        signed_in_sid: parked.signed_in_sid.as_deref(),
        remembered_scope: None,
        skip_consent: false,
        hint_sub,
        needed,
        now: state.clock.now(),
    };
    let unmet = flow::session_meets(&parked.request, &situation).err();
    match unmet {
        Some(flow::Unmet::SignIn) => return flow::to_page(&state, paths::LOGIN, &parked.id),
        // The second step (or enrolment) is not done: back through /authorize/resume, which
        // leads there and keeps every rule.
        Some(flow::Unmet::Weaker | flow::Unmet::Enrol) => {
            return flow::to_page(&state, paths::AUTHORIZE_RESUME, &parked.id)
        }
        _ => {}
    }
    // The parked request is answered once: whoever removes it answers.
    let id_hash = flow::hash(&parked.id);
    match state
        .db
        .run(move |c| auth_requests::take(c, &id_hash))
        .await
    {
        Ok(true) => {}
        Ok(false) => return forms::forbidden(),
        Err(e) => return page(&e.into()),
    }
    let request = parked.request;
    let reply_to = request.reply_to();
    if unmet.is_some() {
        return flow::reply(&state, &reply_to, Err(flow::other_user()));
    }
    if !allow {
        if let Some(link) = &request.device {
            return device::deny(&state, link).await;
        }
        let denied = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
        return flow::reply(&state, &reply_to, Err(denied));
    }
    let (user, client_id, scope, now) = (
        session.user.clone(),
        request.client_id.clone(),
        request.scope.clone(),
        state.clock.now(),
    );
    let given = audit::Event::new(audit::EventType::ConsentGiven, audit::Actor::user(&user))
        .target(client_id.as_str())
        .from(client_address::of(
            &req,
            &state.settings.http.trusted_proxies,
        ))
        .details(serde_json::json!({ "scope": scope }));
    if let Err(e) = state
        .db
        .run(move |c| {
            atomically(c, |c| {
                consents::remember(c, &user.id, &client_id, &scope, now)?;
                given.record(c, now)
            })
        })
        .await
    {
        return flow::reply(&state, &reply_to, Err(e.into()));
    }
    flow::allowed(&state, &request, &session).await
}
