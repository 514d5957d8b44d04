//! The demo apps' pages (askama templates under `templates/demo/`, escaped by default) and
//! what they show of a signed-in user.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder};
use askama::Template;
use base64::Engine;
use openidconnect::core::CoreIdTokenClaims;

use super::relying_party::Peer;

#[derive(Clone)]
pub(super) struct UserView {
    pub(super) name: String,
    pub(super) email: String,
    pub(super) sub: String,
    pub(super) header: String,
    pub(super) claims: String,
}

#[derive(Template)]
#[template(path = "demo/home.html")]
pub(super) struct HomePage<'a> {
    pub(super) app_name: &'a str,
    pub(super) base_url: &'a str,
    pub(super) issuer: &'a str,
    pub(super) user: Option<UserView>,
    pub(super) peers: &'a [Peer],
}

#[derive(Template)]
#[template(path = "demo/error.html")]
pub(super) struct ErrorPage<'a> {
    pub(super) app_name: &'a str,
    pub(super) base_url: &'a str,
    pub(super) title: &'a str,
    pub(super) message: &'a str,
}

/// A page, rendered (escaped) as an HTML response.
pub(super) fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "demo page failed to render");
            HttpResponse::InternalServerError().finish()
        }
    }
}

pub(super) fn see_other(location: &str) -> HttpResponseBuilder {
    let mut r = HttpResponse::SeeOther();
    r.insert_header((header::LOCATION, location));
    r
}

/// The user's name, email and sub, and the ID token's header and claims as pretty JSON.
pub(super) fn view(raw_id_token: &str, claims: &CoreIdTokenClaims) -> anyhow::Result<UserView> {
    let header_b64 = raw_id_token.split('.').next().unwrap_or("");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header_b64)?,
    )?;
    let sub = claims.subject().as_str().to_string();
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string())
        .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()))
        .unwrap_or_else(|| sub.clone());
    Ok(UserView {
        name,
        email: claims
            .email()
            .map(|e| e.as_str().to_string())
            .unwrap_or_else(|| "(no email)".into()),
        sub,
        header: serde_json::to_string_pretty(&header)?,
        claims: serde_json::to_string_pretty(claims)?,
    })
}
