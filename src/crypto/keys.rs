//! Signing key material: generation with josekit, RFC 7638 thumbprint `kid`s, and the key
//! lifecycle states.

use std::fmt;
use std::str::FromStr;

use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsSigner, JwsVerifier, ES256, PS256, RS256};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The algorithms Sigil signs with (one active key each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    PS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 4] = [Self::RS256, Self::PS256, Self::ES256, Self::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown signing algorithm {s:?} (RS256, PS256, ES256, EdDSA)"))
    }
}

/// Where a key is in its life (DESIGN.md "Keys and rotation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// Signs; one per algorithm.
    Active,
    /// Published, no longer signing, kept until every token it signed has expired.
    Retiring,
    /// Gone from the JWKS.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }

    pub fn is_published(self) -> bool {
        !matches!(self, Self::Retired)
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "next" => Ok(Self::Next),
            "active" => Ok(Self::Active),
            "retiring" => Ok(Self::Retiring),
            "retired" => Ok(Self::Retired),
            other => Err(format!("unknown key state {other:?}")),
        }
    }
}

/// A freshly generated key: the private part as PKCS#8 DER (to be sealed) and its public JWK.
pub struct GeneratedKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub private_der: Vec<u8>,
    pub public_jwk: Map<String, Value>,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

pub fn generate(alg: SigningAlg) -> Result<GeneratedKey, josekit::JoseError> {
    use josekit::jwk::alg::ed::EdCurve;
    use josekit::jwk::KeyPair;
    let pair: Box<dyn KeyPair> = match alg {
        SigningAlg::RS256 => Box::new(RS256.generate_key_pair(2048)?),
        SigningAlg::PS256 => Box::new(PS256.generate_key_pair(2048)?),
        SigningAlg::ES256 => Box::new(ES256.generate_key_pair()?),
        SigningAlg::EdDSA => Box::new(EdDSA.generate_key_pair(EdCurve::Ed25519)?),
    };
    let public_jwk = public_jwk(&pair.to_jwk_public_key(), alg);
    Ok(GeneratedKey {
        kid: thumbprint(&public_jwk),
        alg,
        private_der: pair.to_der_private_key(),
        public_jwk: with_kid(public_jwk, alg),
    })
}

/// The public members only (RFC 7517), whatever josekit added.
fn public_jwk(jwk: &Jwk, alg: SigningAlg) -> Map<String, Value> {
    let members: &[&str] = match alg {
        SigningAlg::RS256 | SigningAlg::PS256 => &["kty", "n", "e"],
        SigningAlg::ES256 => &["kty", "crv", "x", "y"],
        SigningAlg::EdDSA => &["kty", "crv", "x"],
    };
    let mut out = Map::new();
    for m in members {
        if let Some(v) = jwk.parameter(m) {
            out.insert((*m).to_string(), v.clone());
        }
    }
    // josekit labels PSS key pairs with kty RSA already; make it explicit for every RSA key.
    if matches!(alg, SigningAlg::RS256 | SigningAlg::PS256) {
        out.insert("kty".into(), Value::String("RSA".into()));
    }
    out
}

fn with_kid(mut jwk: Map<String, Value>, alg: SigningAlg) -> Map<String, Value> {
    let kid = thumbprint(&jwk);
    jwk.insert("kid".into(), kid.into());
    jwk.insert("alg".into(), alg.as_str().into());
    jwk.insert("use".into(), "sig".into());
    jwk
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) over the required members in lexical order.
pub fn thumbprint(jwk: &Map<String, Value>) -> String {
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => &["kty"],
    };
    // serde_json's Map keeps keys sorted (no preserve_order feature), giving the canonical form.
    let canonical: Map<String, Value> = required
        .iter()
        .filter_map(|k| jwk.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    let json = serde_json::to_vec(&canonical).expect("JSON of strings");
    super::b64url(&super::sha256(&json))
}

/// A signer for the private key, made once when the key is loaded.
pub fn signer(
    alg: SigningAlg,
    der: &[u8],
    kid: &str,
) -> Result<Box<dyn JwsSigner>, josekit::JoseError> {
    fn with_kid<S: JwsSigner + 'static>(
        mut s: S,
        set: fn(&mut S, String),
        kid: &str,
    ) -> Box<dyn JwsSigner> {
        set(&mut s, kid.to_string());
        Box::new(s)
    }
    Ok(match alg {
        SigningAlg::RS256 => with_kid(RS256.signer_from_der(der)?, |s, k| s.set_key_id(k), kid),
        SigningAlg::PS256 => with_kid(PS256.signer_from_der(der)?, |s, k| s.set_key_id(k), kid),
        SigningAlg::ES256 => with_kid(ES256.signer_from_der(der)?, |s, k| s.set_key_id(k), kid),
        SigningAlg::EdDSA => with_kid(EdDSA.signer_from_der(der)?, |s, k| s.set_key_id(k), kid),
    })
}

/// A verifier for a published key, made once when the key is loaded.
pub fn verifier(
    alg: SigningAlg,
    jwk: &Map<String, Value>,
) -> Result<Box<dyn JwsVerifier>, josekit::JoseError> {
    let jwk = Jwk::from_map(jwk.clone())?;
    Ok(match alg {
        SigningAlg::RS256 => Box::new(RS256.verifier_from_jwk(&jwk)?),
        SigningAlg::PS256 => Box::new(PS256.verifier_from_jwk(&jwk)?),
        SigningAlg::ES256 => Box::new(ES256.verifier_from_jwk(&jwk)?),
        SigningAlg::EdDSA => Box::new(EdDSA.verifier_from_jwk(&jwk)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_signs_and_verifies() {
        for alg in SigningAlg::ALL {
            let key = generate(alg).unwrap();
            assert_eq!(key.public_jwk["kid"], key.kid.as_str());
            assert!(
                !key.public_jwk.contains_key("d"),
                "{alg}: private member in JWK"
            );
            let s = signer(alg, &key.private_der, &key.kid).unwrap();
            let v = verifier(alg, &key.public_jwk).unwrap();
            let sig = s.sign(b"message").unwrap();
            v.verify(b"message", &sig).unwrap();
            assert!(v.verify(b"messagf", &sig).is_err());
        }
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1.
        let jwk: Map<String, Value> = serde_json::from_str(r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn algorithm_names_parse() {
        assert_eq!("EdDSA".parse::<SigningAlg>().unwrap(), SigningAlg::EdDSA);
        assert!("HS256".parse::<SigningAlg>().is_err());
        assert!("none".parse::<SigningAlg>().is_err());
    }
}
