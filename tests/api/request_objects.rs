//! Signed request objects (RFC 9101), by value at /authorize and inside a pushed request: the
//! object's claims are the request, verified with the client's registered keys and algorithm.

use serde_json::{json, Value};

use crate::both_backends;
use crate::client_assertion::keys::ClientKey;
use crate::flow::{location, query, Browser, CHALLENGE, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, Backend, TestApp};
use crate::par::pushed;

both_backends!(
    rfc9101_6_3_request_object_by_value_is_the_request,
    rfc9126_3_request_object_inside_a_pushed_request,
    rfc9101_6_2_request_object_refused_unless_signed_by_the_clients_key_and_algorithm,
);

/// A client `id` with `key` registered (and `request_object_signing_alg` when `pin`).
fn client(app: &TestApp, id: &str, key: &ClientKey, pin: bool) -> String {
    let mut extra = json!({"jwks": {"keys": [key.public_jwk]}});
    if pin {
        extra["request_object_signing_alg"] = key.alg.into();
    }
    app.web_client(id, extra).1
}

/// The claims of a full code-flow request of `id`.
fn claims(app: &TestApp, id: &str) -> Value {
    json!({
        "iss": id, "aud": app.issuer(), "client_id": id,
        "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid email",
        "state": "signed-state", "nonce": "signed-nonce", "max_age": 3600,
        "code_challenge": CHALLENGE, "code_challenge_method": "S256",
        "exp": app.state.clock.now() + 300,
    })
}

/// Signs in alice through `params` at /authorize; the redirect back to the client.
async fn sign_in(app: &TestApp, params: &[(&str, &str)]) -> String {
    let b = Browser::new();
    let r = b.get(&app.authorize_url(params).await).await;
    let r = app.drive(&b, r, "alice").await;
    location(&r)
}

async fn rfc9101_6_3_request_object_by_value_is_the_request(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let d = app.discovery().await;
    assert_eq!(d["request_parameter_supported"], true);
    assert_eq!(d["request_uri_parameter_supported"], false);
    assert!(d["request_object_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a != "none" && a != "HS256"));
    for (alg, pin) in [("PS256", true), ("ES256", false)] {
        let key = ClientKey::generate(alg);
        let id = format!("rp-{}", alg.to_lowercase());
        let secret = client(&app, &id, &key, pin);
        let jwt = key.sign(&claims(&app, &id));
        // Outside parameters are not the request: the object's are.
        let to = sign_in(
            &app,
            &[
                ("client_id", &id),
                ("request", &jwt),
                ("state", "outer"),
                ("scope", "openid profile"),
            ],
        )
        .await;
        assert!(to.starts_with(REDIRECT), "{alg}: {to}");
        let q = query(&to);
        assert_eq!(q["state"], "signed-state", "{alg}");
        let r = app.exchange(&id, &secret, &q["code"], Some(VERIFIER)).await;
        let t: Value = r.json().await.unwrap();
        let mut scope: Vec<&str> = t["scope"].as_str().unwrap().split(' ').collect();
        scope.sort();
        assert_eq!(scope, ["email", "openid"], "{alg}: the object's scope");
        assert_eq!(
            jwt_parts(t["id_token"].as_str().unwrap()).1["nonce"],
            "signed-nonce"
        );
    }
}

async fn rfc9126_3_request_object_inside_a_pushed_request(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let key = ClientKey::generate("EdDSA");
    let secret = client(&app, "rp", &key, true);
    let jwt = key.sign(&claims(&app, "rp"));
    let r = app
        .http
        .post(app.url("/par"))
        .basic_auth("rp", Some(&secret))
        .form(&[("request", jwt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let to = sign_in(&app, &[("client_id", "rp"), ("request_uri", &uri)]).await;
    assert_eq!(query(&to)["state"], "signed-state", "{to}");
    // A bad object is refused at /par, as JSON, and nothing is stored.
    let mut forged = claims(&app, "rp");
    forged["aud"] = "https://evil.example".into();
    let r = app
        .http
        .post(app.url("/par"))
        .basic_auth("rp", Some(&secret))
        .form(&[("request", key.sign(&forged).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_request_object"
    );
    // PAR without an object still works beside it.
    pushed(&app, "rp", &secret, &[]).await;
}

async fn rfc9101_6_2_request_object_refused_unless_signed_by_the_clients_key_and_algorithm(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let key = ClientKey::generate("PS256");
    client(&app, "rp", &key, true);
    let other = ClientKey::generate("PS256");
    let good = claims(&app, "rp");

    // The same RSA key signing RS256 when PS256 is registered; another key with the client's
    // kid; alg none; HS256 with the public key as secret; an altered payload; a JWE; claims
    // naming another client, audience or an expired time.
    let rs = ClientKey::generate("RS256");
    let unsigned = {
        let enc = |v: &Value| crate::client_assertion::keys::b64url(v.to_string().as_bytes());
        format!("{}.{}.", enc(&json!({"alg": "none"})), enc(&good))
    };
    let hs = ClientKey::hmac(key.public_jwk["n"].as_str().unwrap());
    let tampered = {
        let jwt = key.sign(&good);
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut altered = good.clone();
        altered["redirect_uri"] = "https://evil.example/cb".into();
        let payload = crate::client_assertion::keys::b64url(altered.to_string().as_bytes());
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    let mut expired = good.clone();
    expired["exp"] = (app.state.clock.now() - 600).into();
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = "https://evil.example".into();
    let mut wrong_client = good.clone();
    wrong_client["client_id"] = "other".into();
    let cases: Vec<(String, &str)> = vec![
        (
            rs.sign_with_kid(&good, &key.kid),
            "RS256 under a PS256 registration",
        ),
        (
            other.sign_with_kid(&good, &key.kid),
            "another key, the client's kid",
        ),
        (unsigned, "alg none"),
        (
            hs.sign_with_kid(&good, &key.kid),
            "HS256 keyed by the public key",
        ),
        (tampered, "altered claims"),
        ("a.b.c.d.e".to_string(), "a JWE"),
        (key.sign(&expired), "expired"),
        (key.sign(&wrong_aud), "another audience"),
        (key.sign(&wrong_client), "another client_id"),
    ];
    for (jwt, why) in cases {
        let b = Browser::new();
        let url = app
            .authorize_url(&[("client_id", "rp"), ("request", &jwt)])
            .await;
        let r = b.get(&url).await;
        assert_eq!(r.status(), 400, "{why}");
        assert!(
            r.headers().get("location").is_none(),
            "{why}: never redirected"
        );
        let html = r.text().await.unwrap();
        assert!(html.contains("invalid_request_object"), "{why}: {html}");
    }
    // The outer client_id must be the object's.
    let url = app
        .authorize_url(&[("client_id", "rp"), ("request", &key.sign(&good))])
        .await;
    assert_eq!(Browser::new().get(&url).await.status(), 303, "the good one");

    // Registration: none, HS256, or no keys are refused.
    for bad in [
        json!({"request_object_signing_alg": "none", "jwks": {"keys": [key.public_jwk]}}),
        json!({"request_object_signing_alg": "HS256", "jwks": {"keys": [key.public_jwk]}}),
        json!({"request_object_signing_alg": "PS256"}),
    ] {
        let mut metadata = json!({"redirect_uris": [REDIRECT], "scope": "openid"});
        for (k, v) in bad.as_object().unwrap() {
            metadata[k] = v.clone();
        }
        let out = app.sigil(
            &["client", "add", "--client-id", "bad", "--metadata", "-"],
            Some(&metadata.to_string()),
        );
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}
