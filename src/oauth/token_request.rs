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
    /// RFC 8693 §2.1 (`audience` is read as a `resource`: Sigil's audiences are resources).
    TokenExchange {
        subject_token: String,
        actor_token: Option<String>,
        scope: Option<Scope>,
        resource: Option<String>,
    },
    /// RFC 8628 §3.4.
    DeviceCode { device_code: String },
}

/// RFC 8693 §3: the one token type Sigil exchanges and issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The grant types the token endpoint serves, as advertised in discovery.
pub const GRANT_TYPES_SUPPORTED: [&str; 5] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    super::client_metadata::TOKEN_EXCHANGE,
    super::device::GRANT_TYPE,
];

impl TokenRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::TokenExchange { .. } => GrantType::TokenExchange,
            Self::DeviceCode { .. } => GrantType::DeviceCode,
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
            super::client_metadata::TOKEN_EXCHANGE => token_exchange(params),
            super::device::GRANT_TYPE => Ok(Self::DeviceCode {
                device_code: params.required("device_code")?.to_string(),
            }),
            other => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {other:?} is not supported"),
            )),
        }
    }
}

/// RFC 8693 §2.1: the subject token and its type, an actor token with its type or neither, the
/// requested type (an access token, if any), and the target: `resource` or `audience`, one URI.
fn token_exchange(params: &Params) -> Result<TokenRequest, OAuthError> {
    let typed = |token: &str, kind: &str| -> Result<Option<String>, OAuthError> {
        match (params.get(token), params.get(kind)) {
            (None, None) => Ok(None),
            (Some(t), Some(ACCESS_TOKEN_TYPE)) => Ok(Some(t.to_string())),
            (Some(_), Some(_)) => Err(OAuthError::invalid_request(format!(
                "{kind} must be {ACCESS_TOKEN_TYPE}: Sigil exchanges its own access tokens"
            ))),
            _ => Err(OAuthError::invalid_request(format!(
                "{token} and {kind} go together"
            ))),
        }
    };
    let subject_token = typed("subject_token", "subject_token_type")?
        .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
    let actor_token = typed("actor_token", "actor_token_type")?;
    if params
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    let resource = optional_resource(params)?;
    let audience = params.get("audience");
    let resource = match (resource, audience) {
        (Some(r), Some(a)) if r != a => {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource and audience name different targets",
            ))
        }
        (Some(r), _) => Some(r),
        (None, Some(a)) => Some(resource_metadata::check_indicator(a)?.to_string()),
        (None, None) => None,
    };
    Ok(TokenRequest::TokenExchange {
        subject_token,
        actor_token,
        scope: optional_scope(params)?,
        resource,
    })
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
