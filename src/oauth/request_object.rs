//! Signed request objects (RFC 9101): the authorization request as the claims of a JWS the
//! client signed with one of its registered keys. The algorithm is the key's (or the one the
//! client registered as `request_object_signing_alg`), never the header's alone, and never
//! `none`. The object's claims are the request (§6.3): parameters outside it are ignored, but for
//! `client_id`, which must agree.

use serde_json::{Map, Value};

use super::client_assertion::{self, Assertion};
use super::client_keys::{AssertionAlg, VerifyingKey};
use super::form::Params;
use super::{ErrorCode, OAuthError};

/// The algorithms a request object may be signed with: the client's public keys.
pub const ALGS: [&str; 4] = AssertionAlg::PRIVATE_KEY;

/// Claims of the JWT itself, not parameters of the request.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "jti"];

/// What the object is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub client_id: &'a str,
    /// Sigil's issuer: the object's `aud` must name it.
    pub issuer: &'a str,
    pub now: i64,
    pub clock_skew: i64,
}

/// An `invalid_request_object` error; the reason is the description (it names no secret).
pub fn invalid(why: impl std::fmt::Display) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidRequestObject,
        format!("the request object is invalid: {why}"),
    )
}

/// Decodes `jwt` (a compact JWS, at most 64 kB; an encrypted one is refused).
pub fn parse(jwt: &str) -> Result<Assertion, OAuthError> {
    client_assertion::parse(jwt).map_err(invalid)
}

/// Verifies the signature with `keys`, then the claims; returns the request's parameters.
pub fn verify(
    object: &Assertion,
    keys: &[VerifyingKey],
    expected: &Expected<'_>,
) -> Result<Params, OAuthError> {
    client_assertion::verify_signature(object, keys).map_err(invalid)?;
    params_of(object.claims(), expected)
}

/// The claims checked (RFC 9101 §4, §10.2: `iss` the client, `aud` Sigil, `client_id` the
/// client's, times not passed) and turned into parameters: strings as they are, numbers and
/// booleans as their text, objects (the `claims` parameter) as JSON.
fn params_of(claims: &Map<String, Value>, e: &Expected<'_>) -> Result<Params, OAuthError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if claims.contains_key("iss") && text("iss") != Some(e.client_id) {
        return Err(invalid("iss is not the client"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == e.issuer,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(e.issuer)),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid("aud does not name this issuer"));
    }
    if text("client_id") != Some(e.client_id) {
        return Err(invalid("client_id is missing or not the client's"));
    }
    let time = |name: &str| -> Result<Option<i64>, OAuthError> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid(format!("{name} is not a number"))),
        }
    };
    if time("exp")?.is_some_and(|exp| exp.saturating_add(e.clock_skew) <= e.now) {
        return Err(invalid("expired"));
    }
    if time("nbf")?.is_some_and(|nbf| nbf > e.now + e.clock_skew) {
        return Err(invalid("not valid yet"));
    }
    let mut params = Params::default();
    for (name, value) in claims {
        if JWT_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        if name == "request" || name == "request_uri" {
            return Err(invalid("a request object cannot hold another"));
        }
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            object => object.to_string(),
        };
        if !value.is_empty() {
            params.insert(name, &value);
        }
    }
    Ok(params)
}

/// The registered `request_object_signing_alg`, checked at registration: one of [`ALGS`].
pub fn check_registered_alg(alg: &str) -> Result<AssertionAlg, String> {
    AssertionAlg::parse(alg)
        .filter(|a| ALGS.contains(&a.as_str()))
        .ok_or_else(|| {
            format!(
                "request_object_signing_alg must be one of {}",
                ALGS.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const E: Expected<'static> = Expected {
        client_id: "rp",
        issuer: "https://sigil.example",
        now: 1_000,
        clock_skew: 30,
    };

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_claims_become_the_parameters() {
        let p = params_of(
            &claims(
                json!({"iss": "rp", "aud": ["x", "https://sigil.example"], "client_id": "rp",
                "scope": "openid", "max_age": 60, "claims": {"id_token": {"acr": null}},
                "exp": 1_100, "state": ""}),
            ),
            &E,
        )
        .unwrap();
        assert_eq!(p.get("scope"), Some("openid"));
        assert_eq!(p.get("max_age"), Some("60"));
        assert_eq!(p.get("claims"), Some(r#"{"id_token":{"acr":null}}"#));
        assert_eq!(p.get("iss"), None);
        assert_eq!(p.get("exp"), None);
        assert_eq!(p.get("state"), None, "empty is omitted");
    }

    #[test]
    fn wrong_issuer_audience_client_or_time_is_refused() {
        let base = json!({"aud": "https://sigil.example", "client_id": "rp"});
        assert!(params_of(&claims(base.clone()), &E).is_ok());
        for (k, v) in [
            ("iss", json!("other")),
            ("aud", json!("https://evil.example")),
            ("aud", json!([])),
            ("client_id", json!("other")),
            ("exp", json!(900)),
            ("exp", json!("2000")),
            ("nbf", json!(2_000)),
            ("request", json!("a.b.c")),
            ("request_uri", json!("urn:x")),
        ] {
            let mut c = claims(base.clone());
            c.insert(k.into(), v.clone());
            let e = params_of(&c, &E).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequestObject, "{k}={v}");
        }
        let mut c = claims(base);
        c.remove("client_id");
        assert!(params_of(&c, &E).is_err(), "client_id is required");
    }

    #[test]
    fn only_public_key_algorithms_can_be_registered() {
        assert!(check_registered_alg("PS256").is_ok());
        for bad in ["none", "HS256", "ps256", ""] {
            assert!(check_registered_alg(bad).is_err(), "{bad}");
        }
    }
}
