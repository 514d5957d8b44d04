//! A client's side of RFC 7523: its keys (made with josekit), and compact JWS built by hand so
//! that every header member is the test's choice.

use base64::Engine;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jwk::{Jwk, KeyPair};
use josekit::jws::{EdDSA, JwsSigner, ES256, HS256, PS256, RS256};
use serde_json::{json, Map, Value};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims.signature`, the signature over the first two parts made by `sign`.
pub fn compact(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature))
}

/// One signing key of a client (or of an attacker).
pub struct ClientKey {
    pub alg: &'static str,
    pub kid: String,
    signer: Box<dyn JwsSigner>,
    /// The public key as registered: public members and `kid` (empty for HMAC).
    pub public_jwk: Value,
    /// SubjectPublicKeyInfo, DER and PEM (empty for HMAC).
    pub public_der: Vec<u8>,
    pub public_pem: Vec<u8>,
}

impl ClientKey {
    pub fn generate(alg: &'static str) -> Self {
        let pair: Box<dyn KeyPair> = match alg {
            "RS256" | "PS256" => Box::new(RS256.generate_key_pair(2048).unwrap()),
            "ES256" => Box::new(ES256.generate_key_pair().unwrap()),
            "EdDSA" => Box::new(EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap()),
            other => panic!("no key type for {other}"),
        };
        // Without the `alg` josekit writes in, so that one RSA pair can sign RS256 or PS256.
        let mut private: Map<String, Value> = pair.to_jwk_private_key().into();
        private.remove("alg");
        let private = Jwk::from_map(private).unwrap();
        let signer: Box<dyn JwsSigner> = match alg {
            "RS256" => Box::new(RS256.signer_from_jwk(&private).unwrap()),
            "PS256" => Box::new(PS256.signer_from_jwk(&private).unwrap()),
            "ES256" => Box::new(ES256.signer_from_jwk(&private).unwrap()),
            _ => Box::new(EdDSA.signer_from_jwk(&private).unwrap()),
        };
        let kid = format!("{}-{}", alg.to_lowercase(), uuid::Uuid::new_v4().simple());
        Self {
            alg,
            public_jwk: public_members(&pair.to_jwk_public_key(), &kid),
            kid,
            signer,
            public_der: pair.to_der_public_key(),
            public_pem: pair.to_pem_public_key(),
        }
    }

    /// `client_secret_jwt`: HS256 keyed by the secret's octets.
    pub fn hmac(secret: &str) -> Self {
        Self::hmac_bytes(secret.as_bytes())
    }

    pub fn hmac_bytes(key: &[u8]) -> Self {
        Self {
            alg: "HS256",
            kid: String::new(),
            signer: Box::new(HS256.signer_from_bytes(key).unwrap()),
            public_jwk: Value::Null,
            public_der: Vec::new(),
            public_pem: Vec::new(),
        }
    }

    /// The header a client would send: its algorithm and key id.
    pub fn header(&self) -> Value {
        let mut h = json!({"alg": self.alg, "typ": "JWT"});
        if !self.kid.is_empty() {
            h["kid"] = self.kid.clone().into();
        }
        h
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    pub fn sign_without_kid(&self, claims: &Value) -> String {
        let mut h = self.header();
        h.as_object_mut().unwrap().remove("kid");
        self.sign_with_header(&h, claims)
    }

    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> String {
        let mut h = self.header();
        h["kid"] = kid.into();
        self.sign_with_header(&h, claims)
    }

    /// Signs with this key whatever `header` says.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        compact(header, claims, |input| self.signer.sign(input).unwrap())
    }
}

fn public_members(jwk: &Jwk, kid: &str) -> Value {
    let mut out = Map::new();
    for m in ["kty", "crv", "n", "e", "x", "y"] {
        if let Some(v) = jwk.parameter(m) {
            out.insert(m.into(), v.clone());
        }
    }
    out.insert("kid".into(), kid.into());
    Value::Object(out)
}
