//! Encrypted tokens for clients and resource servers that registered encryption: a nested JWT,
//! signed first and then encrypted (OIDC Core §16.14), with `cty: "JWT"` (RFC 7519 §5.2).
//!
//! Key management: RSA-OAEP-256, ECDH-ES and ECDH-ES+A256KW to a public key of the recipient's
//! registered `jwks` (or its `jwks_uri`), or A256KW and `dir` with a key derived from the
//! client secret (OIDC Core §10.2: the left-truncated SHA-256 of the secret, for keys of 256
//! bits). Content encryption A256GCM or A128CBC-HS256. Sigil only produces JWEs; it accepts
//! none from anyone, so PBES2, `zip` and RSA1_5 never reach a decrypter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use josekit::jwe::{self, JweHeader};
use josekit::jwk::Jwk;
use serde_json::Value;

use crate::crypto::sha256;
use crate::oauth::client_auth::ClientSecret;
use crate::oauth::client_metadata::Client;
use crate::oauth::{ErrorCode, OAuthError};
use crate::outbound::Outbound;
use crate::state::AppState;

/// Key management algorithms Sigil encrypts with.
pub const JWE_ALGS: [&str; 5] = ["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW", "A256KW", "dir"];
/// Content encryption algorithms Sigil encrypts with.
pub const JWE_ENCS: [&str; 2] = ["A256GCM", "A128CBC-HS256"];
/// OIDC Registration §2: the content encryption when only the algorithm is registered.
pub const DEFAULT_ENC: &str = "A128CBC-HS256";

/// Whether `alg` needs the client secret (rather than a public key).
pub fn is_symmetric(alg: &str) -> bool {
    matches!(alg, "A256KW" | "dir")
}

#[derive(Debug, thiserror::Error)]
pub enum JweError {
    #[error("encryption algorithm {0:?} is not supported")]
    Algorithm(String),
    #[error("content encryption {0:?} is not supported")]
    Encryption(String),
    #[error("no registered key can be used with {0}")]
    NoKey(String),
    #[error("{0} needs the client secret")]
    NoSecret(String),
    #[error("encryption failed: {0}")]
    Jose(#[from] josekit::JoseError),
}

/// Where the recipient's key comes from.
pub enum Recipient<'a> {
    /// A public JWK Set (the registered `jwks`, or the document at `jwks_uri`).
    Keys(&'a Value),
    /// The client secret (A256KW, dir).
    Secret(&'a ClientSecret),
}

/// Checks a registered `alg`/`enc` pair; returns the `enc` to use (the default when absent).
pub fn check_pair<'a>(alg: &str, enc: Option<&'a str>) -> Result<&'a str, JweError> {
    if !JWE_ALGS.contains(&alg) {
        return Err(JweError::Algorithm(alg.to_string()));
    }
    let enc = enc.unwrap_or(DEFAULT_ENC);
    if !JWE_ENCS.contains(&enc) {
        return Err(JweError::Encryption(enc.to_string()));
    }
    Ok(enc)
}

/// Encrypts a signed JWT (or JSON claims) for its recipient.
pub fn encrypt(
    content: &str,
    alg: &str,
    enc: &str,
    recipient: Recipient<'_>,
) -> Result<String, JweError> {
    let enc = check_pair(alg, Some(enc))?;
    let mut header = JweHeader::new();
    header.set_content_encryption(enc);
    // RFC 7519 §5.2: a nested JWT says so; JSON claims (an unsigned UserInfo) do not.
    if !content.starts_with('{') {
        header.set_content_type("JWT");
    }
    let payload = content.as_bytes();
    match (alg, recipient) {
        ("A256KW" | "dir", Recipient::Secret(secret)) => {
            // OIDC Core §10.2; A256GCM and A128CBC-HS256 both take 256-bit keys.
            let key = sha256(secret.expose().as_bytes());
            if alg == "dir" {
                let encrypter = jwe::Dir.encrypter_from_bytes(key)?;
                Ok(jwe::serialize_compact(payload, &header, &encrypter)?)
            } else {
                let encrypter = jwe::A256KW.encrypter_from_bytes(key)?;
                Ok(jwe::serialize_compact(payload, &header, &encrypter)?)
            }
        }
        ("A256KW" | "dir", Recipient::Keys(_)) => Err(JweError::NoSecret(alg.to_string())),
        (_, Recipient::Secret(_)) => Err(JweError::NoKey(alg.to_string())),
        (_, Recipient::Keys(jwks)) => {
            let jwk = pick_key(jwks, alg).ok_or_else(|| JweError::NoKey(alg.to_string()))?;
            if let Some(kid) = jwk.key_id() {
                header.set_key_id(kid);
            }
            match alg {
                "RSA-OAEP-256" => {
                    let encrypter = jwe::RSA_OAEP_256.encrypter_from_jwk(&jwk)?;
                    Ok(jwe::serialize_compact(payload, &header, &encrypter)?)
                }
                "ECDH-ES" => {
                    let encrypter = jwe::ECDH_ES.encrypter_from_jwk(&jwk)?;
                    Ok(jwe::serialize_compact(payload, &header, &encrypter)?)
                }
                "ECDH-ES+A256KW" => {
                    let encrypter = jwe::ECDH_ES_A256KW.encrypter_from_jwk(&jwk)?;
                    Ok(jwe::serialize_compact(payload, &header, &encrypter)?)
                }
                other => Err(JweError::Algorithm(other.to_string())),
            }
        }
    }
}

/// The recipient's encryption key for `alg`: a public key of the right type whose `use` is
/// `enc` (or unset) and whose `alg`, if set, is this one; keys marked `use: enc` first.
pub fn pick_key(jwks: &Value, alg: &str) -> Option<Jwk> {
    let wanted_kty: &[&str] = match alg {
        "RSA-OAEP-256" => &["RSA"],
        "ECDH-ES" | "ECDH-ES+A256KW" => &["EC", "OKP"],
        _ => return None,
    };
    let keys = jwks.get("keys")?.as_array()?;
    let usable = |k: &&Value| {
        let text = |name: &str| k.get(name).and_then(Value::as_str);
        text("kty").is_some_and(|t| wanted_kty.contains(&t))
            && text("use").is_none_or(|u| u == "enc")
            && text("alg").is_none_or(|a| a == alg)
            // Private members never belong in a registered set; such a key is not used.
            && k.get("d").is_none()
            // ECDH over X25519 only among the OKP curves (Ed25519 cannot agree keys).
            && (text("kty") != Some("OKP") || text("crv") == Some("X25519"))
    };
    let mut candidates: Vec<&Value> = keys.iter().filter(usable).collect();
    candidates.sort_by_key(|k| k.get("use").and_then(Value::as_str) != Some("enc"));
    candidates.into_iter().find_map(|k| {
        let map = k.as_object()?.clone();
        Jwk::from_map(map).ok()
    })
}

/// Recipients' key sets fetched from a `jwks_uri`, kept [`JWKS_FRESH_SECS`] per URI.
#[derive(Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, (i64, Arc<Value>)>>,
}

/// How long a fetched key set is used before it is fetched again.
pub const JWKS_FRESH_SECS: i64 = 300;

impl JwksCache {
    const MAX_ENTRIES: usize = 10_000;

    async fn get(&self, outbound: &Outbound, uri: &str, now: i64) -> Result<Arc<Value>, String> {
        if let Some((at, jwks)) = self.lock().get(uri) {
            if now - at < JWKS_FRESH_SECS {
                return Ok(jwks.clone());
            }
        }
        let jwks = Arc::new(outbound.get_json(uri).await.map_err(|e| e.to_string())?);
        let mut entries = self.lock();
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(uri.to_string(), (now, jwks.clone()));
        Ok(jwks)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Arc<Value>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A signed JWT (or, for UserInfo without a signing algorithm, JSON claims) encrypted for
/// `client` with the `alg`/`enc` it registered: to its secret, its `jwks`, or the keys at its
/// `jwks_uri` (fetched through the outbound client, cached).
pub async fn seal_for_client(
    state: &AppState,
    client: &Client,
    alg: &str,
    enc: Option<&str>,
    content: &str,
) -> Result<String, OAuthError> {
    let enc = enc.unwrap_or(DEFAULT_ENC);
    let failed = |e: String| {
        OAuthError::server_error(format!(
            "could not encrypt for client {}: {e}",
            client.client_id
        ))
    };
    // The client's keys or its `jwks_uri` host failed: its fault, not Sigil's (INFO at most).
    let clients_fault = |e: String| {
        tracing::info!(client_id = %client.client_id, error = %e, "could not encrypt for the client");
        OAuthError::new(ErrorCode::ServerError, "could not encrypt for the client")
    };
    if is_symmetric(alg) {
        let secret = client
            .secret
            .as_ref()
            .ok_or_else(|| failed("the client has no secret".into()))?;
        return encrypt(content, alg, enc, Recipient::Secret(secret))
            .map_err(|e| failed(e.to_string()));
    }
    let m = &client.metadata;
    let fetched;
    let jwks: &Value = match (&m.jwks, &m.jwks_uri) {
        (Some(jwks), _) => jwks,
        (None, Some(uri)) => {
            fetched = state
                .encryption_keys
                .get(&state.outbound, uri, state.clock.now())
                .await
                .map_err(clients_fault)?;
            &fetched
        }
        (None, None) => return Err(failed("the client registered no keys".into())),
    };
    encrypt(content, alg, enc, Recipient::Keys(jwks)).map_err(|e| clients_fault(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwe::JweDecrypter;

    fn decrypt_with(token: &str, decrypter: &dyn JweDecrypter) -> String {
        let (payload, header) = jwe::deserialize_compact(token, decrypter).unwrap();
        assert_eq!(header.content_type(), Some("JWT"));
        String::from_utf8(payload).unwrap()
    }

    #[test]
    fn every_pair_round_trips() {
        let rsa = josekit::jwk::alg::rsa::RsaKeyPair::generate(2048).unwrap();
        let ec = josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256)
            .unwrap();
        let mut rsa_public = rsa.to_jwk_public_key();
        rsa_public.set_key_id("r1");
        let ec_public = ec.to_jwk_public_key();
        let jwks = serde_json::json!({"keys": [
            serde_json::to_value(rsa_public.as_ref()).unwrap(),
            serde_json::to_value(ec_public.as_ref()).unwrap(),
        ]});
        let secret = ClientSecret::new("a-client-secret-of-43-characters-aaaaaaaaa".into());
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        for enc in JWE_ENCS {
            let t = encrypt(jwt, "RSA-OAEP-256", enc, Recipient::Keys(&jwks)).unwrap();
            let d = jwe::RSA_OAEP_256
                .decrypter_from_der(rsa.to_der_private_key())
                .unwrap();
            assert_eq!(decrypt_with(&t, &d), jwt);
            for alg in [jwe::ECDH_ES, jwe::ECDH_ES_A256KW] {
                let t = encrypt(jwt, alg.name(), enc, Recipient::Keys(&jwks)).unwrap();
                let d = alg.decrypter_from_der(ec.to_der_private_key()).unwrap();
                assert_eq!(decrypt_with(&t, &d), jwt);
            }
            let key = sha256(secret.expose().as_bytes());
            let t = encrypt(jwt, "A256KW", enc, Recipient::Secret(&secret)).unwrap();
            let d = jwe::A256KW.decrypter_from_bytes(key).unwrap();
            assert_eq!(decrypt_with(&t, &d), jwt);
            let t = encrypt(jwt, "dir", enc, Recipient::Secret(&secret)).unwrap();
            let d = jwe::Dir.decrypter_from_bytes(key).unwrap();
            assert_eq!(decrypt_with(&t, &d), jwt);
        }
    }

    #[test]
    fn unsupported_algorithms_and_missing_keys_are_refused() {
        for alg in ["RSA1_5", "PBES2-HS256+A128KW", "A128KW", "none"] {
            assert!(matches!(check_pair(alg, None), Err(JweError::Algorithm(_))));
        }
        assert!(matches!(
            check_pair("dir", Some("A128GCM")),
            Err(JweError::Encryption(_))
        ));
        assert_eq!(check_pair("dir", None).unwrap(), DEFAULT_ENC);
        let empty = serde_json::json!({"keys": []});
        assert!(matches!(
            encrypt("a.b.c", "RSA-OAEP-256", "A256GCM", Recipient::Keys(&empty)),
            Err(JweError::NoKey(_))
        ));
        // A signing-only key is not an encryption key.
        let rsa = josekit::jwk::alg::rsa::RsaKeyPair::generate(2048).unwrap();
        let mut public = serde_json::to_value(rsa.to_jwk_public_key().as_ref()).unwrap();
        public["use"] = "sig".into();
        let jwks = serde_json::json!({"keys": [public]});
        assert!(pick_key(&jwks, "RSA-OAEP-256").is_none());
    }
}
