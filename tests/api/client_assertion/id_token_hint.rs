//! SECURITY.md attacks 1–6 against the other JWT Sigil accepts: `id_token_hint` at
//! /authorize. The browser holds a live session and the forged hints carry the real ID
//! token's claims, so a hint that were believed would give a silent code with `prompt=none`.

use openssl::bn::BigNum;
use serde_json::{json, Value};

use super::keys::{compact, ClientKey};
use super::LocalServer;
use crate::both_backends;
use crate::flow::{location, query, Browser, CHALLENGE, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app_with, Backend, TestApp};
use sigil::crypto::keys::SigningAlg;

both_backends!(
    attack1_id_token_hint_alg_none_never_passes,
    attack2_id_token_hint_hmac_with_sigils_public_key_never_passes,
    attack3_id_token_hint_kid_injection_is_a_clean_error,
    attack4_id_token_hint_key_and_url_headers_are_ignored,
    attack5_id_token_hint_ecdsa_zero_signature_never_passes,
    attack6_id_token_hint_over_64_kb_is_refused,
);

/// A signed-in browser and the ID token Sigil issued to client "rp" (signed with `alg`).
struct Signed {
    app: TestApp,
    browser: Browser,
    hint: String,
    header: Value,
    claims: Value,
}

async fn signed_in(backend: Backend, alg: &str) -> Signed {
    // Limits raised so that hints of up to 64 kB reach the JWT checks (by default such a
    // parameter is refused as too long before anything reads it).
    let app = spawn_app_with(backend, |s| {
        s.outbound.allow_private_networks = true;
        s.http.max_body_bytes = 256 * 1024;
        s.http.max_param_bytes = 128 * 1024;
    })
    .await;
    let (id, secret) = app.web_client("rp", json!({"id_token_signed_response_alg": alg}));
    app.add_user("alice");
    let browser = Browser::new();
    let code = app.code_for(&browser, &id, &[]).await;
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    let body: Value = r.json().await.unwrap();
    let hint = body["id_token"].as_str().unwrap().to_string();
    let (header, claims) = jwt_parts(&hint);
    assert_eq!(header["alg"], alg);
    let signed = Signed {
        app,
        browser,
        hint,
        header,
        claims,
    };
    // The real hint gives silent success: the refusals below are for the forgeries alone.
    let q = signed.authorize(&signed.hint).await;
    assert!(q.contains_key("code"), "the real hint: {q:?}");
    signed
}

impl Signed {
    /// POST /authorize with `prompt=none` and the hint; the parameters of the answer.
    async fn authorize(&self, hint: &str) -> std::collections::HashMap<String, String> {
        let url = self.app.endpoint("authorization_endpoint").await;
        let r = self
            .browser
            .post_form(
                &url,
                &[
                    ("client_id", "rp"),
                    ("redirect_uri", REDIRECT),
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("state", "st"),
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "S256"),
                    ("prompt", "none"),
                    ("id_token_hint", hint),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "an answer to the client, never a 500");
        let to = location(&r);
        assert!(to.starts_with(REDIRECT), "{to}");
        query(&to)
    }

    /// A forged hint must come back as an error, with no code.
    async fn refused(&self, hint: &str, what: &str) {
        let q = self.authorize(hint).await;
        assert!(!q.contains_key("code"), "{what}: silent success {q:?}");
        assert_eq!(
            q.get("error").map(String::as_str),
            Some("invalid_request"),
            "{what}"
        );
    }

    fn header_with(&self, changes: Value) -> Value {
        let mut h = self.header.clone();
        for (k, v) in changes.as_object().unwrap() {
            h[k] = v.clone();
        }
        h
    }

    /// The real signature over a new header and the real claims (valid only if Sigil signed it).
    fn resigned_by_sigil(&self, header: &Value) -> String {
        let keys = self.app.state.keyring.current();
        let alg: SigningAlg = self.header["alg"].as_str().unwrap().parse().unwrap();
        let key = keys.active(alg).unwrap();
        compact(header, &self.claims, |input| {
            key.signer.sign(input).unwrap()
        })
    }
}

async fn attack1_id_token_hint_alg_none_never_passes(backend: Backend) {
    let s = signed_in(backend, "RS256").await;
    for alg in ["none", "None", "noNE", "NONE"] {
        let header = s.header_with(json!({"alg": alg}));
        s.refused(&compact(&header, &s.claims, |_| Vec::new()), alg)
            .await;
        let unsigned = compact(&json!({"alg": alg}), &s.claims, |_| Vec::new());
        s.refused(&unsigned, alg).await;
    }
    let (input, _) = s.hint.rsplit_once('.').unwrap();
    s.refused(&format!("{input}."), "empty signature").await;
    s.refused(input, "two parts").await;
}

async fn attack2_id_token_hint_hmac_with_sigils_public_key_never_passes(backend: Backend) {
    let s = signed_in(backend, "RS256").await;
    let kid = s.header["kid"].as_str().unwrap();
    let jwks = s.app.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone();
    let b64 = |m: &str| {
        base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwk[m].as_str().unwrap(),
        )
        .unwrap()
    };
    let rsa = openssl::rsa::Rsa::from_public_components(
        BigNum::from_slice(&b64("n")).unwrap(),
        BigNum::from_slice(&b64("e")).unwrap(),
    )
    .unwrap();
    let pkey = openssl::pkey::PKey::from_rsa(rsa.clone()).unwrap();
    for (what, secret) in [
        ("PEM", pkey.public_key_to_pem().unwrap()),
        ("PKCS#1 PEM", rsa.public_key_to_pem_pkcs1().unwrap()),
        ("DER", pkey.public_key_to_der().unwrap()),
        ("JWK", jwk.to_string().into_bytes()),
    ] {
        let forger = ClientKey::hmac_bytes(&secret);
        for header in [
            s.header_with(json!({"alg": "HS256"})),
            json!({"alg": "HS256"}),
        ] {
            s.refused(&forger.sign_with_header(&header, &s.claims), what)
                .await;
        }
    }
    // Another of Sigil's own algorithms named in the header of an RS256 key's signature.
    let ps = s.header_with(json!({"alg": "PS256"}));
    s.refused(&s.resigned_by_sigil(&ps), "PS256 header on the RS256 key")
        .await;
}

async fn attack3_id_token_hint_kid_injection_is_a_clean_error(backend: Backend) {
    let s = signed_in(backend, "RS256").await;
    let real = s.header["kid"].as_str().unwrap().to_string();
    for kid in [
        json!("../../dev/null"),
        json!("' OR '1'='1"),
        json!("k".repeat(10 * 1024)),
        json!("\0"),
        json!(format!("{real}\0")),
        json!(123),
        json!(null),
        json!([real]),
        json!({"kid": real}),
    ] {
        let header = s.header_with(json!({ "kid": kid }));
        let shown: String = kid.to_string().chars().take(40).collect();
        // Signed by Sigil's real key, so only the kid is wrong.
        s.refused(&s.resigned_by_sigil(&header), &shown).await;
    }
}

async fn attack4_id_token_hint_key_and_url_headers_are_ignored(backend: Backend) {
    let s = signed_in(backend, "RS256").await;
    let attacker = ClientKey::generate("RS256");
    let server = LocalServer::start(json!({"keys": [attacker.public_jwk]}).to_string());
    let real = s.header["kid"].clone();
    for changes in [
        json!({"kid": attacker.kid, "jku": server.url}),
        json!({"jku": server.url}),
        json!({"kid": attacker.kid, "x5u": server.url}),
        json!({"x5u": server.url}),
        json!({"kid": attacker.kid, "jwk": attacker.public_jwk}),
        json!({"jwk": attacker.public_jwk}),
        json!({"kid": real, "jwk": attacker.public_jwk, "jku": server.url}),
    ] {
        let forged = attacker.sign_with_header(&s.header_with(changes.clone()), &s.claims);
        s.refused(&forged, &changes.to_string()).await;
    }
    assert_eq!(
        server.hits(),
        0,
        "Sigil never fetched a URL from a token header"
    );
}

async fn attack5_id_token_hint_ecdsa_zero_signature_never_passes(backend: Backend) {
    let s = signed_in(backend, "ES256").await;
    for (what, sig) in [
        ("all zero", vec![0u8; 64]),
        ("63 bytes", vec![0u8; 63]),
        ("65 bytes", vec![0u8; 65]),
        ("empty", vec![]),
    ] {
        s.refused(&compact(&s.header, &s.claims, |_| sig.clone()), what)
            .await;
    }
}

async fn attack6_id_token_hint_over_64_kb_is_refused(backend: Backend) {
    let s = signed_in(backend, "RS256").await;
    // Validly signed by Sigil's key, so size is the only fault.
    let mut big = s.claims.clone();
    big["pad"] = "x".repeat(46_000).into();
    let under = compact(&s.header, &big, |input| {
        let keys = s.app.state.keyring.current();
        keys.active(SigningAlg::RS256)
            .unwrap()
            .signer
            .sign(input)
            .unwrap()
    });
    assert!(under.len() > 60 * 1024 && under.len() <= 64 * 1024);
    let q = s.authorize(&under).await;
    assert!(q.contains_key("code"), "just under 64 kB: {q:?}");
    big["pad"] = "x".repeat(50_000).into();
    let over = compact(&s.header, &big, |input| {
        let keys = s.app.state.keyring.current();
        keys.active(SigningAlg::RS256)
            .unwrap()
            .signer
            .sign(input)
            .unwrap()
    });
    assert!(over.len() > 64 * 1024);
    s.refused(&over, "over 64 kB").await;
}
