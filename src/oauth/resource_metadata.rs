//! Resource servers (RFC 8707 resource indicators): the registration JSON, parsed and checked,
//! and the rules that decide whether a client may have a token for a resource and what scope
//! that token carries. Unknown metadata names are ignored, like client metadata (RFC 7591 §2).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::client_metadata::Client;
use super::scope::Scope;
use super::{ErrorCode, OAuthError};
use crate::config::DurationSetting;
use crate::tokens::jwe;

/// Key management algorithms a resource may register for encrypted access tokens.
pub const ENCRYPTION_ALGS: [&str; 3] = ["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW"];
/// Content encryption algorithms; the first is the default.
pub const ENCRYPTION_ENCS: [&str; 2] = ["A256GCM", "A128CBC-HS256"];
/// DESIGN.md: access tokens live between 5 and 15 minutes, as `tokens.access_ttl` does.
const TTL_RANGE: std::ops::RangeInclusive<u64> = crate::config::ACCESS_TTL_RANGE;
/// A resource indicator longer than this is refused rather than stored or compared.
const MAX_URI_LEN: usize = 2048;

/// Metadata as submitted; unknown members are ignored.
#[derive(Debug, Default, Deserialize)]
struct Submitted {
    resource: Option<String>,
    scope: Option<String>,
    access_token_ttl: Option<String>,
    jwks: Option<Value>,
    access_token_encrypted_response_alg: Option<String>,
    access_token_encrypted_response_enc: Option<String>,
}

/// A registered resource server, checked and normalised; this is what is stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceMetadata {
    /// The resource indicator, compared as an exact string; the access token's `aud`.
    pub resource: String,
    /// The scopes the resource accepts, space-separated and sorted.
    pub scope: String,
    /// The lifetime of access tokens for this resource; `tokens.access_ttl` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<DurationSetting>,
    /// Public keys to encrypt access tokens to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Encrypted access tokens: a nested JWT, signed and then encrypted to a key of `jwks`
    /// (src/endpoints/token/issue.rs `Target::seal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_encrypted_response_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_encrypted_response_enc: Option<String>,
}

fn bad(description: impl Into<String>) -> OAuthError {
    OAuthError::invalid_request(description.into())
}

fn invalid_target(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, description.into())
}

/// RFC 8707 §2: the `resource` parameter "MUST be an absolute URI" and "MUST NOT include a
/// fragment component"; anything else is `invalid_target`.
pub fn check_indicator(value: &str) -> Result<&str, OAuthError> {
    if value.len() > MAX_URI_LEN {
        return Err(invalid_target("resource is too long"));
    }
    let url = Url::parse(value).map_err(|_| invalid_target("resource must be an absolute URI"))?;
    if url.fragment().is_some() || value.contains('#') {
        return Err(invalid_target("resource must not contain a fragment"));
    }
    Ok(value)
}

impl ResourceMetadata {
    /// Parses and checks registration JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, OAuthError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| bad(format!("resource metadata is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(bad("resource metadata must be a JSON object"));
        }
        let submitted: Submitted =
            serde_json::from_value(value).map_err(|e| bad(format!("resource metadata: {e}")))?;
        Self::check(submitted)
    }

    fn check(s: Submitted) -> Result<Self, OAuthError> {
        let resource = s.resource.ok_or_else(|| bad("resource is required"))?;
        check_resource_uri(&resource).map_err(|e| bad(format!("resource {resource:?}: {e}")))?;
        let scope = s.scope.ok_or_else(|| bad("scope is required"))?;
        let scope = Scope::parse(&scope).map_err(bad)?;
        if scope.is_empty() {
            return Err(bad(
                "scope must name at least one scope the resource accepts",
            ));
        }
        let access_token_ttl = s.access_token_ttl.as_deref().map(check_ttl).transpose()?;
        if let Some(jwks) = &s.jwks {
            check_jwks(jwks)?;
        }
        let (alg, enc) = check_encryption(
            s.access_token_encrypted_response_alg,
            s.access_token_encrypted_response_enc,
            s.jwks.as_ref(),
        )?;
        Ok(Self {
            resource,
            scope: scope.to_string(),
            access_token_ttl,
            jwks: s.jwks,
            access_token_encrypted_response_alg: alg,
            access_token_encrypted_response_enc: enc,
        })
    }

    pub fn accepted_scope(&self) -> Scope {
        Scope::parse(&self.scope).unwrap_or_default()
    }

    /// The access token lifetime in seconds, if the resource set its own.
    pub fn ttl_secs(&self) -> Option<i64> {
        self.access_token_ttl.map(|d| d.as_secs() as i64)
    }

    /// DESIGN.md: a client may ask for a resource when at least one of the client's registered
    /// scopes is among the resource's.
    pub fn admits(&self, client: &Client) -> bool {
        let accepted = self.accepted_scope();
        client
            .registered_scope()
            .iter()
            .any(|s| accepted.contains(s))
    }

    /// The scope of a token for this resource: the requested (or granted) scopes it accepts.
    ///
    /// When none remain the answer is `invalid_scope`, not `invalid_target`: the resource itself
    /// is known and this client may use it (RFC 8707 §2 keeps `invalid_target` for a resource
    /// that is "invalid, missing, unknown, or malformed"), so it is the requested scope that is
    /// invalid for the request (RFC 6749 §5.2, §4.1.2.1).
    pub fn token_scope(&self, requested: &Scope) -> Result<Scope, OAuthError> {
        let accepted = self.accepted_scope();
        let kept: Vec<&str> = requested.iter().filter(|s| accepted.contains(s)).collect();
        if kept.is_empty() {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "none of the requested scopes is accepted by the requested resource",
            ));
        }
        Ok(Scope::parse(&kept.join(" ")).unwrap_or_default())
    }
}

/// RFC 8707 §2: the resource a client named, found in the registry (`found`) and open to this
/// client; otherwise `invalid_target`.
pub fn admit(
    found: Option<ResourceMetadata>,
    client: &Client,
) -> Result<ResourceMetadata, OAuthError> {
    let resource = found.ok_or_else(|| invalid_target("the requested resource is unknown"))?;
    if !resource.admits(client) {
        return Err(invalid_target(
            "this client may not ask for tokens for the requested resource",
        ));
    }
    Ok(resource)
}

/// A registered resource: an absolute http(s) URI with a host and no fragment (RFC 8707 §2).
fn check_resource_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI_LEN {
        return Err(format!("must be at most {MAX_URI_LEN} characters"));
    }
    let url = Url::parse(uri).map_err(|e| format!("is not an absolute URI ({e})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an http(s) URI".into());
    }
    if url.host_str().unwrap_or("").is_empty() {
        return Err("needs a host".into());
    }
    if url.fragment().is_some() || uri.contains('#') {
        return Err("must not contain a fragment".into());
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

fn check_ttl(text: &str) -> Result<DurationSetting, OAuthError> {
    let ttl: DurationSetting = text
        .parse()
        .map_err(|e: String| bad(format!("access_token_ttl: {e}")))?;
    if ttl.0.subsec_nanos() != 0 || !TTL_RANGE.contains(&ttl.as_secs()) {
        return Err(bad(format!(
            "access_token_ttl must be between 5m and 15m in whole seconds, not {text}"
        )));
    }
    Ok(ttl)
}

/// A JWK Set of public keys only (RFC 7517 §5).
fn check_jwks(jwks: &Value) -> Result<(), OAuthError> {
    super::jwk_set::check_public(jwks).map_err(bad)
}

/// The encryption settings: `_enc` needs `_alg` and defaults to A256GCM (as OIDC Registration
/// §2 does for ID tokens), and `jwks` must hold a key usable for encryption with `_alg`.
fn check_encryption(
    alg: Option<String>,
    enc: Option<String>,
    jwks: Option<&Value>,
) -> Result<(Option<String>, Option<String>), OAuthError> {
    let Some(alg) = alg else {
        if enc.is_some() {
            return Err(bad(
                "access_token_encrypted_response_enc needs access_token_encrypted_response_alg",
            ));
        }
        return Ok((None, None));
    };
    if !ENCRYPTION_ALGS.contains(&alg.as_str()) {
        return Err(bad(format!(
            "access_token_encrypted_response_alg {alg:?} is not supported (one of {})",
            ENCRYPTION_ALGS.join(", ")
        )));
    }
    let enc = enc.unwrap_or_else(|| ENCRYPTION_ENCS[0].to_string());
    if !ENCRYPTION_ENCS.contains(&enc.as_str()) {
        return Err(bad(format!(
            "access_token_encrypted_response_enc {enc:?} is not supported (one of {})",
            ENCRYPTION_ENCS.join(", ")
        )));
    }
    let (Some(jwks), Some(keys)) = (jwks, jwks.and_then(|j| j["keys"].as_array())) else {
        return Err(bad(format!(
            "access_token_encrypted_response_alg {alg} needs jwks"
        )));
    };
    if !keys.iter().any(|k| encrypts_with(k, &alg)) {
        return Err(bad(format!(
            "jwks has no encryption key for {alg} (RSA-OAEP-256 needs an RSA key, ECDH-ES an EC \
             P-256/P-384/P-521 or X25519/X448 key; \"use\", when present, must be \"enc\")"
        )));
    }
    // The key the token endpoint will pick must take an encryption (a point on its curve, a
    // modulus openssl accepts): otherwise every token for this resource fails later, as a 500.
    if let Err(e) = jwe::encrypt("h.p.s", &alg, &enc, jwe::Recipient::Keys(jwks)) {
        return Err(bad(format!(
            "jwks has no key Sigil can encrypt to with {alg} ({e})"
        )));
    }
    Ok((Some(alg), Some(enc)))
}

fn encrypts_with(key: &Value, alg: &str) -> bool {
    let text = |name: &str| key.get(name).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "enc") || text("alg").is_some_and(|a| a != alg) {
        return false;
    }
    match (alg, text("kty"), text("crv")) {
        ("RSA-OAEP-256", Some("RSA"), _) => true,
        (_, Some("EC"), Some("P-256" | "P-384" | "P-521")) => alg != "RSA-OAEP-256",
        (_, Some("OKP"), Some("X25519" | "X448")) => alg != "RSA-OAEP-256",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client_metadata::ClientMetadata;

    const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn parse(json: &str) -> Result<ResourceMetadata, OAuthError> {
        ResourceMetadata::from_json(json.as_bytes())
    }

    fn client(scope: &str) -> Client {
        let json = format!(r#"{{"grant_types":["client_credentials"],"scope":"{scope}"}}"#);
        Client {
            client_id: "c".into(),
            metadata: ClientMetadata::from_json(json.as_bytes()).unwrap(),
            secret: None,
        }
    }

    #[test]
    fn minimal_metadata_is_normalised_and_unknown_names_ignored() {
        let m =
            parse(r#"{"resource":"https://api.example/v1","scope":"b a a","extra":1}"#).unwrap();
        assert_eq!(m.resource, "https://api.example/v1");
        assert_eq!(m.scope, "a b");
        assert_eq!(m.access_token_ttl, None);
        let stored = serde_json::to_value(&m).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"resource":"https://api.example/v1","scope":"a b"})
        );
    }

    #[test]
    fn resource_must_be_an_absolute_http_uri_without_fragment() {
        for uri in [
            "/api",
            "api.example",
            "https://api.example/#x",
            "https://api.example/#",
            "urn:example:api",
            "ftp://api.example/",
            "https://api .example/",
        ] {
            let json = serde_json::json!({"resource": uri, "scope": "a"}).to_string();
            assert!(parse(&json).is_err(), "{uri}");
        }
        assert!(parse(r#"{"scope":"a"}"#).is_err());
        assert!(parse(r#"{"resource":"https://api.example/"}"#).is_err());
        assert!(parse(r#"{"resource":"https://api.example/","scope":" "}"#).is_err());
        assert!(parse(r#"{"resource":"https://api.example/","scope":"a\"b"}"#).is_err());
        assert!(parse(r#"{"resource":"https://api.example/","scope":["a"]}"#).is_err());
        assert!(parse(r#"["https://api.example/"]"#).is_err());
    }

    #[test]
    fn ttl_must_be_between_5_and_15_minutes() {
        let with = |ttl: &str| {
            parse(&format!(
                r#"{{"resource":"https://api.example/","scope":"a","access_token_ttl":"{ttl}"}}"#
            ))
        };
        assert_eq!(with("5m").unwrap().ttl_secs(), Some(300));
        assert_eq!(with("15m").unwrap().ttl_secs(), Some(900));
        assert_eq!(with("420s").unwrap().ttl_secs(), Some(420));
        for bad in ["4m", "16m", "1h", "0s", "ten", "5m 500ms"] {
            assert!(with(bad).is_err(), "{bad}");
        }
        let stored = serde_json::to_value(with("300s").unwrap()).unwrap();
        assert_eq!(stored["access_token_ttl"], "5m");
    }

    #[test]
    fn encryption_needs_a_public_key_for_a_supported_alg() {
        let with = |extra: &str| {
            parse(&format!(
                r#"{{"resource":"https://api.example/","scope":"a"{extra}}}"#
            ))
        };
        let m = with(&format!(
            r#","jwks":{{"keys":[{EC_KEY}]}},"access_token_encrypted_response_alg":"ECDH-ES""#
        ))
        .unwrap();
        assert_eq!(
            m.access_token_encrypted_response_enc.as_deref(),
            Some("A256GCM")
        );
        assert!(with(&format!(
            r#","jwks":{{"keys":[{EC_KEY}]}},"access_token_encrypted_response_alg":"ECDH-ES+A256KW","access_token_encrypted_response_enc":"A128CBC-HS256""#
        ))
        .is_ok());
        // An EC key cannot do RSA-OAEP-256; unknown algorithms; enc without alg; no jwks.
        assert!(with(&format!(
            r#","jwks":{{"keys":[{EC_KEY}]}},"access_token_encrypted_response_alg":"RSA-OAEP-256""#
        ))
        .is_err());
        assert!(with(&format!(
            r#","jwks":{{"keys":[{EC_KEY}]}},"access_token_encrypted_response_alg":"RSA1_5""#
        ))
        .is_err());
        assert!(with(&format!(
            r#","jwks":{{"keys":[{EC_KEY}]}},"access_token_encrypted_response_alg":"ECDH-ES","access_token_encrypted_response_enc":"A128GCM""#
        ))
        .is_err());
        assert!(with(r#","access_token_encrypted_response_enc":"A256GCM""#).is_err());
        assert!(with(r#","access_token_encrypted_response_alg":"ECDH-ES""#).is_err());
        // Private or incomplete keys.
        assert!(with(r#","jwks":{"keys":[{"kty":"oct","k":"AAAA"}]}"#).is_err());
        assert!(with(r#","jwks":{"keys":[{"kty":"RSA"}]}"#).is_err());
        assert!(with(r#","jwks":{"keys":[]}"#).is_err());
        // A signing-only key is no encryption key.
        let sig_key = EC_KEY.replace("\"kty\"", "\"use\":\"sig\",\"kty\"");
        assert!(with(&format!(
            r#","jwks":{{"keys":[{sig_key}]}},"access_token_encrypted_response_alg":"ECDH-ES""#
        ))
        .is_err());
    }

    #[test]
    fn indicators_are_absolute_without_fragment() {
        assert!(check_indicator("https://api.example/v1").is_ok());
        for bad in [
            "/v1",
            "api",
            "https://api.example/#f",
            "https://api.example/#",
        ] {
            assert_eq!(
                check_indicator(bad).unwrap_err().code,
                ErrorCode::InvalidTarget,
                "{bad}"
            );
        }
    }

    #[test]
    fn clients_need_a_shared_scope_and_tokens_keep_only_accepted_scopes() {
        let api =
            parse(r#"{"resource":"https://api.example/","scope":"api:read api:write"}"#).unwrap();
        assert!(admit(Some(api.clone()), &client("openid api:read")).is_ok());
        let refused = admit(Some(api.clone()), &client("openid other")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidTarget);
        assert_eq!(
            admit(None, &client("api:read")).unwrap_err().code,
            ErrorCode::InvalidTarget
        );
        let narrowed = api
            .token_scope(&Scope::parse("openid api:read email").unwrap())
            .unwrap();
        assert_eq!(narrowed.to_string(), "api:read");
        assert_eq!(
            api.token_scope(&Scope::parse("openid").unwrap())
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }
}
