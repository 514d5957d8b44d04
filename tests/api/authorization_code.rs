//! The authorization-code flow: OpenID conformance cases and SECURITY.md attacks 9, 10 and 12.

use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{location, query, Browser, CHALLENGE, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, verify_with_jwks, Backend, TestApp};

both_backends!(
    oidcc_happy_flow_client_secret_basic,
    oidcc_happy_flow_client_secret_post,
    oidcc_no_nonce_unknown_params_any_order_and_post_succeed,
    oidcc_response_type_missing_or_unsupported_is_an_error_by_redirect,
    oidcc_form_post_response_mode,
    oidcc_codereuse_revokes_the_first_tokens,
    attack09_code_injection_other_client_redirect_or_expiry,
    attack10_pkce_downgrade_and_bad_verifiers,
    attack10_public_clients_must_use_pkce,
    attack12_success_and_error_responses_carry_iss,
    oidcc_consent_deny_is_access_denied_and_consent_is_remembered,
);

async fn setup(backend: Backend) -> (TestApp, String, String) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.add_user("alice");
    (app, id, secret)
}

async fn tokens(app: &TestApp, id: &str, secret: &str, code: &str) -> Value {
    let r = app.exchange(id, secret, code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

fn check_id_token(
    app: &TestApp,
    body: &Value,
    jwks: &Value,
    client_id: &str,
    nonce: Option<&str>,
) -> Value {
    let id_token = body["id_token"].as_str().expect("id_token");
    verify_with_jwks(id_token, jwks, "RS256").expect("RS256 ID token with a kid from the JWKS");
    let (header, claims) = jwt_parts(id_token);
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], app.issuer());
    assert_eq!(claims["aud"], client_id);
    assert_eq!(claims["azp"], client_id);
    for c in ["sub", "exp", "iat", "auth_time", "sid", "at_hash", "acr"] {
        assert!(!claims[c].is_null(), "{c} missing");
    }
    assert_eq!(claims["amr"], json!(["pwd"]));
    match nonce {
        Some(n) => assert_eq!(claims["nonce"], n),
        None => assert!(claims.get("nonce").is_none()),
    }
    claims
}

async fn oidcc_happy_flow_client_secret_basic(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let code = app.code_for(&browser, &id, &[]).await;
    let body = tokens(&app, &id, &secret, &code).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "email openid profile");
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let jwks = app.jwks().await;
    let claims = check_id_token(&app, &body, &jwks, &id, Some("n-1"));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice Liddell");
    let (_, at) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(at["sub"], claims["sub"]);
    assert_eq!(at["client_id"], id);
}

async fn oidcc_happy_flow_client_secret_post(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client(
        "poster",
        json!({"token_endpoint_auth_method": "client_secret_post"}),
    );
    app.add_user("alice");
    let code = app.code_for(&Browser::new(), &id, &[]).await;
    let token = app.endpoint("token_endpoint").await;
    let r = app
        .http
        .post(token)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    check_id_token(&app, &body, &app.jwks().await, &id, Some("n-1"));
}

async fn oidcc_no_nonce_unknown_params_any_order_and_post_succeed(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let code = app
        .code_for(
            &browser,
            &id,
            &[
                ("nonce", ""),
                ("scope", "email openid"),
                ("foo", "bar"),
                ("display", "page"),
                ("ui_locales", "fr en"),
                ("claims_locales", "de"),
                ("login_hint", "alice"),
                ("acr_values", "urn:x"),
            ],
        )
        .await;
    let body = tokens(&app, &id, &secret, &code).await;
    check_id_token(&app, &body, &app.jwks().await, &id, None);

    // Authorization request by POST (OIDC Core §3.1.2.1), same session: no password again.
    let authorize = app.endpoint("authorization_endpoint").await;
    let r = browser
        .post_form(
            &authorize,
            &[
                ("scope", "openid email"),
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", "p"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let q = query(&location(&r));
    assert_eq!(q["state"], "p");
    tokens(&app, &id, &secret, &q["code"]).await;
}

async fn oidcc_response_type_missing_or_unsupported_is_an_error_by_redirect(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    for (rt, code) in [
        ("", "invalid_request"),
        ("token", "unsupported_response_type"),
        ("code id_token", "unsupported_response_type"),
    ] {
        let r = app
            .start(&Browser::new(), &id, &[("response_type", rt)])
            .await;
        assert_eq!(r.status(), 303);
        let q = query(&location(&r));
        assert_eq!(q["error"], code);
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["iss"], app.issuer());
    }
}

async fn oidcc_form_post_response_mode(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let r = app
        .start(&browser, &id, &[("response_mode", "form_post")])
        .await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("form-action https://rp.example") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{REDIRECT}\"")));
    assert_eq!(crate::flow::hidden(&html, "state"), "st-1");
    assert_eq!(
        crate::flow::hidden(&html, "iss")
            .replace("&#x2f;", "/")
            .replace("&#47;", "/"),
        app.issuer()
    );
    let code = crate::flow::hidden(&html, "code");
    tokens(&app, &id, &secret, &code).await;
}

/// OpenID conformance `oidcc-codereuse`: the second use fails, and the access token from the
/// first stops working at UserInfo.
async fn oidcc_codereuse_revokes_the_first_tokens(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let code = app.code_for(&Browser::new(), &id, &[]).await;
    let first = tokens(&app, &id, &secret, &code).await;
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(at).await.status(), 200);
    let again = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let r = app.userinfo(at).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

async fn attack09_code_injection_other_client_redirect_or_expiry(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let (other, other_secret) = app.web_client(
        "other",
        json!({"redirect_uris": [REDIRECT, "https://rp.example/other"]}),
    );
    let code = app.code_for(&Browser::new(), &id, &[]).await;
    // Client B with A's code.
    let r = app
        .exchange(&other, &other_secret, &code, Some(VERIFIER))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Another redirect_uri.
    let r = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://rp.example/other"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The refused attempts did not burn the code for its owner.
    tokens(&app, &id, &secret, &code).await;

    // After expiry (60 s).
    let code = app.code_for(&Browser::new(), &id, &[]).await;
    app.state.clock.advance(61);
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // A code that never existed.
    let r = app
        .exchange(&id, &secret, "made-up-code", Some(VERIFIER))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

async fn attack10_pkce_downgrade_and_bad_verifiers(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let expect_grant_error = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    };
    // Challenge sent, verifier missing / wrong / 42 / 129 characters.
    for verifier in [
        None,
        Some("x".repeat(43)),
        Some("a".repeat(42)),
        Some("a".repeat(129)),
    ] {
        let code = app.code_for(&Browser::new(), &id, &[]).await;
        expect_grant_error(app.exchange(&id, &secret, &code, verifier.as_deref()).await).await;
    }
    // No challenge, but a verifier at the token endpoint (downgrade).
    let code = app
        .code_for(
            &Browser::new(),
            &id,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        )
        .await;
    expect_grant_error(app.exchange(&id, &secret, &code, Some(VERIFIER)).await).await;
    // plain, or a challenge without a method (= plain): refused at /authorize.
    for extra in [
        vec![("code_challenge_method", "plain")],
        vec![("code_challenge_method", "")],
    ] {
        let r = app.start(&Browser::new(), &id, &extra).await;
        assert_eq!(r.status(), 303);
        assert_eq!(query(&location(&r))["error"], "invalid_request");
    }
}

async fn attack10_public_clients_must_use_pkce(backend: Backend) {
    let app = spawn_app(backend).await;
    app.web_client(
        "spa",
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}),
    );
    app.add_user("alice");
    let r = app
        .start(
            &Browser::new(),
            "spa",
            &[("code_challenge", ""), ("code_challenge_method", "")],
        )
        .await;
    assert_eq!(query(&location(&r))["error"], "invalid_request");
    // With PKCE the public client gets tokens, authenticating with its client_id alone.
    let code = app.code_for(&Browser::new(), "spa", &[]).await;
    let token = app.endpoint("token_endpoint").await;
    let r = app
        .http
        .post(&token)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", "spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn attack12_success_and_error_responses_carry_iss(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(query(&location(&r))["iss"], app.issuer());
    let r = app.start(&browser, &id, &[("scope", "openid admin")]).await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "invalid_scope");
    assert_eq!(q["iss"], app.issuer());
    assert_eq!(
        app.discovery().await["authorization_response_iss_parameter_supported"],
        true
    );
}

async fn oidcc_consent_deny_is_access_denied_and_consent_is_remembered(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", crate::flow::PASSWORD)
        .await;
    let r = browser.get(&location(&r)).await; // resume → consent page
    let consent_url = location(&r);
    assert!(consent_url.contains("/consent?"));
    let page = browser.get(&consent_url).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("App rp") && html.contains("See your email address"));
    // A GET never grants anything: asking again still lands on consent.
    let again = app.start(&browser, &id, &[]).await;
    assert!(location(&again).contains("/consent?"));
    let (request, csrf) = (
        crate::flow::hidden(&html, "request"),
        crate::flow::hidden(&html, "csrf_token"),
    );
    let r = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("request", &request),
                ("csrf_token", &csrf),
                ("decision", "deny"),
            ],
        )
        .await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["iss"], app.issuer());

    // Allowed once, remembered for the same scopes: the next request needs no page.
    let code = app.code_for(&browser, &id, &[]).await;
    assert!(!code.is_empty());
    let r = app.start(&browser, &id, &[]).await;
    assert!(location(&r).starts_with(REDIRECT), "consent remembered");
    // A wider scope asks again.
    let r = app
        .start(&browser, &id, &[("scope", "openid email phone")])
        .await;
    assert!(location(&r).contains("/consent?"));
}
