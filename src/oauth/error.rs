//! One error type for every OAuth / OIDC endpoint. Each code knows its HTTP status; anything
//! unexpected is `server_error` with the detail kept for the log only.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// The registered error codes (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1; RFC 7591 §3.2.2;
/// RFC 8707 §2; OIDC Core §3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    InvalidToken,
    InvalidTarget,
    InvalidRedirectUri,
    InvalidClientMetadata,
    /// RFC 7591 §3.2.2: Sigil approves no software statement.
    UnapprovedSoftwareStatement,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    /// OpenID Connect Core Unmet Authentication Requirements 1.0: the essential `acr` asked
    /// for cannot be met.
    UnmetAuthenticationRequirements,
    RequestNotSupported,
    RequestUriNotSupported,
    /// RFC 9101 §7: a `request_uri` that is expired, used, or not the client's.
    InvalidRequestUri,
    /// RFC 9101 §7: a request object that does not verify or whose claims are wrong.
    InvalidRequestObject,
    /// RFC 9449 §5, §7.1: the DPoP proof is missing where required, or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8, §9: the DPoP proof must carry the nonce Sigil sent (`DPoP-Nonce`).
    UseDpopNonce,
    /// RFC 8628 §3.5: the user has not decided yet; poll again after the interval.
    AuthorizationPending,
    /// RFC 8628 §3.5: polled faster than the interval, which grows by 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired before it was redeemed.
    ExpiredToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidToken => "invalid_token",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
        }
    }

    /// RFC 6749 §5.2: 400, except `invalid_client` (401 when the client tried to
    /// authenticate); RFC 6750 §3.1: `invalid_token` 401.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as it goes back to the client: code, optional description, HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Option<Cow<'static, str>>,
    pub status: u16,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: Some(description.into()),
            status: code.status(),
        }
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    /// The one answer for an unknown client, a wrong secret and a wrong method (RFC 6749 §5.2):
    /// nothing in it tells them apart.
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }

    /// RFC 6749 §4.1.2.1 (and 503 with `Retry-After` at the JSON endpoints): Sigil cannot
    /// answer for now — its database is down or overloaded — and the same request may succeed
    /// in a few seconds.
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the service is temporarily unavailable; try again in a few seconds",
        )
    }

    /// Logs the detail at ERROR (Sigil itself is wrong); the client sees only `server_error`.
    pub fn server_error(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::ServerError, "internal error")
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The RFC 6749 §5.2 JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self.code });
        if let Some(d) = &self.description {
            body["error_description"] = d.as_ref().into();
        }
        body
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{}: {d}", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

impl std::error::Error for OAuthError {}

/// `Retry-After` (seconds) of every `temporarily_unavailable` answer, JSON or page.
pub const RETRY_AFTER_SECS: u32 = 5;

/// A database that cannot be used for now is `temporarily_unavailable` (503), logged once by
/// the pool when the outage starts; any other storage error is Sigil's own fault.
impl From<crate::storage::StorageError> for OAuthError {
    fn from(e: crate::storage::StorageError) -> Self {
        if e.is_unavailable() {
            tracing::debug!(error = %e, "database unavailable");
            return Self::temporarily_unavailable();
        }
        Self::server_error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;

    #[test]
    fn an_unusable_database_is_temporarily_unavailable_and_a_fault_is_a_server_error() {
        let down = StorageError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection unexpectedly".to_string()),
        ));
        let e = OAuthError::from(down);
        assert_eq!((e.code, e.status), (ErrorCode::TemporarilyUnavailable, 503));
        let e = OAuthError::from(StorageError::Corrupt("bad row".into()));
        assert_eq!((e.code, e.status), (ErrorCode::ServerError, 500));
        assert_eq!(
            e.description.as_deref(),
            Some("internal error"),
            "no detail leaks"
        );
    }
}
