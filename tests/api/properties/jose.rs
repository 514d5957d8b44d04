//! Compact JWS wherever Sigil reads a JWT: its own tokens (`id_token::verify_own`, under bearer
//! access tokens `validate::check`, `id_token_hint` at /authorize and /logout) and client
//! assertions (RFC 7523). Sigil accepts no JWE from anyone: a five-part token is refused
//! everywhere. SECURITY.md attacks 1, 3, 5, 6 and 7 as properties.

use std::sync::OnceLock;

use base64::Engine;
use josekit::jwk::KeyPair;
use josekit::jws::JwsSigner;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use sigil::crypto::keyring::KeySnapshot;
use sigil::crypto::keys::{self, SigningAlg};
use sigil::crypto::master_key::MasterKey;
use sigil::oauth::client_assertion::{self, Expected};
use sigil::oauth::client_auth::ClientSecret;
use sigil::oauth::client_keys::{self, VerifyingKey};
use sigil::storage::signing_keys::KeyRow;
use sigil::tokens::id_token::{self, MAX_JWT_BYTES};
use sigil::tokens::validate::{self, Audience};
use sigil::web::logout;

use super::{check, deep_json, hostile_text, json_value, mutated, nesting_depth};

const ISSUER: &str = "https://id.example";
const NOW: i64 = 1_800_000_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sigil's keys: one active key of every algorithm, built as a node builds them from the table.
fn snapshot() -> &'static KeySnapshot {
    static KEYS: OnceLock<KeySnapshot> = OnceLock::new();
    KEYS.get_or_init(|| {
        let master = MasterKey::generate();
        let rows: Vec<KeyRow> = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA]
            .into_iter()
            .map(|alg| {
                let key = keys::generate(alg).expect("key");
                KeyRow {
                    private_sealed: master.seal(&key.private_der, key.kid.as_bytes()).unwrap(),
                    kid: key.kid,
                    alg: alg.as_str().into(),
                    state: "active".into(),
                    public_jwk: Value::Object(key.public_jwk).to_string(),
                    created_at: 0,
                    activated_at: Some(0),
                    retiring_at: None,
                    retire_after: None,
                    retired_at: None,
                }
            })
            .collect();
        KeySnapshot::build(&rows, &master).expect("snapshot")
    })
}

const ALGS: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

/// `header.payload.signature` over raw header and payload text, signed by Sigil's `alg` key.
fn signed_raw(alg: SigningAlg, header: &str, payload: &str) -> String {
    let key = snapshot().active(alg).expect("active key");
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = key.signer.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(&sig))
}

fn own_header(alg: SigningAlg, typ: &str) -> Value {
    let kid = &snapshot().active(alg).unwrap().kid;
    json!({"alg": alg.as_str(), "kid": kid, "typ": typ})
}

fn access_claims() -> Map<String, Value> {
    let c = json!({"iss": ISSUER, "sub": "u1", "aud": ISSUER, "exp": NOW + 600, "iat": NOW,
                   "jti": "j1", "client_id": "app", "scope": "openid", "gid": "g1"});
    c.as_object().unwrap().clone()
}

/// One access token per algorithm, signed once: ES256 signatures are randomised, so a token
/// signed again is another genuine token.
fn access_token(alg: SigningAlg) -> String {
    static TOKENS: OnceLock<Vec<(SigningAlg, String)>> = OnceLock::new();
    let tokens = TOKENS.get_or_init(|| {
        ALGS.iter()
            .map(|a| {
                let header = own_header(*a, "at+jwt").to_string();
                (
                    *a,
                    signed_raw(*a, &header, &Value::Object(access_claims()).to_string()),
                )
            })
            .collect()
    });
    tokens
        .iter()
        .find(|(a, _)| *a == alg)
        .expect("every algorithm")
        .1
        .clone()
}

fn alg() -> impl Strategy<Value = SigningAlg> {
    proptest::sample::select(ALGS.to_vec())
}

/// Strings that are no token Sigil signed: any text, JWS and JWE shapes of random base64url,
/// and Sigil's own tokens with one part changed.
fn forged() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[A-Za-z0-9_-]{0,200}",
        hostile_text(),
        super::bytes(100).prop_map(|b| b64(&b)),
    ];
    prop_oneof![
        hostile_text(),
        proptest::collection::vec(part, 1..7).prop_map(|parts| parts.join(".")),
        alg().prop_flat_map(|a| mutated(access_token(a))),
        (alg(), 0..3usize, hostile_text()).prop_map(|(a, which, text)| {
            let token = access_token(a);
            let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
            parts[which] = b64(text.as_bytes());
            parts.join(".")
        }),
    ]
}

/// SECURITY.md 1, 5, 6: nothing but a token Sigil signed passes, whatever the shape — changed
/// headers, claims or signatures, empty or zero signatures, JWE's five parts.
#[test]
fn only_tokens_sigil_signed_are_its_own() {
    let originals: Vec<String> = ALGS.iter().map(|a| access_token(*a)).collect();
    check("id_token::verify_own (forged)", forged(), |token| {
        let keys = snapshot();
        let genuine = originals.contains(&token);
        prop_assert_eq!(id_token::verify_own(keys, &token).is_some(), genuine);
        let checked = validate::check(keys, &token, ISSUER, Audience::Any, NOW);
        prop_assert_eq!(checked.is_ok(), genuine);
        prop_assert!(id_token::verify_hint(keys, &token, ISSUER, "app").is_err());
        prop_assert!(logout::verify_hint(keys, &token, ISSUER, None).is_none());
        Ok(())
    });
}

/// RFC 8725 §3.1: a header Sigil's key signed is still judged by the key — `kid` must name
/// that key and `alg` must be its algorithm (SECURITY.md 1, 2, 3); any header value, `crit`
/// or deep nesting included, is handled without panic.
#[test]
fn the_key_not_the_header_decides() {
    let kid = prop_oneof![
        Just(None),
        alg().prop_map(|a| Some(json!(snapshot().active(a).unwrap().kid))),
        hostile_text().prop_map(|t| Some(json!(t))),
        Just(Some(json!(123))),
        Just(Some(json!("x".repeat(10_000)))),
        json_value().prop_map(Some),
    ];
    let alg_name = prop_oneof![
        alg().prop_map(|a| json!(a.as_str())),
        prop_oneof![
            Just("none"),
            Just("None"),
            Just("noNE"),
            Just("HS256"),
            Just("RS512"),
            Just("")
        ]
        .prop_map(|s| json!(s)),
        json_value(),
    ];
    let extra = prop_oneof![
        Just(None),
        Just(Some(("crit", json!(["exp"])))),
        Just(Some(("jku", json!("https://evil.example/jwks")))),
        Just(Some(("jwk", json!({"kty": "oct", "k": "AAAA"})))),
        json_value().prop_map(|v| Some(("x", v))),
    ];
    let input = (alg(), kid, alg_name, extra);
    check(
        "id_token::verify_own (headers)",
        input,
        |(signer, kid, alg_name, extra)| {
            let mut header = Map::new();
            header.insert("alg".into(), alg_name.clone());
            if let Some(kid) = &kid {
                header.insert("kid".into(), kid.clone());
            }
            if let Some((name, value)) = extra {
                header.insert(name.into(), value);
            }
            let claims = Value::Object(access_claims()).to_string();
            let token = signed_raw(signer, &Value::Object(header).to_string(), &claims);
            let own = snapshot().active(signer).unwrap();
            let right = kid.as_ref().and_then(Value::as_str) == Some(own.kid.as_str())
                && alg_name == json!(signer.as_str())
                && token.len() <= MAX_JWT_BYTES;
            prop_assert_eq!(id_token::verify_own(snapshot(), &token).is_some(), right);
            Ok(())
        },
    );
}

/// Deeply nested JSON in a signed header or claims: refused past serde_json's recursion limit
/// (128), read below it, and never a stack overflow.
#[test]
fn deep_json_in_a_jwt_is_refused_or_read_without_overflow() {
    check(
        "id_token::verify_own (deep JSON)",
        (alg(), nesting_depth(), any::<bool>()),
        |(a, depth, in_header)| {
            let nested = deep_json(depth);
            let mut header = own_header(a, "JWT").to_string();
            let mut claims = Value::Object(access_claims()).to_string();
            let target = if in_header { &mut header } else { &mut claims };
            target.insert_str(1, &format!("\"deep\":{nested},"));
            let token = signed_raw(a, &header, &claims);
            let read = id_token::verify_own(snapshot(), &token).is_some();
            let parses =
                serde_json::from_str::<Value>(if in_header { &header } else { &claims }).is_ok();
            prop_assert_eq!(
                read,
                parses && token.len() <= MAX_JWT_BYTES,
                "depth {}",
                depth
            );
            // serde_json's limit is 128 levels: far deeper is never read.
            prop_assert!(!(read && depth > 128), "depth {}", depth);
            let _ = logout::verify_hint(snapshot(), &token, ISSUER, Some("app"));
            Ok(())
        },
    );
}

/// SECURITY.md 6: a token of exactly 64 kB (65,536 bytes) is read, one byte more is refused.
#[test]
fn attack06_jwts_of_exactly_64_kb_are_read_and_one_byte_more_refused() {
    for a in ALGS {
        for extra in [0, 1] {
            let token = padded_to(a, MAX_JWT_BYTES + extra);
            assert_eq!(token.len(), MAX_JWT_BYTES + extra);
            assert_eq!(
                id_token::verify_own(snapshot(), &token).is_some(),
                extra == 0,
                "{a}"
            );
            let checked = validate::check(snapshot(), &token, ISSUER, Audience::Only(ISSUER), NOW);
            assert_eq!(checked.is_ok(), extra == 0, "{a}: {checked:?}");
        }
    }
}

/// An access token of exactly `len` bytes: the claims carry padding, and the header a short
/// member that moves the length into a reachable class (base64url lengths skip 1 mod 4).
fn padded_to(a: SigningAlg, len: usize) -> String {
    let claims = |pad: usize| {
        let mut c = access_claims();
        c.insert("pad".into(), "p".repeat(pad).into());
        Value::Object(c).to_string()
    };
    for filler in 0..4 {
        let mut header = own_header(a, "at+jwt");
        header["f"] = "f".repeat(filler).into();
        let header = header.to_string();
        let base = signed_raw(a, &header, &claims(0)).len();
        let mut pad = (len.saturating_sub(base)) * 3 / 4;
        let size = |pad: usize| signed_raw(a, &header, &claims(pad)).len();
        while pad > 0 && size(pad) > len {
            pad -= 1;
        }
        while size(pad) < len {
            pad += 1;
        }
        if size(pad) == len {
            return signed_raw(a, &header, &claims(pad));
        }
    }
    panic!("no padding gives {len} bytes");
}

/// Signed tokens whose claims are of any type: `validate::check` and both `id_token_hint`
/// readers refuse wrong types (SECURITY.md 7) and never accept a token for another issuer,
/// audience or an expired one.
#[test]
fn claims_of_any_type_are_refused_or_mean_what_they_say() {
    let name = proptest::sample::select(vec![
        "iss", "sub", "aud", "exp", "iat", "jti", "gid", "sid", "azp",
    ]);
    let typ = prop_oneof![Just(json!("at+jwt")), Just(json!("JWT")), json_value()];
    check(
        "validate::check and verify_hint (claims)",
        (alg(), name, json_value(), typ),
        |(a, name, value, typ)| {
            let mut claims = access_claims();
            claims.insert(name.into(), value);
            let claims = Value::Object(claims);
            let mut header = own_header(a, "");
            header["typ"] = typ;
            let token = signed_raw(a, &header.to_string(), &claims.to_string());
            let keys = snapshot();
            if let Ok(t) = validate::check(keys, &token, ISSUER, Audience::Only(ISSUER), NOW) {
                prop_assert_eq!(header["typ"].as_str(), Some("at+jwt"));
                prop_assert_eq!(claims["iss"].as_str(), Some(ISSUER));
                prop_assert_eq!(claims["aud"].as_str(), Some(ISSUER));
                prop_assert!(t.exp > NOW && claims["iat"].is_i64());
            }
            if let Ok(sub) = id_token::verify_hint(keys, &token, ISSUER, "app") {
                prop_assert_eq!(claims["sub"].as_str(), Some(sub.as_str()));
                prop_assert_eq!(claims["iss"].as_str(), Some(ISSUER));
            }
            if let Some(hint) = logout::verify_hint(keys, &token, ISSUER, Some(ISSUER)) {
                prop_assert_eq!(claims["sub"].as_str(), Some(hint.sub.as_str()));
                prop_assert_eq!(claims["iss"].as_str(), Some(ISSUER));
            }
            Ok(())
        },
    );
}

// ---- Client assertions (RFC 7523 §2.2, §3) ----

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789a";
const TOKEN_URL: &str = "https://id.example/token";

fn expected() -> Expected<'static> {
    Expected {
        client_id: "app",
        audiences: &[ISSUER, TOKEN_URL],
        now: NOW,
        clock_skew: 60,
    }
}

fn assertion_claims() -> Map<String, Value> {
    json!({"iss": "app", "sub": "app", "aud": TOKEN_URL, "exp": NOW + 60, "iat": NOW, "jti": "j-1"})
        .as_object()
        .unwrap()
        .clone()
}

/// The client's keys (its secret for HS256, an ES256 public key with kid `k1`) and a signer
/// for each.
struct ClientKeys {
    keys: Vec<VerifyingKey>,
    es256: Box<dyn JwsSigner>,
    hs256: Box<dyn JwsSigner>,
    es256_public: Value,
}

fn client_keys() -> ClientKeys {
    let pair = josekit::jws::ES256.generate_key_pair().unwrap();
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("k1");
    let es256_public = Value::Object(public.into());
    let mut keys = client_keys::from_jwks(&json!({"keys": [es256_public.clone()]}), None);
    keys.push(client_keys::from_secret(&ClientSecret::new(SECRET.into())).unwrap());
    ClientKeys {
        keys,
        es256: Box::new(
            josekit::jws::ES256
                .signer_from_der(pair.to_der_private_key())
                .unwrap(),
        ),
        hs256: Box::new(
            josekit::jws::HS256
                .signer_from_bytes(SECRET.as_bytes())
                .unwrap(),
        ),
        es256_public,
    }
}

fn sign_with(signer: &dyn JwsSigner, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    format!("{input}.{}", b64(&signer.sign(input.as_bytes()).unwrap()))
}

/// Any text, and valid assertions with one part mutated, parse or are refused, and never
/// verify (SECURITY.md 1, 5, 6).
#[test]
fn client_assertions_of_any_shape_never_verify_unless_signed() {
    let ck = client_keys();
    let valid = sign_with(
        ck.hs256.as_ref(),
        r#"{"alg":"HS256"}"#,
        &Value::Object(assertion_claims()).to_string(),
    );
    let input = prop_oneof![
        forged(),
        mutated(valid.clone()),
        super::bytes(70_000).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
    ];
    check(
        "client_assertion::parse + verify (forged)",
        input,
        |token| {
            if let Ok(assertion) = client_assertion::parse(&token) {
                prop_assert!(token.len() <= client_assertion::MAX_ASSERTION_BYTES);
                prop_assert_eq!(token.split('.').count(), 3);
                let verified = client_assertion::verify(&assertion, &ck.keys, &expected());
                prop_assert_eq!(verified.is_ok(), token == valid);
            }
            Ok(())
        },
    );
}

/// Assertions the client really signed, with any header and one claim of any value: accepted
/// only with the key's own algorithm, a `kid` naming a key of the client (or none), no `crit`,
/// and claims that hold (RFC 7523 §3, RFC 8725 §3.1, RFC 7515 §4.1.11). HMAC keyed with the
/// client's public key is refused (SECURITY.md 2).
#[test]
fn signed_client_assertions_are_judged_by_the_key_and_the_claims() {
    let ck = client_keys();
    let alg = prop_oneof![
        Just(json!("HS256")),
        Just(json!("ES256")),
        Just(json!("none")),
        Just(json!("None")),
        Just(json!("hs256")),
        Just(json!("RS256")),
        json_value()
    ];
    let kid = prop_oneof![
        Just(None),
        Just(Some(json!("k1"))),
        hostile_text().prop_map(|t| Some(json!(t))),
        json_value().prop_map(Some)
    ];
    let crit = any::<bool>();
    let claim = proptest::option::of((
        proptest::sample::select(vec!["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]),
        json_value(),
    ));
    let signer = 0..3usize;
    check(
        "client_assertion::verify (signed)",
        (signer, alg, kid, crit, claim),
        |(which, alg, kid, crit, claim)| {
            let mut header = Map::new();
            header.insert("alg".into(), alg.clone());
            if let Some(k) = &kid {
                header.insert("kid".into(), k.clone());
            }
            if crit {
                header.insert("crit".into(), json!(["exp"]));
            }
            let mut claims = assertion_claims();
            if let Some((name, value)) = &claim {
                claims.insert((*name).into(), value.clone());
            }
            let confusion;
            let signer: &dyn JwsSigner = match which {
                0 => ck.hs256.as_ref(),
                1 => ck.es256.as_ref(),
                _ => {
                    // HMAC keyed with the client's public JWK as its secret.
                    confusion = josekit::jws::HS256
                        .signer_from_bytes(ck.es256_public.to_string().as_bytes())
                        .unwrap();
                    &confusion
                }
            };
            let token = sign_with(
                signer,
                &Value::Object(header).to_string(),
                &Value::Object(claims).to_string(),
            );
            let verified = client_assertion::parse(&token)
                .and_then(|a| client_assertion::verify(&a, &ck.keys, &expected()));
            let kid_ok = match (&kid, which) {
                (None, _) => true,
                (Some(Value::String(_)), 0) => true,
                (Some(k), 1) => k == &json!("k1"),
                _ => false,
            };
            let alg_ok =
                (which == 0 && alg == json!("HS256")) || (which == 1 && alg == json!("ES256"));
            if verified.is_ok() {
                prop_assert!(alg_ok && kid_ok && !crit, "{:?} {:?}", alg, kid);
            }
            if claim.is_none()
                && alg_ok
                && kid_ok
                && !crit
                && token.len() <= client_assertion::MAX_ASSERTION_BYTES
            {
                prop_assert!(verified.is_ok(), "{verified:?}");
            }
            Ok(())
        },
    );
}
