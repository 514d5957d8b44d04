//! Logout tokens (OIDC Back-Channel Logout 1.0 §2.4): a JWT with `typ: logout+jwt`, signed like
//! the client's ID tokens, that tells a client a session at Sigil has ended.

use serde_json::{json, Map, Value};

use crate::crypto::keyring::KeySnapshot;
use crate::crypto::random;
use crate::oauth::client_auth::ClientSecret;
use crate::oauth::OAuthError;

/// §2.4: the one member of `events`, with an empty object as its value.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// §2.4 recommends a short lifetime: the token is delivered at once.
pub const TTL: i64 = 120;

/// §2.6: the `typ` header that keeps a logout token from passing as an ID token.
pub const TYP: &str = "logout+jwt";

/// The claims of §2.4: iss, aud, iat, exp, jti, sub, sid, events — and never a nonce (§2.4:
/// "A nonce claim MUST NOT be present", so a logout token cannot be replayed as an ID token).
pub fn claims(issuer: &str, client_id: &str, sub: &str, sid: &str, now: i64) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("iss".into(), issuer.into());
    c.insert("aud".into(), client_id.into());
    c.insert("iat".into(), now.into());
    c.insert("exp".into(), (now + TTL).into());
    c.insert("jti".into(), random::id_128().into());
    c.insert("sub".into(), sub.into());
    c.insert("sid".into(), sid.into());
    c.insert("events".into(), json!({ EVENT: {} }));
    c
}

/// Signs `claims` with the algorithm the client registered for its ID tokens
/// (`id_token_signed_response_alg`, §2.6), with `typ: logout+jwt`.
pub fn sign(
    keys: &KeySnapshot,
    alg: &str,
    secret: Option<&ClientSecret>,
    claims: &Map<String, Value>,
) -> Result<String, OAuthError> {
    super::id_token::sign_typed(keys, alg, secret, TYP, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_those_of_section_2_4_and_no_nonce() {
        let c = claims("https://id.example", "rp", "u1", "s1", 1000);
        let mut names: Vec<&str> = c.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["aud", "events", "exp", "iat", "iss", "jti", "sid", "sub"]
        );
        assert_eq!(c["events"], json!({ EVENT: {} }));
        assert_eq!(c["exp"], 1000 + TTL);
        assert_ne!(
            claims("i", "a", "s", "x", 0)["jti"],
            claims("i", "a", "s", "x", 0)["jti"],
            "a fresh jti each time"
        );
    }

    #[test]
    fn hs256_clients_get_a_token_keyed_by_their_secret() {
        use crate::crypto::master_key::MasterKey;
        let keys = KeySnapshot::build(&[], &MasterKey::generate()).unwrap();
        let secret = ClientSecret::new("s".repeat(43));
        let c = claims("https://id.example", "rp", "u1", "s1", 1000);
        let token = sign(&keys, "HS256", Some(&secret), &c).unwrap();
        let verifier = josekit::jws::HS256
            .verifier_from_bytes(secret.expose().as_bytes())
            .unwrap();
        let (payload, header) = josekit::jws::deserialize_compact(&token, &verifier).unwrap();
        assert_eq!(header.token_type(), Some(TYP));
        assert_eq!(header.key_id(), None);
        let back: Map<String, Value> = serde_json::from_slice(&payload).unwrap();
        assert_eq!(back, c);
        assert!(
            sign(&keys, "HS256", None, &c).is_err(),
            "no secret, no token"
        );
        assert!(sign(&keys, "RS256", None, &c).is_err(), "no active key");
    }
}
