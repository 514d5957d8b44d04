//! HTML pages: the security headers every page carries, the error page, and the stylesheet.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use askama::Template;

/// Strict CSP: no script at all, styles only from Sigil, no framing (RFC 9700 §4.16).
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

pub fn html(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", CSP))
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
    match page.render() {
        Ok(body) => html(status).body(body),
        Err(e) => {
            tracing::error!(error = %e, "error page did not render");
            html(StatusCode::INTERNAL_SERVER_ERROR).body("internal error")
        }
    }
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(include_str!("../../static/sigil.css"))
}
