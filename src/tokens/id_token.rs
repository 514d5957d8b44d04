//! ID tokens (OIDC Core §2): signed with the client's `id_token_signed_response_alg` (RS256 by
//! default; HS256 keyed by the client secret, §10.1), and `id_token_hint` verification.

use josekit::jws::{JwsHeader, HS256};
use serde_json::{Map, Value};

use crate::crypto::keyring::KeySnapshot;
use crate::crypto::keys::SigningAlg;
use crate::crypto::{b64url, sha256};
use crate::oauth::client_auth::ClientSecret;
use crate::oauth::OAuthError;

/// The largest JWT Sigil accepts from anyone (SECURITY.md attack 6).
pub const MAX_JWT_BYTES: usize = 64 * 1024;

/// OIDC Core §3.1.3.6: the left half of the hash of the access token, with the hash of the ID
/// token's algorithm (SHA-512 for Ed25519).
pub fn at_hash(access_token: &str, alg: &str) -> String {
    let digest: Vec<u8> = if alg == "EdDSA" {
        openssl::sha::sha512(access_token.as_bytes()).to_vec()
    } else {
        sha256(access_token.as_bytes()).to_vec()
    };
    b64url(&digest[..digest.len() / 2])
}

/// Signs `claims` as the client asked.
pub fn sign(
    keys: &KeySnapshot,
    alg: &str,
    secret: Option<&ClientSecret>,
    claims: &Map<String, Value>,
) -> Result<String, OAuthError> {
    sign_typed(keys, alg, secret, "JWT", claims)
}

/// Signs `claims` with header `typ` and the algorithm a client registered for its ID tokens:
/// Sigil's active key of that algorithm (with its `kid`), or the client secret for HS256 (OIDC
/// Core §10.1). ID tokens, signed UserInfo and logout tokens all sign this way.
pub fn sign_typed(
    keys: &KeySnapshot,
    alg: &str,
    secret: Option<&ClientSecret>,
    typ: &str,
    claims: &Map<String, Value>,
) -> Result<String, OAuthError> {
    let payload = serde_json::to_vec(claims).map_err(OAuthError::server_error)?;
    let mut header = JwsHeader::new();
    header.set_token_type(typ);
    if alg == "HS256" {
        let secret = secret.ok_or_else(|| {
            OAuthError::server_error("HS256 signing for a client without a secret")
        })?;
        let signer = HS256
            .signer_from_bytes(secret.expose().as_bytes())
            .map_err(OAuthError::server_error)?;
        return josekit::jws::serialize_compact(&payload, &header, &signer)
            .map_err(OAuthError::server_error);
    }
    let alg: SigningAlg = alg.parse().map_err(OAuthError::server_error)?;
    let key = keys
        .active(alg)
        .ok_or_else(|| OAuthError::server_error(format!("no active {alg} key")))?;
    header.set_key_id(&key.kid);
    josekit::jws::serialize_compact(&payload, &header, key.signer.as_ref())
        .map_err(OAuthError::server_error)
}

/// Verifies a JWT Sigil signed with one of its published keys: the key is found by `kid`, and
/// its own algorithm is used, never the header's alone (RFC 8725 §3.1). Returns the claims.
pub fn verify_own(
    keys: &KeySnapshot,
    token: &str,
) -> Option<(Map<String, Value>, Map<String, Value>)> {
    use base64::Engine;
    if token.len() > MAX_JWT_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .ok()
    };
    let header: Map<String, Value> = serde_json::from_slice(&decode(h)?).ok()?;
    let kid = header.get("kid")?.as_str()?;
    let key = keys.public_key(kid)?;
    if header.get("alg")?.as_str()? != key.alg.as_str() {
        return None;
    }
    let signature = decode(s)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    key.verifier
        .verify(signing_input.as_bytes(), &signature)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&decode(p)?).ok()?;
    Some((header, claims))
}

/// OIDC Core §3.1.2.1 `id_token_hint`: an ID token Sigil issued to this client (expired ones
/// too). Returns its `sub`.
pub fn verify_hint(
    keys: &KeySnapshot,
    token: &str,
    issuer: &str,
    client_id: &str,
) -> Result<String, OAuthError> {
    let invalid =
        || OAuthError::invalid_request("id_token_hint is not an ID token issued to this client");
    let (header, claims) = verify_own(keys, token).ok_or_else(invalid)?;
    if header.get("typ").and_then(Value::as_str) == Some("at+jwt") {
        return Err(invalid());
    }
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(invalid());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid());
    }
    claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // Expected values computed independently (Python hashlib).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNJ3uu5eY8T-hSr8v6Ku";
        assert_eq!(super::at_hash(token, "RS256"), "F9uary8LA3YZwvrxHNdPlA");
        assert_eq!(super::at_hash(token, "ES256"), "F9uary8LA3YZwvrxHNdPlA");
        assert_eq!(
            super::at_hash(token, "EdDSA").len(),
            43,
            "half of SHA-512 for Ed25519"
        );
    }
}
