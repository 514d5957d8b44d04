//! Thin actix handlers, one file per endpoint. Each extracts plain values from the request,
//! calls into the protocol, storage and token code, and renders the answer.

pub mod authorize;
pub mod client_form;
pub mod device_authorization;
pub mod discovery;
pub mod dpop;
pub mod health;
pub mod introspection;
pub mod jwks;
pub mod pages;
pub mod par;
pub mod registration;
pub mod revocation;
pub mod token;
pub mod userinfo;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::oauth::{ErrorCode, OAuthError};

/// The paths Sigil serves; the route table and the discovery document both read them.
pub mod paths {
    pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
    pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
    pub const JWKS: &str = "/jwks";
    pub const TOKEN: &str = "/token";
    /// Pushed authorization requests (RFC 9126).
    pub const PAR: &str = "/par";
    /// Dynamic client registration (RFC 7591); `/register/{client_id}` is the client
    /// configuration endpoint (RFC 7592).
    pub const REGISTRATION: &str = "/register";
    /// The device authorization endpoint (RFC 8628 §3.1).
    pub const DEVICE_AUTHORIZATION: &str = "/device_authorization";
    /// Where the user types the device's user code (RFC 8628 §3.3, field `user_code`).
    pub const DEVICE: &str = "/device";
    pub const AUTHORIZE: &str = "/authorize";
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
    pub const STYLESHEET: &str = "/static/sigil.css";
    pub const FORM_POST_SCRIPT: &str = "/static/form_post.js";
    pub const PASSKEY_SCRIPT: &str = "/static/passkey.js";
    pub const LOGIN: &str = "/login";
    /// The second step of a sign-in: a one-time code (field `otp`) or a passkey.
    pub const LOGIN_FACTOR: &str = "/login/factor";
    /// The client needs a second factor the user has not set up yet.
    pub const LOGIN_ENROL: &str = "/login/enrol";
    pub const LOGIN_PASSKEY_OPTIONS: &str = "/login/passkey/options";
    pub const LOGIN_PASSKEY: &str = "/login/passkey";
    /// A passkey as the second step.
    pub const LOGIN_FACTOR_PASSKEY_OPTIONS: &str = "/login/factor/passkey/options";
    pub const LOGIN_FACTOR_PASSKEY: &str = "/login/factor/passkey";
    pub const CONSENT: &str = "/consent";
    pub const AUTHORIZE_RESUME: &str = "/authorize/resume";
    pub const USERINFO: &str = "/userinfo";
    pub const INTROSPECTION: &str = "/introspect";
    pub const END_SESSION: &str = "/logout";
    pub const REVOCATION: &str = "/revoke";
    pub const ADMIN_API: &str = "/admin/api";
    /// The admin console (`web::console`) and its sign-in's redirect URI.
    pub const ADMIN: &str = "/admin/";
    pub const ADMIN_CALLBACK: &str = "/admin/callback";
    pub const ACCOUNT: &str = "/account";
    pub const ACCOUNT_CALLBACK: &str = "/account/callback";
    pub const ACCOUNT_PASSWORD: &str = "/account/password";
    pub const ACCOUNT_END_SESSION: &str = "/account/sessions/end";
    pub const ACCOUNT_END_OTHER_SESSIONS: &str = "/account/sessions/end-others";
    pub const ACCOUNT_WITHDRAW_CONSENT: &str = "/account/apps/withdraw";
    pub const ACCOUNT_TOTP_START: &str = "/account/totp/start";
    pub const ACCOUNT_TOTP_CONFIRM: &str = "/account/totp/confirm";
    pub const ACCOUNT_TOTP_REMOVE: &str = "/account/totp/remove";
    pub const ACCOUNT_RECOVERY_CODES: &str = "/account/recovery-codes";
    pub const ACCOUNT_PASSKEYS_OPTIONS: &str = "/account/passkeys/options";
    pub const ACCOUNT_PASSKEYS: &str = "/account/passkeys";
    pub const ACCOUNT_PASSKEYS_REMOVE: &str = "/account/passkeys/remove";
}

/// RFC 6749 §5.2 JSON errors. The status is decided here, where the error is rendered.
impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        match self.code {
            // RFC 6749 §5.2: 401 with a challenge for the scheme the client may use.
            ErrorCode::InvalidClient => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"sigil\""),
                ));
            }
            // RFC 6750 §3.
            ErrorCode::InvalidToken => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                ));
            }
            // RFC 9110 §10.2.3: how long to wait before trying again.
            ErrorCode::TemporarilyUnavailable => {
                response.insert_header((
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::oauth::error::RETRY_AFTER_SECS),
                ));
            }
            _ => {}
        }
        response.json(self.to_json())
    }
}
