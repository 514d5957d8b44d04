//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, a JWT assertion (`client_secret_jwt`, `private_key_jwt`, RFC 7523
//! §2.2; checked by `client_assertion`), or no secret (`none`, public clients).

use std::fmt;

use base64::Engine;
use subtle::ConstantTimeEq;

use super::client_assertion::{self, Assertion};
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
    /// RFC 7521 §4.2: a JWT naming the client in its `sub`; not yet verified.
    Jwt {
        client_id: String,
        assertion: Assertion,
    },
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::None { client_id }
            | Self::Jwt { client_id, .. } => client_id,
        }
    }

    /// The method a secret (or no secret) stands for; an assertion's method depends on the
    /// client's key and is the caller's to check.
    fn secret_method(&self) -> Option<AuthMethod> {
        match self {
            Self::Basic { .. } => Some(AuthMethod::ClientSecretBasic),
            Self::Post { .. } => Some(AuthMethod::ClientSecretPost),
            Self::None { .. } => Some(AuthMethod::None),
            Self::Jwt { .. } => None,
        }
    }

    fn secret(&self) -> Option<&ClientSecret> {
        match self {
            Self::Basic { secret, .. } | Self::Post { secret, .. } => Some(secret),
            Self::None { .. } | Self::Jwt { .. } => None,
        }
    }
}

/// Reads the credentials from the `Authorization` header and the form.
pub fn extract(authorization: Option<&str>, params: &Params) -> Result<Presented, OAuthError> {
    if params.get("client_assertion").is_some() || params.get("client_assertion_type").is_some() {
        // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
        // request."
        if authorization.is_some() || params.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not a client assertion and a secret",
            ));
        }
        return extract_assertion(params);
    }
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

/// RFC 7521 §4.2: `client_assertion_type` and `client_assertion`, and an optional `client_id`
/// that must name the client the assertion names.
fn extract_assertion(params: &Params) -> Result<Presented, OAuthError> {
    let (Some(kind), Some(jwt)) = (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) else {
        return Err(OAuthError::invalid_request(
            "client_assertion and client_assertion_type go together",
        ));
    };
    // An assertion type other than the JWT one is an authentication method Sigil does not
    // support: RFC 6749 §5.2 makes that `invalid_client` ("unsupported authentication
    // method"), the code RFC 7521 §4.2.1 gives to every assertion that cannot be used.
    if kind != client_assertion::ASSERTION_TYPE {
        return Err(OAuthError::invalid_client());
    }
    let assertion = client_assertion::parse(jwt).map_err(|why| refused(None, why))?;
    // The subject is not yet trusted: it only says which client's keys to try.
    let client_id = assertion
        .subject()
        .ok_or_else(|| refused(None, client_assertion::Rejected("no sub")))?
        .to_string();
    // RFC 7521 §4.2: a client_id "MUST identify the same client as is identified by the
    // client assertion"; otherwise the authentication fails.
    if params.get("client_id").is_some_and(|id| id != client_id) {
        return Err(refused(
            None,
            client_assertion::Rejected("client_id differs from the assertion's sub"),
        ));
    }
    Ok(Presented::Jwt {
        client_id,
        assertion,
    })
}

/// RFC 7521 §4.2.1: an unusable assertion is `invalid_client`; the reason goes to the log
/// (with the client id once it is known to be registered).
pub fn refused(client_id: Option<&str>, why: client_assertion::Rejected) -> OAuthError {
    tracing::info!(client_id = client_id.unwrap_or("-"), reason = %why, "client assertion refused");
    OAuthError::invalid_client()
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

/// Checks presented secrets (or their absence) against the registered client. Every failure is
/// the same `invalid_client`, and an unknown client costs the same comparison as a known one.
/// Assertions are checked by the caller, which holds the keys; here they only fail.
pub fn authenticate(presented: &Presented, client: Option<Client>) -> Result<Client, OAuthError> {
    const DUMMY: &str = "0000000000000000000000000000000000000000000";
    let Some(client) = client else {
        if let Some(s) = presented.secret() {
            let _ = ClientSecret::new(DUMMY.into()).matches(s.expose());
        }
        return Err(OAuthError::invalid_client());
    };
    // A client authenticates only by the method it registered: a private_key_jwt or
    // client_secret_jwt client cannot send its secret (or nothing) instead of an assertion.
    if presented.secret_method() != Some(client.metadata.token_endpoint_auth_method) {
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
        let params = Params::parse(b"client_secret=x", usize::MAX).unwrap();
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("a:b")
        );
        let err = extract(Some(&header), &params).unwrap_err();
        assert_eq!(err.code, super::super::ErrorCode::InvalidRequest);
    }

    #[test]
    fn assertions_are_read_alone_and_name_their_client() {
        use super::super::ErrorCode;
        // {"alg":"HS256"}.{"sub":"app"}.sig
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2ln";
        let form = |extra: &str| {
            Params::parse(
                format!(
                    "client_assertion_type={}&client_assertion={jwt}{extra}",
                    client_assertion::ASSERTION_TYPE
                )
                .as_bytes(),
                usize::MAX,
            )
            .unwrap()
        };
        let presented = extract(None, &form("")).unwrap();
        assert!(matches!(presented, Presented::Jwt { .. }));
        assert_eq!(presented.client_id(), "app");
        assert!(extract(None, &form("&client_id=app")).is_ok());
        let code = |r: Result<Presented, OAuthError>| r.unwrap_err().code;
        assert_eq!(
            code(extract(None, &form("&client_id=other"))),
            ErrorCode::InvalidClient
        );
        assert_eq!(
            code(extract(None, &form("&client_secret=s"))),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(extract(Some("Basic YTpi"), &form(""))),
            ErrorCode::InvalidRequest
        );
        let other_type = Params::parse(
            format!("client_assertion_type=urn:x&client_assertion={jwt}").as_bytes(),
            usize::MAX,
        )
        .unwrap();
        assert_eq!(code(extract(None, &other_type)), ErrorCode::InvalidClient);
        let alone =
            Params::parse(format!("client_assertion={jwt}").as_bytes(), usize::MAX).unwrap();
        assert_eq!(code(extract(None, &alone)), ErrorCode::InvalidRequest);
        let no_sub = form("")
            .get("client_assertion")
            .unwrap()
            .replace("eyJzdWIiOiJhcHAifQ", "e30");
        let no_sub = Params::parse(
            format!(
                "client_assertion_type={}&client_assertion={no_sub}",
                client_assertion::ASSERTION_TYPE
            )
            .as_bytes(),
            usize::MAX,
        )
        .unwrap();
        assert_eq!(code(extract(None, &no_sub)), ErrorCode::InvalidClient);
    }
}
