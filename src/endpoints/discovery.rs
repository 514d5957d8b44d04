//! OpenID Provider metadata (OIDC Discovery §3) and the same document as OAuth 2 authorization
//! server metadata (RFC 8414). Built once from the path constants that mount the routes, so it
//! advertises exactly what is served.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::jwks::cached_json;
use super::paths;
use crate::config::Settings;
use crate::crypto::keys::SigningAlg;
use crate::oauth::client_metadata::AuthMethod;
use crate::oauth::token_request::GRANT_TYPES_SUPPORTED;
use crate::state::AppState;

pub fn document(settings: &Settings) -> Value {
    let url = |path: &str| settings.endpoint_url(path);
    let signing: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    let token_auth: Vec<&str> = AuthMethod::SUPPORTED
        .into_iter()
        .filter(|m| *m != "none")
        .collect();
    json!({
        "issuer": settings.issuer_str(),
        "authorization_endpoint": url(paths::AUTHORIZE),
        "token_endpoint": url(paths::TOKEN),
        "jwks_uri": url(paths::JWKS),
        "scopes_supported": ["openid"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANT_TYPES_SUPPORTED,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing,
        "token_endpoint_auth_methods_supported": token_auth,
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })
}

pub async fn openid_configuration(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    cached_json(&req, &state.discovery, &state.discovery_cache_control)
}
