use serde_json::json;

use super::*;
use crate::crypto::b64url;
use crate::oauth::client_auth::ClientSecret;
use crate::oauth::client_keys;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789a";
const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://id.example";
const TOKEN_URL: &str = "https://id.example/token";

fn expected() -> Expected<'static> {
    Expected {
        client_id: "app",
        audiences: &[ISSUER, TOKEN_URL],
        now: NOW,
        clock_skew: 60,
    }
}

fn claims() -> Value {
    json!({"iss": "app", "sub": "app", "aud": TOKEN_URL, "exp": NOW + 60, "iat": NOW, "jti": "j-1"})
}

/// An HS256 JWS over `claims` with the header given.
fn hs256(header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signer = josekit::jws::HS256
        .signer_from_bytes(SECRET.as_bytes())
        .unwrap();
    let sig = josekit::jws::JwsSigner::sign(&signer, input.as_bytes()).unwrap();
    format!("{input}.{}", b64url(&sig))
}

fn check(token: &str) -> Result<Verified, Rejected> {
    let key = client_keys::from_secret(&ClientSecret::new(SECRET.into())).unwrap();
    verify(&parse(token)?, &[key], &expected())
}

fn with(claim: &str, value: Value) -> Value {
    let mut c = claims();
    c[claim] = value;
    c
}

fn without(claim: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(claim);
    c
}

#[test]
fn a_good_assertion_passes() {
    let v = check(&hs256(&json!({"alg": "HS256"}), &claims())).unwrap();
    assert_eq!(v.jti, "j-1");
    assert_eq!(v.exp, NOW + 60);
    let both = with("aud", json!([ISSUER, TOKEN_URL]));
    assert!(check(&hs256(&json!({"alg": "HS256"}), &both)).is_ok());
    let fraction = with("exp", json!((NOW + 60) as f64 + 0.5));
    assert!(check(&hs256(&json!({"alg": "HS256"}), &fraction)).is_ok());
}

#[test]
fn attack1_alg_none_in_any_spelling_is_refused() {
    for alg in ["none", "None", "noNE", "NONE"] {
        let token = hs256(&json!({"alg": alg}), &claims());
        let (input, _) = token.rsplit_once('.').unwrap();
        assert!(
            check(&format!("{input}.")).is_err(),
            "{alg}, empty signature"
        );
        assert!(check(&token).is_err(), "{alg}");
    }
    let token = hs256(&json!({"alg": "HS256"}), &claims());
    let (input, _) = token.rsplit_once('.').unwrap();
    assert_eq!(check(&format!("{input}.")), Err(Rejected("bad signature")));
}

#[test]
fn the_header_cannot_pick_another_algorithm() {
    for alg in ["HS384", "HS512", "RS256", "hs256"] {
        assert_eq!(
            check(&hs256(&json!({"alg": alg}), &claims())),
            Err(Rejected("alg is not the key's algorithm")),
            "{alg}"
        );
    }
    assert!(check(&hs256(&json!({"alg": 256}), &claims())).is_err());
    assert!(check(&hs256(&json!({}), &claims())).is_err());
}

#[test]
fn critical_extensions_and_malformed_tokens_are_refused() {
    let crit = json!({"alg": "HS256", "crit": ["b64"], "b64": false});
    assert_eq!(
        check(&hs256(&crit, &claims())),
        Err(Rejected("crit header"))
    );
    for bad in [
        "",
        "a.b",
        "a.b.c.d.e",
        "!!.e30.",
        "e30.e30.!!",
        "W10.e30.",
        "e30.W10.",
    ] {
        assert!(check(bad).is_err(), "{bad}");
    }
    let huge = hs256(
        &json!({"alg": "HS256"}),
        &with("pad", "x".repeat(70_000).into()),
    );
    assert_eq!(check(&huge), Err(Rejected("larger than 64 kB")));
}

#[test]
fn attack3_kid_must_be_a_string_that_names_a_key() {
    assert_eq!(
        check(&hs256(&json!({"alg": "HS256", "kid": 123}), &claims())),
        Err(Rejected("kid is not a string"))
    );
    // The secret is the client's one key: a string kid selects nothing.
    assert!(check(&hs256(&json!({"alg": "HS256", "kid": "any"}), &claims())).is_ok());
    // Registered keys are selected by kid.
    let pair = josekit::jws::ES256.generate_key_pair().unwrap();
    let mut public = pair.to_jwk_public_key();
    public.set_key_id("k1");
    let keys = client_keys::from_jwks(&json!({"keys": [Value::Object(public.into())]}), None);
    let signer = josekit::jws::ES256
        .signer_from_der(josekit::jwk::KeyPair::to_der_private_key(&pair))
        .unwrap();
    let es256 = |kid: &Value| {
        let header = json!({"alg": "ES256", "kid": kid});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims().to_string().as_bytes())
        );
        let sig = josekit::jws::JwsSigner::sign(&signer, input.as_bytes()).unwrap();
        let token = format!("{input}.{}", b64url(&sig));
        verify(&parse(&token).unwrap(), &keys, &expected())
    };
    assert!(es256(&json!("k1")).is_ok());
    for kid in ["../../dev/null", "' OR '1'='1", "\0", "k1\0", ""] {
        assert_eq!(
            es256(&json!(kid)),
            Err(Rejected("no key of the client has this kid")),
            "{kid:?}"
        );
    }
    assert_eq!(es256(&json!(1)), Err(Rejected("kid is not a string")));
}

#[test]
fn attack7_claims_of_the_wrong_type_or_missing_are_refused() {
    let header = json!({"alg": "HS256"});
    for (name, claims) in [
        ("exp string", with("exp", "never".into())),
        ("exp bool", with("exp", true.into())),
        ("iat string", with("iat", "now".into())),
        ("nbf array", with("nbf", json!([1]))),
        ("iss number", with("iss", 1.into())),
        ("jti number", with("jti", 7.into())),
        ("jti empty", with("jti", "".into())),
        ("no exp", without("exp")),
        ("no jti", without("jti")),
        ("no iss", without("iss")),
        ("no sub", without("sub")),
        ("no aud", without("aud")),
    ] {
        assert!(check(&hs256(&header, &claims)).is_err(), "{name}");
    }
}

#[test]
fn issuer_subject_and_audience_must_be_exact() {
    let header = json!({"alg": "HS256"});
    for (name, claims) in [
        ("iss other", with("iss", "other".into())),
        ("sub other", with("sub", "other".into())),
        (
            "aud other",
            with("aud", "https://other.example/token".into()),
        ),
        (
            "aud foreign in array",
            with("aud", json!([TOKEN_URL, "https://other.example"])),
        ),
        ("aud empty array", with("aud", json!([]))),
        ("aud object", with("aud", json!({"a": TOKEN_URL}))),
    ] {
        assert!(check(&hs256(&header, &claims)).is_err(), "{name}");
    }
}

#[test]
fn times_are_checked_with_the_skew() {
    let header = json!({"alg": "HS256"});
    let ok = |c: Value| check(&hs256(&header, &c)).is_ok();
    assert!(ok(with("exp", (NOW - 30).into())), "within the skew");
    assert!(!ok(with("exp", (NOW - 60).into())), "expired");
    assert!(ok(with("exp", (NOW + 360).into())), "5 min + skew");
    assert!(!ok(with("exp", (NOW + 361).into())), "too far");
    assert!(!ok(with("exp", json!(u64::MAX))));
    assert!(!ok(with("exp", json!(i64::MIN))));
    assert!(!ok(with("exp", json!(1e300))));
    assert!(!ok(with("nbf", (NOW + 61).into())));
    assert!(ok(with("nbf", (NOW + 30).into())));
    assert!(!ok(with("iat", (NOW + 61).into())));
}
