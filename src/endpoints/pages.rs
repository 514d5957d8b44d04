//! HTML pages: the security headers every page carries, the error page, and the stylesheet.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use askama::Template;

/// Strict CSP: no script at all, styles only from Sigil, no framing (RFC 9700 §4.16).
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

pub fn html(status: StatusCode) -> HttpResponseBuilder {
    html_with_csp(status, CSP)
}

/// The policy of a page whose form ends, after Sigil's redirects, at the client's
/// redirect_uri: browsers apply `form-action` to the whole redirect chain, so the client's
/// origin (or, for an app's custom scheme, the scheme) is allowed as well as Sigil's own.
pub fn csp_with_form_target(redirect_uri: &str) -> String {
    let target = match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    };
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {target}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The login page's policy: [`csp_with_form_target`], plus its passkey button's script and the
/// requests it makes, from Sigil's own origin only (no inline script).
pub fn login_csp(redirect_uri: &str) -> String {
    format!(
        "{}; script-src 'self'; connect-src 'self'",
        csp_with_form_target(redirect_uri)
    )
}

/// Every HTML page: no framing, no referrer, no caching, and the given policy.
pub fn html_with_csp(status: StatusCode, csp: &str) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", csp))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-store"));
    b
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    code: &'a str,
}

/// An error shown to the person in the browser, with no redirect anywhere.
pub fn error_page(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let page = ErrorPage {
        title: "Sign-in request refused",
        message,
        code,
    };
    render(status, &page)
}

/// The page when Sigil cannot answer for now (its database is down or overloaded): 503 with
/// `Retry-After` (RFC 9110 §15.6.4), never a redirect, so that the person can simply reload
/// and nothing reaches the client until Sigil can really answer.
pub fn unavailable_page() -> HttpResponse {
    let page = ErrorPage {
        title: "Sign-in unavailable for a moment",
        message: "Sign-in is unavailable for a moment. Try again in a few seconds.",
        code: "temporarily_unavailable",
    };
    let mut response = render(StatusCode::SERVICE_UNAVAILABLE, &page);
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(crate::oauth::error::RETRY_AFTER_SECS),
    );
    response
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../static/sigil.css"))
}

pub async fn form_post_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../static/form_post.js"))
}

pub async fn passkey_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../static/passkey.js"))
}

/// Renders a page template with the strict headers, or a plain 500 if it fails.
pub fn render<T: Template>(status: StatusCode, page: &T) -> HttpResponse {
    render_with_csp(status, page, CSP)
}

pub fn render_with_csp<T: Template>(status: StatusCode, page: &T, csp: &str) -> HttpResponse {
    match page.render() {
        Ok(body) => html_with_csp(status, csp).body(body),
        Err(e) => {
            tracing::error!(error = %e, "page did not render");
            html(StatusCode::INTERNAL_SERVER_ERROR).body("internal error")
        }
    }
}
