//! The token request, tagged on `grant_type` (RFC 6749 §4.4.2 for now; the code and refresh
//! grants join it later).

use super::form::Params;
use super::scope::Scope;
use super::{ErrorCode, OAuthError};

#[derive(Debug)]
pub enum TokenRequest {
    ClientCredentials { scope: Option<Scope> },
}

/// The grant types the token endpoint serves, as advertised in discovery.
pub const GRANT_TYPES_SUPPORTED: [&str; 1] = ["client_credentials"];

impl TokenRequest {
    pub fn parse(params: &Params) -> Result<Self, OAuthError> {
        let grant_type = params.required("grant_type")?;
        match grant_type {
            "client_credentials" => Ok(Self::ClientCredentials {
                scope: optional_scope(params)?,
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
