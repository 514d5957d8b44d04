//! The token request, tagged on `grant_type` (RFC 6749 §4.1.3, §4.4.2, §6).

use super::client_metadata::GrantType;
use super::form::Params;
use super::resource_metadata;
use super::scope::Scope;
use super::{ErrorCode, OAuthError};

#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: String,
        code_verifier: Option<String>,
        resource: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<Scope>,
        resource: Option<String>,
    },
    ClientCredentials {
        scope: Option<Scope>,
        resource: Option<String>,
    },
}

/// The grant types the token endpoint serves, as advertised in discovery.
pub const GRANT_TYPES_SUPPORTED: [&str; 3] =
    ["authorization_code", "refresh_token", "client_credentials"];

impl TokenRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }

    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        let grant_type = params.required("grant_type")?;
        match grant_type {
            "authorization_code" => Ok(Self::AuthorizationCode {
                code: params.required("code")?.to_string(),
                // RFC 6749 §4.1.3: required when it was in the authorization request, which
                // Sigil always requires.
                redirect_uri: params.required("redirect_uri")?.to_string(),
                code_verifier: params.get("code_verifier").map(str::to_string),
                resource: optional_resource(params)?,
            }),
            "refresh_token" => Ok(Self::RefreshToken {
                refresh_token: params.required("refresh_token")?.to_string(),
                scope: optional_scope(params)?,
                resource: optional_resource(params)?,
            }),
            "client_credentials" => Ok(Self::ClientCredentials {
                scope: optional_scope(params)?,
                resource: optional_resource(params)?,
            }),
            other => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {other:?} is not supported"),
            )),
        }
    }
}

fn optional_scope(params: &Params) -> Result<Option<Scope>, OAuthError> {
    params
        .get("scope")
        .map(|s| Scope::parse(s).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e)))
        .transpose()
}

/// RFC 8707 §2: one resource indicator, an absolute URI without a fragment.
fn optional_resource(params: &Params) -> Result<Option<String>, OAuthError> {
    params
        .get("resource")
        .map(|r| resource_metadata::check_indicator(r).map(str::to_string))
        .transpose()
}
