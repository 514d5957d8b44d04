//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, or no secret (`none`, public clients).

use std::fmt;

use base64::Engine;
use subtle::ConstantTimeEq;

use super::client_metadata::{AuthMethod, Client};
use super::form::Params;
use super::OAuthError;

/// A client secret; `Debug` never prints it.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time comparison (the lengths of Sigil's secrets are public: 43 characters).
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// What the request presented, before anything is looked up.
#[derive(Debug)]
pub enum Presented {
    Basic {
        client_id: String,
        secret: ClientSecret,
    },
    Post {
        client_id: String,
        secret: ClientSecret,
    },
    None {
        client_id: String,
    },
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::None { client_id } => client_id,
        }
    }

    fn method(&self) -> AuthMethod {
        match self {
            Self::Basic { .. } => AuthMethod::ClientSecretBasic,
            Self::Post { .. } => AuthMethod::ClientSecretPost,
            Self::None { .. } => AuthMethod::None,
        }
    }

    fn secret(&self) -> Option<&ClientSecret> {
        match self {
            Self::Basic { secret, .. } | Self::Post { secret, .. } => Some(secret),
            Self::None { .. } => None,
        }
    }
}

/// Reads the credentials from the `Authorization` header and the form.
pub fn extract(authorization: Option<&str>, params: &Params) -> Result<Presented, OAuthError> {
    if let Some(header) = authorization {
        let (client_id, secret) = parse_basic(header).ok_or_else(OAuthError::invalid_client)?;
        // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
        // request."
        if params.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both HTTP Basic and client_secret",
            ));
        }
        if params.get("client_id").is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the one in the Authorization header",
            ));
        }
        return Ok(Presented::Basic {
            client_id,
            secret: ClientSecret::new(secret),
        });
    }
    match (params.get("client_id"), params.get("client_secret")) {
        (Some(id), Some(secret)) => Ok(Presented::Post {
            client_id: id.to_string(),
            secret: ClientSecret::new(secret.to_string()),
        }),
        (Some(id), None) => Ok(Presented::None {
            client_id: id.to_string(),
        }),
        (None, _) => Err(OAuthError::invalid_client()),
    }
}

/// RFC 7617 Basic credentials; RFC 6749 §2.3.1: id and secret are form-urlencoded first.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| -> Option<String> {
        let plus_as_space = s.replace('+', " ");
        url::form_urlencoded::parse(format!("x={plus_as_space}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let (id, secret) = (decode(id)?, decode(secret)?);
    if id.is_empty() {
        return None;
    }
    Some((id, secret))
}

/// Checks the presented credentials against the registered client. Every failure is the same
/// `invalid_client`, and an unknown client costs the same comparison as a known one.
pub fn authenticate(presented: &Presented, client: Option<Client>) -> Result<Client, OAuthError> {
    const DUMMY: &str = "0000000000000000000000000000000000000000000";
    let Some(client) = client else {
        if let Some(s) = presented.secret() {
            let _ = ClientSecret::new(DUMMY.into()).matches(s.expose());
        }
        return Err(OAuthError::invalid_client());
    };
    if client.metadata.token_endpoint_auth_method != presented.method() {
        return Err(OAuthError::invalid_client());
    }
    let ok = match (presented.secret(), &client.secret) {
        (None, None) => true,
        (Some(given), Some(stored)) => stored.matches(given.expose()),
        _ => false,
    };
    if ok {
        Ok(client)
    } else {
        Err(OAuthError::invalid_client())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Acret")
        );
        assert_eq!(
            parse_basic(&header),
            Some(("my app".to_string(), "s:cret".to_string()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let params = Params::parse(b"client_secret=x").unwrap();
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("a:b")
        );
        let err = extract(Some(&header), &params).unwrap_err();
        assert_eq!(err.code, super::super::ErrorCode::InvalidRequest);
    }
}
