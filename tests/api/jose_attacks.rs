//! SECURITY.md attacks 5 and 6 against every JWT Sigil accepts of its own (bearer access tokens
//! at UserInfo, introspection and the admin API; `id_token_hint` at /authorize): ECDSA
//! signatures of zeros (CVE-2022-21449) and of the wrong length, JWE inputs (PBES2 with a huge
//! `p2c`, `zip: DEF`, an off-curve `epk`) and inputs over 64 kB. Sigil accepts no JWE at all.

use base64::Engine;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{location, query, Browser, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app_with, Backend, TestApp};

both_backends!(
    attack05_ecdsa_zero_and_wrong_length_signatures_are_rejected,
    attack06_jwe_inputs_and_oversized_tokens_are_rejected,
);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 app (access tokens and the client's ID tokens), a signed-in browser and its tokens.
async fn es256_app(backend: Backend) -> (TestApp, Browser, String, Value) {
    let app = spawn_app_with(backend, |s| {
        s.tokens.access_token_alg = "ES256".parse().unwrap();
    })
    .await;
    app.add_user("alice");
    let (id, secret) = app.web_client("rp", json!({"id_token_signed_response_alg": "ES256"}));
    let browser = Browser::new();
    let code = app.code_for(&browser, &id, &[("scope", "openid")]).await;
    let tokens: Value = app
        .exchange(&id, &secret, &code, Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    (app, browser, id, tokens)
}

/// The same token with another signature.
fn resigned(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(signature))
}

/// Every way Sigil accepts one of its JWTs, each answering whether it was accepted.
async fn accepted_anywhere(
    app: &TestApp,
    browser: &Browser,
    client_id: &str,
    token: &str,
) -> Vec<String> {
    let mut accepted = Vec::new();
    if app.userinfo(token).await.status() == 200 {
        accepted.push("userinfo".to_string());
    }
    let (probe, secret) = app.cc_client(&format!("probe-{}", uuid::Uuid::new_v4().simple()));
    let r = app
        .http
        .post(app.endpoint("introspection_endpoint").await)
        .basic_auth(&probe, Some(&secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    if r.status() != 200 || r.json::<Value>().await.unwrap()["active"] != false {
        accepted.push("introspection".to_string());
    }
    let r = app
        .http
        .get(app.url("/admin/api/keys"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if r.status() != 401 {
        accepted.push("admin API".to_string());
    }
    // As an id_token_hint with prompt=none: never a code.
    let r = app
        .start(
            browser,
            client_id,
            &[
                ("scope", "openid"),
                ("prompt", "none"),
                ("id_token_hint", token),
            ],
        )
        .await;
    if r.status() == 303 && query(&location(&r)).contains_key("code") {
        accepted.push("id_token_hint".to_string());
    }
    accepted
}

async fn attack05_ecdsa_zero_and_wrong_length_signatures_are_rejected(backend: Backend) {
    let (app, browser, id, tokens) = es256_app(backend).await;
    let at = tokens["access_token"].as_str().unwrap();
    let idt = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_parts(at).0["alg"], "ES256");
    assert_eq!(jwt_parts(idt).0["alg"], "ES256");
    // The genuine tokens work where they belong (the test would prove nothing otherwise).
    assert_eq!(app.userinfo(at).await.status(), 200);
    let r = app
        .start(
            &browser,
            &id,
            &[
                ("scope", "openid"),
                ("prompt", "none"),
                ("id_token_hint", idt),
            ],
        )
        .await;
    assert!(query(&location(&r)).contains_key("code"));

    let genuine = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(at.rsplit_once('.').unwrap().1)
        .unwrap();
    assert_eq!(genuine.len(), 64);
    let mut der = vec![0x30, 0x44, 0x02, 0x20];
    der.extend_from_slice(&genuine[..32]);
    der.extend_from_slice(&[0x02, 0x20]);
    der.extend_from_slice(&genuine[32..]);
    let signatures: Vec<(&str, Vec<u8>)> = vec![
        ("all zeros (r = s = 0)", vec![0u8; 64]),
        ("zeros of DER length", vec![0u8; 8]),
        ("empty", vec![]),
        ("63 bytes", genuine[..63].to_vec()),
        ("65 bytes", [genuine.as_slice(), &[0]].concat()),
        ("DER-encoded genuine signature", der),
        ("r = s = n (the group order)", {
            let n = hex_bytes("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
            [n.clone(), n].concat()
        }),
    ];
    for (what, sig) in signatures {
        for token in [at, idt] {
            let forged = resigned(token, &sig);
            let accepted = accepted_anywhere(&app, &browser, &id, &forged).await;
            assert!(accepted.is_empty(), "{what}: accepted at {accepted:?}");
        }
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

async fn attack06_jwe_inputs_and_oversized_tokens_are_rejected(backend: Backend) {
    let (app, browser, id, tokens) = es256_app(backend).await;
    let at = tokens["access_token"].as_str().unwrap();
    let (header, _) = jwt_parts(at);
    let kid = header["kid"].as_str().unwrap();
    let part = |v: Value| b64(v.to_string().as_bytes());
    let five = |h: Value| {
        format!(
            "{}.{}.{}.{}.{}",
            part(h),
            b64(b"k"),
            b64(b"iv"),
            b64(&[0u8; 64]),
            b64(b"tag")
        )
    };
    let jwes = [
        (
            "PBES2 with a huge p2c",
            five(
                json!({"alg": "PBES2-HS512+A256KW", "enc": "A256GCM", "p2s": "c2FsdA", "p2c": 2_000_000_000u64, "kid": kid}),
            ),
        ),
        (
            "zip DEF",
            five(json!({"alg": "dir", "enc": "A256GCM", "zip": "DEF", "kid": kid})),
        ),
        (
            "RSA1_5",
            five(json!({"alg": "RSA1_5", "enc": "A128CBC-HS256", "kid": kid})),
        ),
        (
            "off-curve epk",
            five(json!({"alg": "ECDH-ES", "enc": "A256GCM", "kid": kid,
            "epk": {"kty": "EC", "crv": "P-256", "x": b64(&[1u8; 32]), "y": b64(&[2u8; 32])}})),
        ),
        // A JWS whose header claims to be a JWE.
        (
            "JWS with enc/zip",
            format!(
                "{}.{}",
                part(json!({"alg": "ES256", "kid": kid, "zip": "DEF", "enc": "A256GCM"})),
                at.split_once('.').unwrap().1
            ),
        ),
    ];
    for (what, token) in &jwes {
        let accepted = accepted_anywhere(&app, &browser, &id, token).await;
        assert!(accepted.is_empty(), "{what}: accepted at {accepted:?}");
    }
    // Over 64 kB: a genuine token padded in its header is refused everywhere, never a 500.
    let (h, rest) = at.split_once('.').unwrap();
    let mut padded_header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap();
    padded_header["x"] = "a".repeat(70 * 1024).into();
    let big = format!("{}.{rest}", part(padded_header));
    assert!(big.len() > 64 * 1024);
    let r = app
        .http
        .post(app.endpoint("userinfo_endpoint").await)
        .form(&[("access_token", big.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = app.userinfo(&big).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    // By POST (the URL would be too long to send): refused, and never a code.
    let r = browser
        .post_form(
            &app.endpoint("authorization_endpoint").await,
            &[
                ("client_id", id.as_str()),
                ("redirect_uri", crate::flow::REDIRECT),
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", crate::flow::CHALLENGE),
                ("code_challenge_method", "S256"),
                ("prompt", "none"),
                ("id_token_hint", big.as_str()),
            ],
        )
        .await;
    let status = r.status();
    assert!(
        status.is_client_error() || (status == 303 && !query(&location(&r)).contains_key("code")),
        "{status}"
    );
}
