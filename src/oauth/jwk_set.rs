//! Registered JWK Sets (client `jwks`, resource server `jwks`): public keys only (RFC 7517 §5).

use serde_json::Value;

/// Checks that `jwks` is a JWK Set of complete RSA, EC or OKP public keys; the error says which
/// key is wrong and why.
pub fn check_public(jwks: &Value) -> Result<(), String> {
    const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be an object with a \"keys\" array")?;
    if keys.is_empty() {
        return Err("jwks has no keys".into());
    }
    for (i, key) in keys.iter().enumerate() {
        let map = key
            .as_object()
            .ok_or_else(|| format!("jwks key {i} is not an object"))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| map.contains_key(**m)) {
            return Err(format!(
                "jwks key {i} has the private member {m:?}: register public keys only"
            ));
        }
        josekit::jwk::Jwk::from_map(map.clone())
            .map_err(|e| format!("jwks key {i} is not a valid JWK: {e}"))?;
        let complete = match map.get("kty").and_then(Value::as_str) {
            Some("RSA") => map.contains_key("n") && map.contains_key("e"),
            Some("EC") => ["crv", "x", "y"].iter().all(|m| map.contains_key(*m)),
            Some("OKP") => ["crv", "x"].iter().all(|m| map.contains_key(*m)),
            _ => false,
        };
        if !complete {
            return Err(format!(
                "jwks key {i} is not a complete RSA, EC or OKP public key"
            ));
        }
    }
    Ok(())
}
