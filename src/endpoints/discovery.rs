//! OpenID Provider metadata (OIDC Discovery §3) and the same document as OAuth 2 authorization
//! server metadata (RFC 8414). Built once from the path constants that mount the routes, so it
//! advertises exactly what is served.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::jwks::cached_json;
use super::paths;
use crate::config::Settings;
use crate::oauth::client_keys::AssertionAlg;
use crate::oauth::client_metadata::{AuthMethod, CLIENT_SIGNING_ALGS};
use crate::oauth::request_object;
use crate::oauth::token_request::GRANT_TYPES_SUPPORTED;
use crate::state::AppState;
use crate::tokens::jwe;

pub fn document(settings: &Settings) -> Value {
    let url = |path: &str| settings.endpoint_url(path);
    let token_auth: Vec<&str> = AuthMethod::SUPPORTED.to_vec();
    let id_token_algs = CLIENT_SIGNING_ALGS;
    let mut doc = json!({
        "issuer": settings.issuer_str(),
        "authorization_endpoint": url(paths::AUTHORIZE),
        "token_endpoint": url(paths::TOKEN),
        "jwks_uri": url(paths::JWKS),
        "userinfo_endpoint": url(paths::USERINFO),
        "introspection_endpoint": url(paths::INTROSPECTION),
        "end_session_endpoint": url(paths::END_SESSION),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "revocation_endpoint": url(paths::REVOCATION),
        "revocation_endpoint_auth_methods_supported": token_auth,
        // RFC 7662 §2.1: introspection is for confidential clients, so every method but `none`.
        "introspection_endpoint_auth_methods_supported": AuthMethod::CONFIDENTIAL,
        "introspection_endpoint_auth_signing_alg_values_supported": AssertionAlg::SUPPORTED,
        "scopes_supported": [
            "openid", "profile", "email", "address", "phone", "offline_access", "groups"
        ],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
            "at_hash", "name", "given_name", "family_name", "middle_name", "nickname",
            "preferred_username", "profile", "picture", "website", "gender", "birthdate",
            "zoneinfo", "locale", "updated_at", "email", "email_verified", "address",
            "phone_number", "phone_number_verified", "groups"
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": crate::web::strength::Acr::ALL.map(|a| a.as_str()),
        "grant_types_supported": GRANT_TYPES_SUPPORTED,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "id_token_encryption_alg_values_supported": jwe::JWE_ALGS,
        "id_token_encryption_enc_values_supported": jwe::JWE_ENCS,
        "userinfo_signing_alg_values_supported": CLIENT_SIGNING_ALGS,
        "userinfo_encryption_alg_values_supported": jwe::JWE_ALGS,
        "userinfo_encryption_enc_values_supported": jwe::JWE_ENCS,
        "token_endpoint_auth_methods_supported": token_auth,
        "token_endpoint_auth_signing_alg_values_supported": AssertionAlg::SUPPORTED,
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": true,
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": request_object::ALGS,
        // Only the request_uri of a pushed request (RFC 9126), never one to fetch.
        "request_uri_parameter_supported": false,
        "pushed_authorization_request_endpoint": url(paths::PAR),
        "require_pushed_authorization_requests": settings.par.required,
        // RFC 8628 §4.
        "device_authorization_endpoint": url(paths::DEVICE_AUTHORIZATION),
        // RFC 9449 §5.1: DPoP proofs are accepted at /token and UserInfo.
        "dpop_signing_alg_values_supported": crate::oauth::dpop::ALGS,
    });
    // RFC 8414 §2: only when `/register` answers.
    if settings.registration.mode != crate::config::RegistrationMode::Off {
        doc["registration_endpoint"] = url(paths::REGISTRATION).into();
    }
    doc
}

pub async fn openid_configuration(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    cached_json(&req, &state.discovery, &state.discovery_cache_control)
}
