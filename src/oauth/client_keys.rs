//! The keys a client signs its assertions with (RFC 7523 §2.2): HS256 keyed by the client
//! secret (`client_secret_jwt`), or the public keys of its `jwks` / `jwks_uri`
//! (`private_key_jwt`). Each key is bound to one algorithm when it is read — from the client's
//! `token_endpoint_auth_signing_alg`, else the key's own `alg`, else its type — so a token's
//! header can never choose how it is checked (RFC 8725 §3.1, §3.2).

use std::fmt;

use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsVerifier, ES256, HS256, PS256, RS256};
use serde_json::{Map, Value};

use super::client_auth::ClientSecret;

/// The algorithms a client assertion may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertionAlg {
    HS256,
    RS256,
    PS256,
    ES256,
    EdDSA,
}

impl AssertionAlg {
    /// `client_secret_jwt` (OIDC Core §9): HMAC with the client secret.
    pub const SECRET: [&'static str; 1] = ["HS256"];
    /// `private_key_jwt` (OIDC Core §9): the client's public keys.
    pub const PRIVATE_KEY: [&'static str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];
    /// Both, for discovery's `token_endpoint_auth_signing_alg_values_supported`.
    pub const SUPPORTED: [&'static str; 5] = ["HS256", "RS256", "PS256", "ES256", "EdDSA"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Exact, case-sensitive names (RFC 7518 §3.1); `none` is not among them.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::HS256,
            Self::RS256,
            Self::PS256,
            Self::ES256,
            Self::EdDSA,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }

    /// Whether a public key of this type and curve can carry this algorithm.
    fn fits(self, kty: &str, crv: Option<&str>) -> bool {
        match self {
            Self::HS256 => false,
            Self::RS256 | Self::PS256 => kty == "RSA",
            Self::ES256 => kty == "EC" && crv == Some("P-256"),
            Self::EdDSA => kty == "OKP" && matches!(crv, Some("Ed25519" | "Ed448")),
        }
    }

    /// The one algorithm a public key without `alg` is used with: RS256 for RSA (OIDC's
    /// mandatory algorithm), ES256 for P-256, EdDSA for Ed25519 / Ed448.
    fn default_for(kty: &str, crv: Option<&str>) -> Option<Self> {
        [Self::RS256, Self::ES256, Self::EdDSA]
            .into_iter()
            .find(|a| a.fits(kty, crv))
    }
}

impl fmt::Display for AssertionAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key with the one algorithm it verifies.
pub struct VerifyingKey {
    /// The JWK's `kid`, or its RFC 7638 thumbprint when it has none.
    pub kid: Option<String>,
    pub alg: AssertionAlg,
    verifier: Box<dyn JwsVerifier>,
}

impl VerifyingKey {
    pub fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(signing_input, signature).is_ok()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// `client_secret_jwt`: HS256 keyed by the secret's octets (OIDC Core §9).
pub fn from_secret(secret: &ClientSecret) -> Option<VerifyingKey> {
    let verifier = HS256.verifier_from_bytes(secret.expose().as_bytes()).ok()?;
    Some(VerifyingKey {
        kid: None,
        alg: AssertionAlg::HS256,
        verifier: Box::new(verifier),
    })
}

/// The usable signature keys of a JWK Set; anything else in it (encryption keys, private or
/// symmetric members, unknown types, RSA under 2048 bits, keys that do not fit `pinned`) is
/// left out. A document that is not a JWK Set gives no keys.
pub fn from_jwks(jwks: &Value, pinned: Option<AssertionAlg>) -> Vec<VerifyingKey> {
    const MAX_KEYS: usize = 32;
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter()
        .filter_map(Value::as_object)
        .filter_map(|map| from_jwk(map, pinned))
        .take(MAX_KEYS)
        .collect()
}

fn from_jwk(map: &Map<String, Value>, pinned: Option<AssertionAlg>) -> Option<VerifyingKey> {
    // RFC 7517 §4: a key's private part never belongs in a client's registration.
    const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    if PRIVATE_MEMBERS.iter().any(|m| map.contains_key(*m)) {
        return None;
    }
    let jwk = Jwk::from_map(map.clone()).ok()?;
    let alg = key_alg(&jwk, pinned)?;
    // josekit refuses a key whose kty, crv, `use` (other than "sig"), `key_ops` (without
    // "verify") or `alg` contradicts the algorithm, and RSA moduli under 2048 bits.
    let verifier: Box<dyn JwsVerifier> = match alg {
        AssertionAlg::RS256 => Box::new(RS256.verifier_from_jwk(&jwk).ok()?),
        AssertionAlg::PS256 => Box::new(PS256.verifier_from_jwk(&jwk).ok()?),
        AssertionAlg::ES256 => Box::new(ES256.verifier_from_jwk(&jwk).ok()?),
        AssertionAlg::EdDSA => Box::new(EdDSA.verifier_from_jwk(&jwk).ok()?),
        AssertionAlg::HS256 => return None,
    };
    let kid = match jwk.key_id() {
        Some(kid) => kid.to_string(),
        None => crate::crypto::keys::thumbprint(map),
    };
    Some(VerifyingKey {
        kid: Some(kid),
        alg,
        verifier,
    })
}

/// The key's one algorithm: the registered one if the key fits it and does not name another,
/// else the key's own `alg`, else the default for its type.
fn key_alg(jwk: &Jwk, pinned: Option<AssertionAlg>) -> Option<AssertionAlg> {
    let (kty, crv) = (jwk.key_type(), jwk.curve());
    let own = match jwk.algorithm() {
        Some(name) => Some(AssertionAlg::parse(name)?),
        None => None,
    };
    let alg = match (pinned, own) {
        (Some(p), Some(o)) if p != o => return None,
        (Some(p), _) => p,
        (None, Some(o)) => o,
        (None, None) => AssertionAlg::default_for(kty, crv)?,
    };
    alg.fits(kty, crv).then_some(alg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ed::EdCurve;
    use josekit::jwk::KeyPair;
    use serde_json::json;

    /// The public JWK without the `alg` josekit fills in.
    fn public(pair: &dyn KeyPair) -> Value {
        let mut map: Map<String, Value> = pair.to_jwk_public_key().into();
        map.remove("alg");
        Value::Object(map)
    }

    #[test]
    fn each_key_gets_one_algorithm() {
        let rsa = public(&RS256.generate_key_pair(2048).unwrap());
        let ec = public(&ES256.generate_key_pair().unwrap());
        let ed = public(&EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap());
        let set = json!({"keys": [rsa, ec, ed]});
        let algs: Vec<_> = from_jwks(&set, None).iter().map(|k| k.alg).collect();
        assert_eq!(
            algs,
            [
                AssertionAlg::RS256,
                AssertionAlg::ES256,
                AssertionAlg::EdDSA
            ]
        );
        let pss: Vec<_> = from_jwks(&set, Some(AssertionAlg::PS256));
        assert_eq!(pss.len(), 1, "only the RSA key carries PS256");
        assert_eq!(pss[0].alg, AssertionAlg::PS256);
    }

    #[test]
    fn unusable_keys_are_left_out() {
        let mut rsa = RS256.generate_key_pair(2048).unwrap().to_jwk_public_key();
        rsa.set_algorithm("RS256");
        let rsa = Value::Object(rsa.into());
        let mut enc = public(&RS256.generate_key_pair(2048).unwrap());
        enc["use"] = "enc".into();
        let rsa1024 = openssl::rsa::Rsa::generate(1024).unwrap();
        let small =
            json!({"kty": "RSA", "n": crate::crypto::b64url(&rsa1024.n().to_vec()), "e": "AQAB"});
        let private = Value::Object(
            RS256
                .generate_key_pair(2048)
                .unwrap()
                .to_jwk_key_pair()
                .into(),
        );
        let set = json!({"keys": [enc, small, private, {"kty": "oct", "k": "AAAA"}, "x", {"kty": "RSA"}]});
        assert!(from_jwks(&set, None).is_empty());
        // A key that names RS256 is not used for PS256, whatever the registration says.
        assert!(from_jwks(&json!({"keys": [rsa.clone()]}), Some(AssertionAlg::PS256)).is_empty());
        assert_eq!(from_jwks(&json!({"keys": [rsa]}), None).len(), 1);
        assert!(from_jwks(&json!({"nokeys": []}), None).is_empty());
    }

    #[test]
    fn a_key_without_kid_is_known_by_its_thumbprint() {
        let ec = public(&ES256.generate_key_pair().unwrap());
        let keys = from_jwks(&json!({"keys": [ec.clone()]}), None);
        assert_eq!(
            keys[0].kid.as_deref(),
            Some(crate::crypto::keys::thumbprint(ec.as_object().unwrap()).as_str())
        );
    }

    #[test]
    fn algorithm_names_are_exact() {
        for bad in ["none", "None", "hs256", "RS512", ""] {
            assert_eq!(AssertionAlg::parse(bad), None, "{bad}");
        }
        assert_eq!(AssertionAlg::parse("EdDSA"), Some(AssertionAlg::EdDSA));
    }
}
