//! JWT client assertions (RFC 7523 §2.2, §3; RFC 7521 §4.2): `client_secret_jwt` and
//! `private_key_jwt` (OIDC Core §9). Pure checks: the caller supplies the client's keys, the
//! accepted audiences and the time, and records the `jti` afterwards.
//!
//! The algorithm is the key's (see `client_keys`): the header's `alg` must name it, and is
//! never used to choose how to verify (RFC 8725 §3.1). `jku`, `x5u`, `jwk`, `x5c` and `x5t`
//! are never read, so no key or URL in a token is ever trusted or fetched (RFC 8725 §3.10).

use std::fmt;

use base64::Engine;
use serde_json::{Map, Value};

use super::client_keys::VerifyingKey;

/// RFC 7523 §2.2: the `client_assertion_type` for a JWT.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The largest JWT Sigil accepts from anyone (SECURITY.md attack 6).
pub const MAX_ASSERTION_BYTES: usize = 64 * 1024;
/// The longest an assertion may still have to live when it arrives (plus the clock skew): an
/// assertion is made for one request, and its `jti` is remembered until it expires.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// At most this many keys are tried for an assertion without a `kid`.
const MAX_KEYS_TRIED: usize = 8;
const MAX_JTI_BYTES: usize = 512;

/// Why an assertion was refused; for the log only — the client always sees `invalid_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected(pub &'static str);

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A compact JWS, decoded but not yet trusted.
pub struct Assertion {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Assertion([redacted])")
    }
}

/// What a verified assertion tells the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub jti: String,
    pub exp: i64,
}

/// What the assertion must say, and when it is checked.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub client_id: &'a str,
    /// RFC 7523 §3 item 3: values identifying Sigil — its issuer and its token endpoint URL.
    pub audiences: &'a [&'a str],
    pub now: i64,
    pub clock_skew: i64,
}

/// Decodes the three parts (size first, so nothing large is decoded). A JWE (five parts) or
/// anything else is refused.
pub fn parse(token: &str) -> Result<Assertion, Rejected> {
    if token.len() > MAX_ASSERTION_BYTES {
        return Err(Rejected("larger than 64 kB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejected("not a compact JWS"));
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| Rejected("not base64url"))
    };
    let object = |bytes: Vec<u8>| {
        serde_json::from_slice::<Map<String, Value>>(&bytes)
            .map_err(|_| Rejected("header or claims are not a JSON object"))
    };
    Ok(Assertion {
        header: object(decode(h)?)?,
        claims: object(decode(p)?)?,
        signing_input: token[..h.len() + 1 + p.len()].to_string(),
        signature: decode(s)?,
    })
}

impl Assertion {
    /// RFC 7523 §3 item 2: for client authentication the subject is the client id; the client
    /// is looked up by it before anything is trusted.
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// The `kid` header; anything but a string is refused (SECURITY.md attack 3).
    pub fn kid(&self) -> Result<Option<&str>, Rejected> {
        match self.header.get("kid") {
            None => Ok(None),
            Some(Value::String(kid)) => Ok(Some(kid)),
            Some(_) => Err(Rejected("kid is not a string")),
        }
    }

    /// The claims, not yet trusted.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `alg` header; `none` in any spelling is refused.
    pub fn alg(&self) -> Result<&str, Rejected> {
        let alg = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(Rejected("no alg"))?;
        // RFC 8725 §3.2: unsecured JWTs are never accepted, whatever the spelling.
        if alg.eq_ignore_ascii_case("none") {
            return Err(Rejected("alg none"));
        }
        Ok(alg)
    }
}

/// Verifies the signature with the client's keys, then the claims (RFC 7523 §3).
pub fn verify(
    assertion: &Assertion,
    keys: &[VerifyingKey],
    expected: &Expected<'_>,
) -> Result<Verified, Rejected> {
    check_header(assertion)?;
    check_signature(assertion, keys)?;
    check_claims(&assertion.claims, expected)
}

/// The header checks and the signature alone, for a JWS whose claims the caller checks itself
/// (a request object, RFC 9101).
pub fn verify_signature(assertion: &Assertion, keys: &[VerifyingKey]) -> Result<(), Rejected> {
    check_header(assertion)?;
    check_signature(assertion, keys)
}

/// RFC 7515 §4.1.11: an extension listed in `crit` must be understood; Sigil knows none.
fn check_header(assertion: &Assertion) -> Result<(), Rejected> {
    if assertion.header.contains_key("crit") {
        return Err(Rejected("crit header"));
    }
    assertion.alg().map(|_| ())
}

/// The key named by `kid` (or, without one, each key; a client secret, the client's only key,
/// has no id and answers to any) must carry exactly the header's algorithm and verify the
/// signature.
fn check_signature(assertion: &Assertion, keys: &[VerifyingKey]) -> Result<(), Rejected> {
    let alg = assertion.alg()?;
    let kid = assertion.kid()?;
    let candidates: Vec<&VerifyingKey> = keys
        .iter()
        .filter(|k| match (kid, &k.kid) {
            (Some(wanted), Some(own)) => wanted == own,
            // No kid, or a key without one (the client secret: its one key).
            _ => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(Rejected("no key of the client has this kid"));
    }
    let mut fitting = candidates
        .into_iter()
        .filter(|k| k.alg.as_str() == alg)
        .take(MAX_KEYS_TRIED)
        .peekable();
    if fitting.peek().is_none() {
        return Err(Rejected("alg is not the key's algorithm"));
    }
    let input = assertion.signing_input.as_bytes();
    if fitting.any(|k| k.verifies(input, &assertion.signature)) {
        Ok(())
    } else {
        Err(Rejected("bad signature"))
    }
}

/// RFC 7523 §3 items 1–7, each claim of its JSON type.
fn check_claims(claims: &Map<String, Value>, e: &Expected<'_>) -> Result<Verified, Rejected> {
    let string = |name: &'static str| claims.get(name).and_then(Value::as_str);
    // Items 1, 2: iss and sub are both the client id.
    if string("iss") != Some(e.client_id) {
        return Err(Rejected("iss is not the client id"));
    }
    if string("sub") != Some(e.client_id) {
        return Err(Rejected("sub is not the client id"));
    }
    check_audience(claims.get("aud"), e.audiences)?;
    // Item 4: exp required, not passed (with skew), and not far off: an assertion is short-lived.
    let exp = numeric_date(claims, "exp")?.ok_or(Rejected("no exp"))?;
    if exp.saturating_add(e.clock_skew) <= e.now {
        return Err(Rejected("expired"));
    }
    if exp > e.now + MAX_LIFETIME_SECS + e.clock_skew {
        return Err(Rejected("exp is too far in the future"));
    }
    // Items 5, 6: nbf and iat, when present, not in the future.
    for name in ["nbf", "iat"] {
        if numeric_date(claims, name)?.is_some_and(|t| t > e.now + e.clock_skew) {
            return Err(Rejected("nbf or iat is in the future"));
        }
    }
    // Item 7: Sigil requires a jti, to refuse replays.
    let jti = string("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES)
        .ok_or(Rejected("no jti, or not a short string"))?;
    Ok(Verified {
        jti: jti.to_string(),
        exp,
    })
}

/// RFC 7523 §3 item 3: a string or a non-empty array of strings, every value one of Sigil's.
fn check_audience(aud: Option<&Value>, ours: &[&str]) -> Result<(), Rejected> {
    let ok = |v: &Value| v.as_str().is_some_and(|a| ours.contains(&a));
    let fine = match aud {
        Some(Value::String(_)) => aud.is_some_and(ok),
        Some(Value::Array(list)) => !list.is_empty() && list.iter().all(ok),
        _ => false,
    };
    if fine {
        Ok(())
    } else {
        Err(Rejected("aud is not Sigil alone"))
    }
}

/// RFC 7519 §2 NumericDate: a JSON number (fractions allowed); a string or anything else is
/// refused.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Rejected> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let n = value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })
        .ok_or(Rejected("a time claim is not a number"))?;
    Ok(Some(n))
}

#[cfg(test)]
mod tests;
