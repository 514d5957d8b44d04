//! Client registration metadata (RFC 7591 §2 and OpenID Connect Dynamic Client Registration
//! §2): parsed from JSON, checked, and kept in normalised form. Unknown names are ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::client_auth::ClientSecret;
use super::client_keys::{self, AssertionAlg};
use super::scope::Scope;
use super::{ErrorCode, OAuthError};
use crate::tokens::jwe;
use crate::web::strength::Acr;

/// RFC 8693 §2.1: the token exchange grant's name.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 8693.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
    /// RFC 8628.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::TokenExchange => TOKEN_EXCHANGE,
            Self::DeviceCode => super::device::GRANT_TYPE,
        }
    }

    fn parse(s: &str) -> Result<Self, OAuthError> {
        match s {
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            "client_credentials" => Ok(Self::ClientCredentials),
            TOKEN_EXCHANGE => Ok(Self::TokenExchange),
            super::device::GRANT_TYPE => Ok(Self::DeviceCode),
            // Implicit and password are deliberately absent (RFC 9700 §2.1.2, §2.4).
            other => Err(bad(format!("grant type {other:?} is not supported"))),
        }
    }
}

/// Token endpoint authentication methods Sigil accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 §2.2 assertion signed HS256 with the client secret (OIDC Core §9).
    ClientSecretJwt,
    /// RFC 7523 §2.2 assertion signed with the client's private key (OIDC Core §9).
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub const SUPPORTED: [&'static str; 5] = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
    ];
    /// The methods of clients that hold credentials (`SUPPORTED` without `none`).
    pub const CONFIDENTIAL: [&'static str; 4] = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    fn parse(s: &str) -> Result<Self, OAuthError> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "client_secret_jwt" => Ok(Self::ClientSecretJwt),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            "none" => Ok(Self::None),
            other => Err(bad(format!(
                "token_endpoint_auth_method {other:?} is not supported (one of {})",
                Self::SUPPORTED.join(", ")
            ))),
        }
    }

    pub fn is_confidential(self) -> bool {
        !matches!(self, Self::None)
    }

    /// Whether Sigil issues the client a secret: every confidential method but
    /// `private_key_jwt`, whose client holds a key pair instead.
    pub fn uses_secret(self) -> bool {
        !matches!(self, Self::None | Self::PrivateKeyJwt)
    }

    /// The assertion algorithms this method allows (OIDC Core §9), empty for the others.
    pub fn assertion_algs(self) -> &'static [&'static str] {
        match self {
            Self::ClientSecretJwt => &AssertionAlg::SECRET,
            Self::PrivateKeyJwt => &AssertionAlg::PRIVATE_KEY,
            _ => &[],
        }
    }
}

/// Signing algorithms a client may ask for its ID tokens and UserInfo.
pub const CLIENT_SIGNING_ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "EdDSA", "HS256"];

/// Metadata as submitted; every member optional, unknown members ignored (RFC 7591 §2).
#[derive(Debug, Default, Deserialize)]
struct Submitted {
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    scope: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    id_token_signed_response_alg: Option<String>,
    id_token_encrypted_response_alg: Option<String>,
    id_token_encrypted_response_enc: Option<String>,
    userinfo_signed_response_alg: Option<String>,
    userinfo_encrypted_response_alg: Option<String>,
    userinfo_encrypted_response_enc: Option<String>,
    backchannel_logout_uri: Option<String>,
    client_name: Option<String>,
    skip_consent: Option<bool>,
    minimum_acr: Option<String>,
    groups_filter: Option<String>,
    require_pushed_authorization_requests: Option<bool>,
    request_object_signing_alg: Option<String>,
    dpop_bound_access_tokens: Option<bool>,
}

/// Checked metadata, with defaults filled in; this is what is stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    /// The one algorithm the client's assertions may use (OIDC Registration §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    pub id_token_signed_response_alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<String>,
    /// ID tokens encrypted (nested JWT) with this key management algorithm and `_enc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_encrypted_response_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_encrypted_response_enc: Option<String>,
    /// UserInfo responses encrypted with this algorithm and `_enc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_encrypted_response_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_encrypted_response_enc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default)]
    pub skip_consent: bool,
    /// Sigil's own: tokens only at this level or above (`mfa` or `phr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_acr: Option<Acr>,
    /// Sigil's own: the client sees only the groups whose name starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_filter: Option<String>,
    /// RFC 9126 §6: `/authorize` takes this client's requests only through `/par`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9101 / OIDC Registration §2: the one algorithm of this client's request objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<String>,
    /// RFC 9449 §5.2: every token request of this client carries a DPoP proof.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
}

impl ClientMetadata {
    /// Which of a user's groups (sorted names) this client sees: those its `groups_filter`
    /// lets through.
    pub fn visible_groups(&self, names: Vec<String>) -> Vec<String> {
        super::groups::visible(names, self.groups_filter.as_deref())
    }
}

/// A registered client as the protocol sees it.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub metadata: ClientMetadata,
    pub secret: Option<ClientSecret>,
}

impl Client {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.metadata.grant_types.contains(&grant)
    }

    /// The name shown to people: `client_name`, else the client id.
    pub fn display_name(&self) -> &str {
        self.metadata
            .client_name
            .as_deref()
            .unwrap_or(&self.client_id)
    }

    pub fn registered_scope(&self) -> Scope {
        Scope::parse(&self.metadata.scope).unwrap_or_default()
    }
}

fn bad(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description.into())
}

fn bad_redirect(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description.into())
}

impl ClientMetadata {
    /// Parses and checks submitted metadata JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, OAuthError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| bad(format!("metadata is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(bad("metadata must be a JSON object"));
        }
        let submitted: Submitted =
            serde_json::from_value(value).map_err(|e| bad(format!("metadata: {e}")))?;
        Self::check(submitted)
    }

    fn check(s: Submitted) -> Result<Self, OAuthError> {
        let token_endpoint_auth_method = match s.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => AuthMethod::parse(m)?,
        };
        let grant_types = match s.grant_types {
            // RFC 7591 §2: the default is ["authorization_code"].
            None => vec![GrantType::AuthorizationCode],
            Some(list) if list.is_empty() => return Err(bad("grant_types must not be empty")),
            Some(list) => {
                let mut out = Vec::new();
                for g in &list {
                    let g = GrantType::parse(g)?;
                    if !out.contains(&g) {
                        out.push(g);
                    }
                }
                out
            }
        };
        let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
        let response_types = match s.response_types {
            None if uses_code => vec!["code".to_string()],
            None => vec![],
            Some(list) => {
                if let Some(other) = list.iter().find(|r| r.as_str() != "code") {
                    return Err(bad(format!(
                        "response_type {other:?} is not supported (only \"code\")"
                    )));
                }
                list.into_iter().take(1).collect()
            }
        };
        // RFC 7591 §2.1: grant_types and response_types must agree.
        if uses_code == response_types.is_empty() {
            return Err(bad(
                "response_types \"code\" goes with grant_types \"authorization_code\", and only with it",
            ));
        }
        // A user's grant is what a refresh token continues: the code's or the device's.
        let uses_device = grant_types.contains(&GrantType::DeviceCode);
        if grant_types.contains(&GrantType::RefreshToken) && !uses_code && !uses_device {
            return Err(bad(
                "refresh_token needs the authorization_code or the device_code grant",
            ));
        }
        for (grant, name) in [
            (GrantType::ClientCredentials, "client_credentials"),
            (GrantType::TokenExchange, "token exchange"),
        ] {
            if grant_types.contains(&grant) && !token_endpoint_auth_method.is_confidential() {
                return Err(bad(format!(
                    "{name} needs a confidential client (one that authenticates)"
                )));
            }
        }

        let redirect_uris = s.redirect_uris.unwrap_or_default();
        if uses_code && redirect_uris.is_empty() {
            return Err(bad_redirect(
                "redirect_uris is required for the authorization_code grant",
            ));
        }
        for uri in &redirect_uris {
            check_uri(uri).map_err(|e| bad_redirect(format!("redirect_uri {uri:?}: {e}")))?;
        }
        let post_logout_redirect_uris = s.post_logout_redirect_uris.unwrap_or_default();
        for uri in &post_logout_redirect_uris {
            check_uri(uri).map_err(|e| bad(format!("post_logout_redirect_uri {uri:?}: {e}")))?;
        }
        if let Some(uri) = &s.backchannel_logout_uri {
            check_uri(uri).map_err(|e| bad(format!("backchannel_logout_uri {uri:?}: {e}")))?;
        }

        let scope = match &s.scope {
            Some(text) => Scope::parse(text).map_err(bad)?,
            None if uses_code || uses_device => Scope::parse("openid").expect("static scope"),
            None => Scope::default(),
        };

        if s.jwks.is_some() && s.jwks_uri.is_some() {
            // RFC 7591 §2: "MUST NOT both be present".
            return Err(bad("jwks and jwks_uri must not both be present"));
        }
        if let Some(jwks) = &s.jwks {
            check_jwks(jwks)?;
        }
        if let Some(uri) = &s.jwks_uri {
            let url = Url::parse(uri).map_err(|e| bad(format!("jwks_uri {uri:?}: {e}")))?;
            if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() {
                return Err(bad("jwks_uri must be an http(s) URL without a fragment"));
            }
        }

        check_assertion_keys(
            token_endpoint_auth_method,
            s.token_endpoint_auth_signing_alg.as_deref(),
            s.jwks.as_ref(),
            s.jwks_uri.is_some(),
        )?;

        let check_alg = |name: &str, alg: &str| -> Result<(), OAuthError> {
            if !CLIENT_SIGNING_ALGS.contains(&alg) {
                return Err(bad(format!(
                    "{name} {alg:?} is not supported (one of {})",
                    CLIENT_SIGNING_ALGS.join(", ")
                )));
            }
            // OIDC Core §10.1: HMAC is keyed with the client secret; public clients have none.
            if alg == "HS256" && !token_endpoint_auth_method.uses_secret() {
                return Err(bad(format!("{name} HS256 needs a client secret")));
            }
            Ok(())
        };
        let id_token_signed_response_alg = s
            .id_token_signed_response_alg
            .unwrap_or_else(|| "RS256".into());
        check_alg(
            "id_token_signed_response_alg",
            &id_token_signed_response_alg,
        )?;
        if let Some(alg) = &s.userinfo_signed_response_alg {
            check_alg("userinfo_signed_response_alg", alg)?;
        }
        let keys = EncryptionKeys {
            uses_secret: token_endpoint_auth_method.uses_secret(),
            jwks: s.jwks.as_ref(),
            has_jwks_uri: s.jwks_uri.is_some(),
        };
        let (id_token_encrypted_response_alg, id_token_encrypted_response_enc) = keys.check(
            "id_token_encrypted_response",
            s.id_token_encrypted_response_alg,
            s.id_token_encrypted_response_enc,
        )?;
        let (userinfo_encrypted_response_alg, userinfo_encrypted_response_enc) = keys.check(
            "userinfo_encrypted_response",
            s.userinfo_encrypted_response_alg,
            s.userinfo_encrypted_response_enc,
        )?;
        if let Some(name) = &s.client_name {
            if name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Err(bad("client_name must be at most 200 printable characters"));
            }
        }

        let minimum_acr = match s.minimum_acr.as_deref() {
            None => None,
            Some(v) => match Acr::parse(v) {
                Some(acr @ (Acr::Mfa | Acr::Phr)) => Some(acr),
                _ => return Err(bad("minimum_acr must be mfa or phr")),
            },
        };
        if let Some(alg) = &s.request_object_signing_alg {
            super::request_object::check_registered_alg(alg).map_err(bad)?;
            if s.jwks.is_none() && s.jwks_uri.is_none() {
                return Err(bad(
                    "request_object_signing_alg needs the client's public keys (jwks or jwks_uri)",
                ));
            }
        }
        if let Some(prefix) = &s.groups_filter {
            super::groups::check_filter(prefix).map_err(bad)?;
        }
        Ok(Self {
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            response_types,
            token_endpoint_auth_method,
            token_endpoint_auth_signing_alg: s.token_endpoint_auth_signing_alg,
            scope: scope.to_string(),
            jwks: s.jwks,
            jwks_uri: s.jwks_uri,
            id_token_signed_response_alg,
            userinfo_signed_response_alg: s.userinfo_signed_response_alg,
            id_token_encrypted_response_alg,
            id_token_encrypted_response_enc,
            userinfo_encrypted_response_alg,
            userinfo_encrypted_response_enc,
            backchannel_logout_uri: s.backchannel_logout_uri,
            client_name: s.client_name,
            skip_consent: s.skip_consent.unwrap_or(false),
            minimum_acr,
            groups_filter: s.groups_filter,
            require_pushed_authorization_requests: s
                .require_pushed_authorization_requests
                .unwrap_or(false),
            request_object_signing_alg: s.request_object_signing_alg,
            dpop_bound_access_tokens: s.dpop_bound_access_tokens.unwrap_or(false),
        })
    }
}

/// Absolute, no fragment (RFC 6749 §3.1.2), and not a scheme that runs code.
fn check_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("not an absolute URI ({e})"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err("must not contain a fragment".into());
    }
    if matches!(url.scheme(), "javascript" | "data" | "vbscript" | "file") {
        return Err(format!("scheme {:?} is not allowed", url.scheme()));
    }
    if matches!(url.scheme(), "http" | "https") && url.host_str().unwrap_or("").is_empty() {
        return Err("needs a host".into());
    }
    Ok(())
}

/// OIDC Registration §2 `token_endpoint_auth_signing_alg`, for the JWT methods only:
/// `client_secret_jwt` signs HS256; `private_key_jwt` RS256, PS256, ES256 or EdDSA, and needs
/// keys — a `jwks_uri`, or a `jwks` with at least one usable key for that algorithm.
fn check_assertion_keys(
    method: AuthMethod,
    signing_alg: Option<&str>,
    jwks: Option<&Value>,
    has_jwks_uri: bool,
) -> Result<(), OAuthError> {
    let allowed = method.assertion_algs();
    let pinned =
        match signing_alg {
            None => None,
            Some(_) if allowed.is_empty() => return Err(bad(
                "token_endpoint_auth_signing_alg goes with client_secret_jwt or private_key_jwt",
            )),
            Some(alg) if !allowed.contains(&alg) => {
                return Err(bad(format!(
                    "token_endpoint_auth_signing_alg {alg:?} is not allowed with {} (one of {})",
                    method.as_str(),
                    allowed.join(", ")
                )))
            }
            Some(alg) => AssertionAlg::parse(alg),
        };
    if method != AuthMethod::PrivateKeyJwt {
        return Ok(());
    }
    match jwks {
        Some(jwks) if client_keys::from_jwks(jwks, pinned).is_empty() => Err(bad(format!(
            "private_key_jwt: jwks holds no public signature key usable with {}",
            pinned.map_or("RS256, PS256, ES256 or EdDSA", AssertionAlg::as_str)
        ))),
        Some(_) => Ok(()),
        None if has_jwks_uri => Ok(()),
        None => Err(bad("private_key_jwt needs jwks or jwks_uri")),
    }
}

/// What a client can be encrypted to: its secret (A256KW, dir) or its public keys.
struct EncryptionKeys<'a> {
    uses_secret: bool,
    jwks: Option<&'a Value>,
    has_jwks_uri: bool,
}

impl EncryptionKeys<'_> {
    /// OIDC Registration §2 `*_encrypted_response_alg` / `_enc`: a supported pair (`_enc`
    /// defaults to A128CBC-HS256 and needs `_alg`), and a key to encrypt to — the client secret
    /// for A256KW and dir, else a fitting key in `jwks` (or a `jwks_uri`, read when used).
    fn check(
        &self,
        name: &str,
        alg: Option<String>,
        enc: Option<String>,
    ) -> Result<(Option<String>, Option<String>), OAuthError> {
        let Some(alg) = alg else {
            return match enc {
                None => Ok((None, None)),
                Some(_) => Err(bad(format!("{name}_enc needs {name}_alg"))),
            };
        };
        let enc = jwe::check_pair(&alg, enc.as_deref())
            .map_err(|e| bad(format!("{name}_alg/_enc: {e}")))?
            .to_string();
        if jwe::is_symmetric(&alg) {
            if !self.uses_secret {
                return Err(bad(format!(
                    "{name}_alg {alg} is keyed by the client secret, and this client has none"
                )));
            }
        } else {
            match self.jwks {
                // The key Sigil will pick must take an encryption (a curve openssl knows, a
                // point on it): otherwise every token for this client fails later, as a 500.
                Some(jwks) => {
                    if let Err(e) = jwe::encrypt("h.p.s", &alg, &enc, jwe::Recipient::Keys(jwks)) {
                        return Err(bad(format!(
                            "{name}_alg {alg}: jwks holds no public encryption key Sigil can use \
                             for it ({e})"
                        )));
                    }
                }
                None if self.has_jwks_uri => {}
                None => return Err(bad(format!("{name}_alg {alg} needs jwks or jwks_uri"))),
            }
        }
        Ok((Some(alg), Some(enc)))
    }
}

/// A JWK Set of public keys only (RFC 7517 §5).
fn check_jwks(jwks: &Value) -> Result<(), OAuthError> {
    super::jwk_set::check_public(jwks).map_err(bad)
}

pub mod self_registered;

#[cfg(test)]
mod tests;
