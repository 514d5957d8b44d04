//! The JWKS (RFC 7517 §5): every `next`, `active` and `retiring` public key, served from bytes
//! prepared when the keys last changed.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::published::Published;
use crate::state::AppState;

pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.keyring.current();
    cached_json(&req, &snapshot.jwks, &state.jwks_cache_control)
}

/// A prepared document with `Cache-Control`, `ETag`, and 304 on a matching `If-None-Match`.
pub fn cached_json(
    req: &HttpRequest,
    doc: &Published,
    cache_control: &HeaderValue,
) -> HttpResponse {
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == doc.etag || tag.trim() == "*")
        });
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache_control.clone()))
        .insert_header((header::ETAG, doc.etag_header.clone()));
    if not_modified {
        return response.finish();
    }
    response
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(doc.body.clone())
}
