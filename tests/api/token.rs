//! The token endpoint with the client_credentials grant (RFC 6749 §4.4, RFC 9068 tokens) and
//! every error case of RFC 6749 §5.2.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, verify_with_jwks, Backend, TestApp};
use sigil::crypto::keys::SigningAlg;

both_backends!(
    client_credentials_rs256_token_verifies_against_the_jwks,
    client_credentials_es256_token_verifies_against_the_jwks,
    client_credentials_ps256_token_verifies_against_the_jwks,
    client_credentials_eddsa_token_verifies_against_the_jwks,
    client_secret_post_works_and_default_scope_is_the_registered_one,
    access_token_lifetime_is_configurable,
    attack18_unknown_client_and_wrong_secret_get_identical_401s,
    auth_method_must_match_the_registration,
    two_authentication_methods_at_once_is_invalid_request,
    malformed_or_missing_client_authentication_is_invalid_client,
    missing_or_unknown_grant_type,
    client_without_the_grant_is_unauthorized_client,
    wider_or_malformed_scope_is_invalid_scope,
    repeated_parameters_are_invalid_request,
    wrong_content_type_and_oversized_bodies_are_refused,
    token_endpoint_only_takes_post,
    client_cache_sees_new_clients_at_once_and_removals_within_its_ttl,
);

/// Checks an RFC 6749 §5.2 error answer.
async fn assert_oauth_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "status for {code}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["content-type"], "application/json");
    if status == 401 {
        assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"sigil\"");
    }
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    body
}

async fn token_verifies(backend: Backend, alg: SigningAlg) {
    let app = spawn_app_with(backend, |s| s.tokens.access_token_alg = alg).await;
    let (id, secret) = app.cc_client("service-a");
    let r = app
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "api:read");
    let token = body["access_token"].as_str().unwrap();

    let jwks = app.jwks().await;
    verify_with_jwks(token, &jwks, alg.as_str()).expect("signature verifies with openidconnect");
    // A tampered token does not.
    let (head, _) = token.split_once('.').unwrap();
    let forged_claims = base64_json(&json!({"iss": app.issuer(), "sub": "admin"}));
    let forged = format!(
        "{head}.{forged_claims}.{}",
        token.rsplit('.').next().unwrap()
    );
    assert!(verify_with_jwks(&forged, &jwks, alg.as_str()).is_err());

    let (header, claims) = jwt_parts(token);
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 §2.1");
    assert_eq!(header["alg"], alg.as_str());
    let kid = header["kid"].as_str().unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone();
    assert_eq!(key["alg"], alg.as_str());
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["keys", "list", "--json"], None).stdout).unwrap();
    let state = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()["state"]
        .clone();
    assert_eq!(
        state, "active",
        "tokens are signed by the active key, never the next one"
    );

    assert_eq!(claims["iss"], app.issuer());
    assert_eq!(claims["sub"], "service-a");
    assert_eq!(claims["client_id"], "service-a");
    assert_eq!(claims["aud"], app.issuer());
    assert_eq!(claims["scope"], "api:read");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((iat - now).abs() < 60);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));

    // Every token has its own jti.
    let again: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let (_, claims2) = jwt_parts(again["access_token"].as_str().unwrap());
    assert_ne!(claims["jti"], claims2["jti"]);
}

fn base64_json(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn client_credentials_rs256_token_verifies_against_the_jwks(backend: Backend) {
    token_verifies(backend, SigningAlg::RS256).await
}
async fn client_credentials_es256_token_verifies_against_the_jwks(backend: Backend) {
    token_verifies(backend, SigningAlg::ES256).await
}
async fn client_credentials_ps256_token_verifies_against_the_jwks(backend: Backend) {
    token_verifies(backend, SigningAlg::PS256).await
}
async fn client_credentials_eddsa_token_verifies_against_the_jwks(backend: Backend) {
    token_verifies(backend, SigningAlg::EdDSA).await
}

async fn client_secret_post_works_and_default_scope_is_the_registered_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.register_client(
        "poster",
        &json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post", "scope": "b a"}),
    );
    let secret = r["client_secret"].as_str().unwrap();
    let token = app.endpoint("token_endpoint").await;
    let r = app
        .http
        .post(&token)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "poster"),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "a b");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "a b");
}

async fn access_token_lifetime_is_configurable(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.tokens.access_ttl = "5m".parse().unwrap()).await;
    let (id, secret) = app.cc_client("svc");
    let body: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["expires_in"], 300);
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

/// SECURITY.md attack 18: unknown client and wrong secret give identical 401 answers.
async fn attack18_unknown_client_and_wrong_secret_get_identical_401s(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let form = [("grant_type", "client_credentials")];
    let wrong = app.token_basic(&id, &format!("{secret}x"), &form).await;
    let unknown = app.token_basic("nobody", &secret, &form).await;
    let empty = app.token_basic(&id, "", &form).await;
    let mut bodies = Vec::new();
    for r in [wrong, unknown, empty] {
        let www = r.headers().get("www-authenticate").cloned();
        bodies.push((www, assert_oauth_error(r, 401, "invalid_client").await));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0], bodies[2]);
}

async fn auth_method_must_match_the_registration(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("basic-only");
    let token = app.endpoint("token_endpoint").await;
    let r = app
        .http
        .post(&token)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client").await;
    // A confidential client cannot authenticate with its id alone.
    let r = app
        .http
        .post(&token)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client").await;
}

async fn two_authentication_methods_at_once_is_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let r = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", secret.as_str()),
            ],
        )
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "someone-else"),
            ],
        )
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;
}

async fn malformed_or_missing_client_authentication_is_invalid_client(backend: Backend) {
    let app = spawn_app(backend).await;
    app.cc_client("svc");
    let token = app.endpoint("token_endpoint").await;
    for header in ["Basic !!!not-base64", "Bearer abc", "Basic ", "Basic c3Zj"] {
        let r = app
            .http
            .post(&token)
            .header("Authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_oauth_error(r, 401, "invalid_client").await;
    }
    let r = app
        .http
        .post(&token)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client").await;
}

async fn missing_or_unknown_grant_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let r = app
        .token_basic(&id, &secret, &[("scope", "api:read")])
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    for grant in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
    ] {
        let r = app
            .token_basic(&id, &secret, &[("grant_type", grant)])
            .await;
        assert_oauth_error(r, 400, "unsupported_grant_type").await;
    }
}

async fn client_without_the_grant_is_unauthorized_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.register_client("web", &json!({"redirect_uris": ["https://app.example/cb"]}));
    let secret = r["client_secret"].as_str().unwrap();
    let r = app
        .token_basic("web", secret, &[("grant_type", "client_credentials")])
        .await;
    assert_oauth_error(r, 400, "unauthorized_client").await;
}

async fn wider_or_malformed_scope_is_invalid_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let r = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "api:read admin"),
            ],
        )
        .await;
    assert_oauth_error(r, 400, "invalid_scope").await;
    let r = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "api:read \"x\""),
            ],
        )
        .await;
    assert_oauth_error(r, 400, "invalid_scope").await;
}

async fn repeated_parameters_are_invalid_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let r = raw_token(
        &app,
        &id,
        &secret,
        "application/x-www-form-urlencoded",
        "grant_type=client_credentials&scope=api:read&scope=api:write".into(),
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
}

async fn raw_token(
    app: &TestApp,
    id: &str,
    secret: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let token = app.endpoint("token_endpoint").await;
    app.http
        .post(token)
        .basic_auth(id, Some(secret))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn wrong_content_type_and_oversized_bodies_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let r = raw_token(
        &app,
        &id,
        &secret,
        "application/json",
        br#"{"grant_type":"client_credentials"}"#.to_vec(),
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = raw_token(
        &app,
        &id,
        &secret,
        "text/plain",
        b"grant_type=client_credentials".to_vec(),
    )
    .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let mut big = b"grant_type=client_credentials&pad=".to_vec();
    big.extend(std::iter::repeat_n(b'x', 64 * 1024));
    let r = raw_token(&app, &id, &secret, "application/x-www-form-urlencoded", big).await;
    assert_oauth_error(r, 413, "invalid_request").await;
    let r = raw_token(
        &app,
        &id,
        &secret,
        "application/x-www-form-urlencoded",
        vec![0xff, 0xfe, b'=', 0x80],
    )
    .await;
    assert!(r.status().is_client_error());
    // The same client still gets a token: nothing was changed by the refused requests.
    let ok = raw_token(
        &app,
        &id,
        &secret,
        "application/x-www-form-urlencoded; charset=utf-8",
        b"grant_type=client_credentials".to_vec(),
    )
    .await;
    assert_eq!(ok.status(), 200);
}

async fn token_endpoint_only_takes_post(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.endpoint("token_endpoint").await;
    let r = app.http.get(&token).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

async fn client_cache_sees_new_clients_at_once_and_removals_within_its_ttl(backend: Backend) {
    let app = spawn_app(backend).await;
    let form = [("grant_type", "client_credentials")];
    // Unknown, then registered: the very next request succeeds (misses are never cached).
    assert_eq!(app.token_basic("svc", "x", &form).await.status(), 401);
    let (id, secret) = app.cc_client("svc");
    assert_eq!(app.token_basic(&id, &secret, &form).await.status(), 200);
    // Removed: refused once the cache entry (5 s by default) has expired.
    assert!(app
        .sigil(&["client", "remove", "svc"], None)
        .status
        .success());
    app.state.clock.advance(5);
    assert_oauth_error(
        app.token_basic(&id, &secret, &form).await,
        401,
        "invalid_client",
    )
    .await;
}
