//! JWK Sets from outside (RFC 7517): a client's `jwks` or the document at its `jwks_uri`, a
//! resource server's `jwks`. They become assertion verifiers (`client_keys::from_jwks`), pass
//! the registration check (`jwk_set::check_public`), and are what Sigil encrypts to
//! (`jwe::pick_key`, `jwe::encrypt`).

use std::sync::OnceLock;

use base64::Engine;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::alg::ecx::{EcxCurve, EcxKeyPair};
use josekit::jwk::alg::ed::{EdCurve, EdKeyPair};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::KeyPair;
use proptest::prelude::*;
use serde_json::{json, Value};

use sigil::oauth::client_keys::{self, AssertionAlg};
use sigil::oauth::jwk_set;
use sigil::tokens::jwe::{self, Recipient, JWE_ALGS};

use super::{check, hostile_text, json_value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Valid public keys of every type Sigil reads: RSA, EC P-256, Ed25519, X25519.
pub fn public_keys() -> &'static [Value] {
    static KEYS: OnceLock<Vec<Value>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let public = |pair: &dyn KeyPair| Value::Object(pair.to_jwk_public_key().into());
        let mut keys = vec![
            public(&RsaKeyPair::generate(2048).unwrap()),
            public(&EcKeyPair::generate(EcCurve::P256).unwrap()),
            public(&EdKeyPair::generate(EdCurve::Ed25519).unwrap()),
            public(&EcxKeyPair::generate(EcxCurve::X25519).unwrap()),
        ];
        for k in &mut keys {
            k.as_object_mut().unwrap().remove("alg");
        }
        keys
    })
}

/// Values for one JWK member: any JSON, base64url of any length (moduli of 24,000 bits,
/// exponents of 2,400 bits, points off every curve), other curves and types, and names that
/// change a key's meaning.
fn member_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        super::bytes(3_000).prop_map(|b| json!(b64(&b))),
        Just(json!(b64(&[0xff; 300]))),
        Just(json!(b64(&[0u8; 32]))),
        Just(json!("AQAB")),
        proptest::sample::select(vec![
            "RSA",
            "EC",
            "OKP",
            "oct",
            "P-256",
            "P-384",
            "P-521",
            "secp256k1",
            "Ed25519",
            "Ed448",
            "X25519",
            "X448",
            "sig",
            "enc",
            "RS256",
            "ES256",
            "EdDSA",
            "HS256",
            "none",
            "RSA-OAEP-256",
            "ECDH-ES",
        ])
        .prop_map(|s| json!(s)),
    ]
}

/// A valid public key with one member set, removed or added (`d` included).
pub fn mutated_jwk() -> impl Strategy<Value = Value> {
    let name = proptest::sample::select(vec![
        "kty", "n", "e", "crv", "x", "y", "alg", "use", "key_ops", "kid", "d", "k", "x5c",
    ]);
    (
        0..public_keys().len(),
        name,
        proptest::option::of(member_value()),
    )
        .prop_map(|(which, name, value)| {
            let mut key = public_keys()[which].clone();
            let map = key.as_object_mut().unwrap();
            match value {
                Some(v) => map.insert(name.into(), v),
                None => map.remove(name),
            };
            key
        })
}

/// JWK Sets: mutated keys, valid ones, and any JSON at all.
pub fn jwks() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => mutated_jwk(),
        1 => (0..4usize).prop_map(|i| public_keys()[i].clone()),
        1 => json_value(),
    ];
    prop_oneof![
        4 => proptest::collection::vec(key, 0..5).prop_map(|keys| json!({ "keys": keys })),
        1 => json_value(),
        1 => hostile_text().prop_map(|t| json!({ "keys": t })),
    ]
}

/// Any JWK Set gives verifiers only for public keys that fit the pinned algorithm, and is
/// refused at registration when it holds a private member (RFC 7517 §4, RFC 8725 §3.1).
#[test]
fn jwk_sets_of_any_shape_give_only_fitting_public_keys() {
    let pinned = proptest::option::of(proptest::sample::select(AssertionAlg::PRIVATE_KEY.to_vec()));
    check(
        "client_keys::from_jwks + jwk_set::check_public",
        (jwks(), pinned),
        |(set, pinned)| {
            let pinned = pinned.and_then(AssertionAlg::parse);
            for key in client_keys::from_jwks(&set, pinned) {
                prop_assert!(pinned.is_none_or(|p| p == key.alg));
                prop_assert!(key.alg != AssertionAlg::HS256);
            }
            if jwk_set::check_public(&set).is_ok() {
                let keys = set["keys"].as_array().unwrap();
                for k in keys {
                    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                        prop_assert!(k.get(private).is_none());
                    }
                }
            }
            Ok(())
        },
    );
}

/// Sigil encrypts to any registered set without panic: to a key that fits, or with a clear error
/// (no key, a key openssl refuses: a modulus too large, an exponent too long, a point off the
/// curve).
#[test]
fn encrypting_to_any_jwk_set_succeeds_or_fails_cleanly() {
    let alg = proptest::sample::select(JWE_ALGS[..3].to_vec());
    let enc = proptest::sample::select(jwe::JWE_ENCS.to_vec());
    check(
        "jwe::pick_key + jwe::encrypt",
        (jwks(), alg, enc),
        |(set, alg, enc)| {
            if let Some(key) = jwe::pick_key(&set, alg) {
                prop_assert!(key.parameter("d").is_none());
            }
            let _ = jwe::encrypt("h.p.s", alg, enc, Recipient::Keys(&set));
            Ok(())
        },
    );
}
