//! Client metadata (RFC 7591 §2, OIDC Registration §2: what `sigil client add` and the admin
//! API run) and resource server metadata (RFC 8707), with resource indicators.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use sigil::oauth::client_metadata::ClientMetadata;
use sigil::oauth::resource_metadata::{check_indicator, ResourceMetadata};
use sigil::oauth::ErrorCode;
use sigil::tokens::jwe::{self, Recipient};

use super::jose_keys::{jwks, mutated_jwk, public_keys};
use super::{bytes, check, deep_json, hostile_text, json_value, mutated, nesting_depth};

/// A JWK Set with an RSA, an EC P-256 and an X25519 public key.
fn encryption_keys() -> Value {
    let k = public_keys();
    let keys = Value::Array(vec![k[0].clone(), k[1].clone(), k[3].clone()]);
    json!({ "keys": keys })
}

fn valid_client() -> Value {
    json!({
        "redirect_uris": ["https://app.example/cb"],
        "post_logout_redirect_uris": ["https://app.example/bye"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile",
        "id_token_signed_response_alg": "RS256",
        "userinfo_signed_response_alg": "ES256",
        "backchannel_logout_uri": "https://app.example/bc",
        "client_name": "App",
        "skip_consent": false,
        "jwks": encryption_keys(),
        "id_token_encrypted_response_alg": "RSA-OAEP-256",
        "userinfo_encrypted_response_alg": "ECDH-ES",
        "userinfo_encrypted_response_enc": "A256GCM"
    })
}

const CLIENT_MEMBERS: [&str; 19] = [
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "token_endpoint_auth_signing_alg",
    "scope",
    "jwks",
    "jwks_uri",
    "id_token_signed_response_alg",
    "id_token_encrypted_response_alg",
    "id_token_encrypted_response_enc",
    "userinfo_signed_response_alg",
    "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc",
    "backchannel_logout_uri",
    "client_name",
    "skip_consent",
    "unknown_member",
];

/// A value for one member: any JSON, hostile text, a mutated URI or list of URIs, any JWK Set.
fn member_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        hostile_text().prop_map(Value::String),
        mutated("https://app.example/cb".into()).prop_map(|u| json!([u])),
        mutated("https://app.example/cb".into()).prop_map(Value::String),
        jwks(),
        proptest::collection::vec(Just(json!("https://app.example/cb")), 0..10_000)
            .prop_map(Value::Array),
    ]
}

/// A valid document with one to three members replaced or removed.
fn mutated_document(
    valid: Value,
    members: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let change = (
        proptest::sample::select(members),
        proptest::option::of(member_value()),
    );
    proptest::collection::vec(change, 1..4).prop_map(move |changes| {
        let mut doc = valid.clone();
        let map: &mut Map<String, Value> = doc.as_object_mut().unwrap();
        for (name, value) in changes {
            match value {
                Some(v) => map.insert(name.into(), v),
                None => map.remove(name),
            };
        }
        doc
    })
}

/// What can be registered can be used: the metadata comes back unchanged from its stored form,
/// its URIs are absolute without fragments (RFC 6749 §3.1.2), and every encryption it asks for
/// works with the keys it registered.
fn usable(m: &ClientMetadata) -> Result<(), TestCaseError> {
    let stored = serde_json::to_string(m).unwrap();
    let loaded: ClientMetadata = serde_json::from_str(&stored).expect("stored metadata loads");
    let (a, b) = (
        serde_json::to_value(&loaded).unwrap(),
        serde_json::to_value(m).unwrap(),
    );
    prop_assert!(same_json(&a, &b), "stored {} loaded as {}", b, a);
    for uri in m.redirect_uris.iter().chain(&m.post_logout_redirect_uris) {
        prop_assert!(
            url::Url::parse(uri).is_ok() && !uri.contains('#'),
            "{uri:?}"
        );
    }
    for (alg, enc) in [
        (
            &m.id_token_encrypted_response_alg,
            &m.id_token_encrypted_response_enc,
        ),
        (
            &m.userinfo_encrypted_response_alg,
            &m.userinfo_encrypted_response_enc,
        ),
    ] {
        if let (Some(alg), Some(jwks)) = (alg, &m.jwks) {
            if !jwe::is_symmetric(alg) {
                let enc = enc.as_deref().unwrap_or(jwe::DEFAULT_ENC);
                let sealed = jwe::encrypt("h.p.s", alg, enc, Recipient::Keys(jwks));
                prop_assert!(sealed.is_ok(), "{} to {}: {:?}", alg, jwks, sealed.err());
            }
        }
    }
    Ok(())
}

/// JSON equality, but numbers within 1e-12 of each other are the same: serde_json (without
/// its `float_roundtrip` feature) may read a float it printed back one unit in the last place
/// off, which changes nothing Sigil reads.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// RFC 7591 §3.2.2: any bytes, and valid metadata with members replaced by any value, are
/// registered usable or refused as `invalid_client_metadata` / `invalid_redirect_uri`.
#[test]
fn client_metadata_is_usable_or_refused_with_the_rfc_error() {
    let doc = prop_oneof![
        1 => bytes(2_000),
        4 => mutated_document(valid_client(), &CLIENT_MEMBERS).prop_map(|d| d.to_string().into_bytes()),
    ];
    check("ClientMetadata::from_json", doc, |json| {
        match ClientMetadata::from_json(&json) {
            Ok(m) => usable(&m)?,
            Err(e) => prop_assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRedirectUri
                ),
                "{:?}",
                e
            ),
        }
        Ok(())
    });
}

/// Registered encryption keys with one member changed (a point off its curve, a modulus of odd
/// length, another curve): metadata that asks for encryption is accepted only when Sigil can
/// encrypt to what it registered — otherwise every token for it would fail later, as a 500.
#[test]
fn encryption_keys_are_usable_or_refused_at_registration() {
    let alg = proptest::sample::select(vec!["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW"]);
    let input = (
        proptest::collection::vec(mutated_jwk(), 1..3),
        alg,
        any::<bool>(),
    );
    check(
        "client and resource encryption keys",
        input,
        |(keys, alg, resource)| {
            let jwks = json!({ "keys": keys });
            if resource {
                let mut doc = valid_resource();
                doc["jwks"] = jwks;
                doc["access_token_encrypted_response_alg"] = alg.into();
                if let Ok(m) = ResourceMetadata::from_json(doc.to_string().as_bytes()) {
                    let enc = m.access_token_encrypted_response_enc.as_deref().unwrap();
                    let sealed =
                        jwe::encrypt("h.p.s", alg, enc, Recipient::Keys(m.jwks.as_ref().unwrap()));
                    prop_assert!(sealed.is_ok(), "resource {}: {:?}", doc, sealed.err());
                }
            } else {
                let mut doc = valid_client();
                doc["jwks"] = jwks;
                doc["id_token_encrypted_response_alg"] = alg.into();
                if let Ok(m) = ClientMetadata::from_json(doc.to_string().as_bytes()) {
                    usable(&m)?;
                }
            }
            Ok(())
        },
    );
}

/// Regression (found by the property above): an EC key on an unknown curve, or off its curve,
/// registered for encryption was accepted, and every token for that client or resource then
/// failed as a 500; an X448 key passed the resource check though Sigil cannot encrypt to it.
#[test]
fn registration_refuses_encryption_keys_sigil_cannot_use() {
    let ec = public_keys()[1].clone();
    let mut other_curve = ec.clone();
    other_curve["crv"] = "P-999".into();
    let mut off_curve = ec.clone();
    off_curve["y"] = off_curve["x"].clone();
    let x448 = json!({"kty": "OKP", "crv": "X448", "x": "mwj3zDG34-Z9ItWuoSEHSic70rg94Jxj-qc9LCLF2bvINmRyQdlT1AxbEtqIEg1TF3-A5TLEH6A"});
    for key in [other_curve, off_curve, x448] {
        let mut client = valid_client();
        client["jwks"] = json!({ "keys": [key] });
        client
            .as_object_mut()
            .unwrap()
            .remove("id_token_encrypted_response_alg");
        let e = ClientMetadata::from_json(client.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata, "{key}");
        let mut resource = valid_resource();
        resource["jwks"] = json!({ "keys": [key] });
        let e = ResourceMetadata::from_json(resource.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{key}");
    }
    // The same documents with a usable key are accepted.
    let mut resource = valid_resource();
    resource["jwks"] = json!({ "keys": [ec] });
    ResourceMetadata::from_json(resource.to_string().as_bytes()).unwrap();
}

/// Deeply nested JSON anywhere in the metadata (in `jwks`, in an unknown member, or as the
/// document): refused or read, never a stack overflow.
#[test]
fn deep_json_in_metadata_is_refused_without_overflow() {
    let place = proptest::sample::select(vec!["jwks", "unknown_member", "client_name", "document"]);
    check(
        "ClientMetadata / ResourceMetadata (deep JSON)",
        (nesting_depth(), place),
        |(depth, place)| {
            let nested = deep_json(depth);
            let text = if place == "document" {
                nested
            } else {
                let mut doc = valid_client().to_string();
                doc.insert_str(1, &format!("\"{place}\":{nested},"));
                doc
            };
            let client = ClientMetadata::from_json(text.as_bytes());
            let resource = ResourceMetadata::from_json(text.as_bytes());
            if depth > 128 {
                prop_assert!(client.is_err() && resource.is_err(), "depth {}", depth);
            }
            Ok(())
        },
    );
}

fn valid_resource() -> Value {
    json!({
        "resource": "https://api.example/v1",
        "scope": "read write",
        "access_token_ttl": "10m",
        "jwks": encryption_keys(),
        "access_token_encrypted_response_alg": "ECDH-ES",
        "access_token_encrypted_response_enc": "A256GCM"
    })
}

const RESOURCE_MEMBERS: [&str; 7] = [
    "resource",
    "scope",
    "access_token_ttl",
    "jwks",
    "access_token_encrypted_response_alg",
    "access_token_encrypted_response_enc",
    "unknown_member",
];

/// Resource metadata: any bytes or a valid document with members replaced give a resource that
/// can be used — stored and loaded unchanged, an absolute http(s) URI, a lifetime of 5–15
/// minutes, tokens that can be encrypted to its keys — or `invalid_request`.
#[test]
fn resource_metadata_is_usable_or_refused() {
    let ttl = prop_oneof![
        hostile_text(),
        Just("584942417355y".to_string()),
        Just("5m 1ns".to_string()),
        Just("900s".to_string()),
        "[0-9]{1,25}[smhdy]",
    ]
    .prop_map(Value::String);
    let doc = prop_oneof![
        1 => bytes(2_000),
        4 => mutated_document(valid_resource(), &RESOURCE_MEMBERS).prop_map(|d| d.to_string().into_bytes()),
        1 => ttl.prop_map(|t| { let mut d = valid_resource(); d["access_token_ttl"] = t; d.to_string().into_bytes() }),
    ];
    check("ResourceMetadata::from_json", doc, |json| {
        match ResourceMetadata::from_json(&json) {
            Ok(m) => {
                let stored = serde_json::to_string(&m).unwrap();
                let loaded: ResourceMetadata = serde_json::from_str(&stored).expect("loads");
                let a = serde_json::to_value(&loaded).unwrap();
                prop_assert!(same_json(&a, &serde_json::to_value(&m).unwrap()), "{}", a);
                prop_assert!(check_indicator(&m.resource).is_ok());
                prop_assert!(m.ttl_secs().is_none_or(|s| (300..=900).contains(&s)));
                if let (Some(alg), Some(jwks)) = (&m.access_token_encrypted_response_alg, &m.jwks) {
                    let enc = m.access_token_encrypted_response_enc.as_deref().unwrap();
                    let sealed = jwe::encrypt("h.p.s", alg, enc, Recipient::Keys(jwks));
                    prop_assert!(sealed.is_ok(), "{} to {}: {:?}", alg, jwks, sealed.err());
                }
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidRequest, "{:?}", e),
        }
        Ok(())
    });
}

/// RFC 8707 §2: a resource indicator is accepted only as an absolute URI without a fragment;
/// anything else is `invalid_target`.
#[test]
fn resource_indicators_are_absolute_uris_or_invalid_target() {
    let text = prop_oneof![hostile_text(), mutated("https://api.example/v1?x=1".into())];
    check("resource_metadata::check_indicator", text, |text| {
        match check_indicator(&text) {
            Ok(same) => {
                prop_assert_eq!(same, text.as_str());
                prop_assert!(url::Url::parse(&text).is_ok() && !text.contains('#'));
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::InvalidTarget),
        }
        Ok(())
    });
}
