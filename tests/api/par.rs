//! Pushed authorization requests (RFC 9126): the request is posted by the authenticated client
//! and the browser carries only `client_id` and the one-time `request_uri`.

use std::sync::Arc;

use reqwest::Response;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{location, query, Browser, CHALLENGE, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, Backend, TestApp};

both_backends!(
    rfc9126_4_a_pushed_request_is_the_request_and_signs_in,
    rfc9126_2_2_a_request_uri_is_used_once_for_its_own_client_within_60_seconds,
    rfc9126_2_3_refuses_unauthenticated_clients_and_bad_requests_and_stores_nothing,
    rfc9126_5_6_required_by_the_client_or_globally,
    rfc9126_4_thirty_concurrent_uses_of_one_request_uri_start_one_sign_in,
    rfc9126_2_requests_pushed_for_a_public_client_are_capped_per_address,
);

/// The usual code-flow parameters, with `extra` overriding or (empty value) removing.
fn request(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid profile email"),
        ("state", "pushed-state"),
        ("nonce", "pushed-nonce"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        params.retain(|(p, _)| p != k);
        if !v.is_empty() {
            params.push((k.to_string(), v.to_string()));
        }
    }
    params
}

/// POST /par as `id` (HTTP Basic with `secret`, or `client_id` in the body when it is empty).
pub async fn push(app: &TestApp, id: &str, secret: &str, extra: &[(&str, &str)]) -> Response {
    let mut form = request(extra);
    let req = app.http.post(app.url("/par"));
    let req = if secret.is_empty() {
        form.push(("client_id".into(), id.into()));
        req
    } else {
        req.basic_auth(id, Some(secret))
    };
    req.form(&form).send().await.unwrap()
}

/// The `request_uri` of a successful push.
pub async fn pushed(app: &TestApp, id: &str, secret: &str, extra: &[(&str, &str)]) -> String {
    let r = push(app, id, secret, extra).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    body["request_uri"].as_str().unwrap().to_string()
}

/// GET /authorize with `params` only.
async fn authorize(app: &TestApp, b: &Browser, params: &[(&str, &str)]) -> Response {
    b.get(&app.authorize_url(params).await).await
}

fn rows(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use sigil::storage::schema::pushed_requests::dsl as p;
    app.state
        .db
        .with_conn(|c| {
            p::pushed_requests
                .count()
                .get_result::<i64>(c)
                .map_err(sigil::storage::StorageError::from)
        })
        .unwrap()
}

/// The error page's code (the endpoint answers a page, not a redirect, before it knows where to).
async fn page_error(r: Response) -> String {
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    ["invalid_request_uri", "invalid_request", "invalid_client"]
        .into_iter()
        .find(|code| html.contains(code))
        .unwrap_or_else(|| panic!("no error code on the page: {html}"))
        .to_string()
}

async fn rfc9126_4_a_pushed_request_is_the_request_and_signs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.add_user("alice");
    let d = app.discovery().await;
    assert_eq!(d["pushed_authorization_request_endpoint"], app.url("/par"));
    assert_eq!(d["require_pushed_authorization_requests"], false);

    let uri = pushed(&app, &id, &secret, &[]).await;
    assert!(
        uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{uri}"
    );
    assert!(!uri.contains(&secret));
    // Parameters beside client_id and request_uri are not the request: the pushed ones are.
    let b = Browser::new();
    let r = authorize(
        &app,
        &b,
        &[
            ("client_id", &id),
            ("request_uri", &uri),
            ("state", "from-the-browser"),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    )
    .await;
    let r = app.drive(&b, r, "alice").await;
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    let q = query(&to);
    assert_eq!(q["state"], "pushed-state");
    let r = app.exchange(&id, &secret, &q["code"], Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let claims = jwt_parts(tokens["id_token"].as_str().unwrap()).1;
    assert_eq!(claims["nonce"], "pushed-nonce");
    assert_eq!(rows(&app), 0, "used once: gone");

    // A public client pushes with its client_id alone (PKCE protects its code).
    let r = app.register_client(
        "spa",
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                "scope": "openid profile email"}),
    );
    assert_eq!(r["client_id"], "spa");
    let uri = pushed(&app, "spa", "", &[]).await;
    let r = authorize(&app, &b, &[("client_id", "spa"), ("request_uri", &uri)]).await;
    let r = app.drive(&b, r, "alice").await;
    assert!(
        query(&location(&r)).contains_key("code"),
        "{}",
        location(&r)
    );
}

async fn rfc9126_2_2_a_request_uri_is_used_once_for_its_own_client_within_60_seconds(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.web_client("other", json!({}));
    app.add_user("alice");

    let uri = pushed(&app, &id, &secret, &[]).await;
    // Another client naming it gets nothing, and does not use it up.
    let r = authorize(
        &app,
        &Browser::new(),
        &[("client_id", "other"), ("request_uri", &uri)],
    )
    .await;
    assert_eq!(page_error(r).await, "invalid_request_uri");
    let r = authorize(
        &app,
        &Browser::new(),
        &[("client_id", &id), ("request_uri", &uri)],
    )
    .await;
    assert_eq!(r.status(), 303, "the owner's first use");
    let r = authorize(
        &app,
        &Browser::new(),
        &[("client_id", &id), ("request_uri", &uri)],
    )
    .await;
    assert_eq!(page_error(r).await, "invalid_request_uri", "second use");

    // Unknown or altered ids, and URNs of another form.
    let forged = format!("{uri}x");
    let r = authorize(
        &app,
        &Browser::new(),
        &[("client_id", &id), ("request_uri", &forged)],
    )
    .await;
    assert_eq!(page_error(r).await, "invalid_request_uri");

    // 60 seconds, then refused.
    let uri = pushed(&app, &id, &secret, &[]).await;
    app.state.clock.advance(61);
    let r = authorize(
        &app,
        &Browser::new(),
        &[("client_id", &id), ("request_uri", &uri)],
    )
    .await;
    assert_eq!(page_error(r).await, "invalid_request_uri", "expired");
}

async fn rfc9126_2_3_refuses_unauthenticated_clients_and_bad_requests_and_stores_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.web_client("other", json!({}));

    let r = push(&app, &id, "wrong secret", &[]).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // A confidential client cannot push with its client_id alone.
    let r = push(&app, &id, "", &[]).await;
    assert_eq!(r.status(), 401);

    for (extra, why) in [
        (
            vec![("redirect_uri", "https://evil.example/cb")],
            "unregistered redirect_uri",
        ),
        (
            vec![("response_type", "token")],
            "unsupported response_type",
        ),
        (vec![("code_challenge", "")], "no PKCE"),
        (
            vec![("scope", "openid groups")],
            "a scope beyond the client's",
        ),
        (
            vec![("request_uri", "urn:ietf:params:oauth:request_uri:abc")],
            "a request_uri",
        ),
        (vec![("client_id", "other")], "another client's id"),
    ] {
        let r = push(&app, &id, &secret, &extra).await;
        assert_eq!(r.status(), 400, "{why}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{why}: {body}");
        assert!(r#"["invalid_request","unsupported_response_type","invalid_scope","invalid_redirect_uri"]"#
            .contains(body["error"].as_str().unwrap()), "{why}: {body}");
    }
    // Not a form.
    let r = app
        .http
        .post(app.url("/par"))
        .basic_auth(&id, Some(&secret))
        .json(&json!({"response_type": "code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // GET is not served.
    let r = app.http.get(app.url("/par")).send().await.unwrap();
    assert!(r.status() == 404 || r.status() == 405, "{}", r.status());
    assert_eq!(rows(&app), 0, "nothing stored");
}

async fn rfc9126_5_6_required_by_the_client_or_globally(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client(
        "strict",
        json!({"require_pushed_authorization_requests": true}),
    );
    app.web_client("relaxed", json!({}));
    app.add_user("alice");
    // Without a pushed request: the error goes back to the client.
    let b = Browser::new();
    let r = app.start(&b, &id, &[]).await;
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query(&to)["error"], "invalid_request");
    // A foreign request_uri is not a pushed request either.
    let r = app
        .start(&b, &id, &[("request_uri", "https://rp.example/req.jwt")])
        .await;
    assert!(location(&r).starts_with(REDIRECT));
    // Pushed: signs in.
    let uri = pushed(&app, &id, &secret, &[]).await;
    let r = authorize(&app, &b, &[("client_id", &id), ("request_uri", &uri)]).await;
    let r = app.drive(&b, r, "alice").await;
    assert!(query(&location(&r)).contains_key("code"));
    // Others are not bound.
    let r = app.start(&Browser::new(), "relaxed", &[]).await;
    assert!(location(&r).contains("/login?"), "{}", location(&r));

    let app = spawn_app_with(backend, |s| s.par.required = true).await;
    let (id, secret) = app.web_client("rp", json!({}));
    assert_eq!(
        app.discovery().await["require_pushed_authorization_requests"],
        true
    );
    let r = app.start(&Browser::new(), &id, &[]).await;
    assert_eq!(query(&location(&r))["error"], "invalid_request");
    let uri = pushed(&app, &id, &secret, &[]).await;
    let r = authorize(
        &app,
        &Browser::new(),
        &[("client_id", &id), ("request_uri", &uri)],
    )
    .await;
    assert!(location(&r).contains("/login?"), "{}", location(&r));
}

async fn rfc9126_4_thirty_concurrent_uses_of_one_request_uri_start_one_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    let uri = pushed(&app, &id, &secret, &[]).await;
    let url = app
        .authorize_url(&[("client_id", &id), ("request_uri", &uri)])
        .await;
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            tokio::spawn(async move {
                let b = Browser::new();
                barrier.wait().await;
                b.get(&url).await.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        29,
        "{statuses:?}"
    );
}

async fn rfc9126_2_requests_pushed_for_a_public_client_are_capped_per_address(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.max_parked_per_address = 3).await;
    app.register_client(
        "spa",
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                "scope": "openid profile email"}),
    );
    let (id, secret) = app.web_client("rp", json!({}));
    let mut uris = Vec::new();
    // A second apart: "oldest" is by the second a request was pushed.
    for _ in 0..8 {
        uris.push(pushed(&app, "spa", "", &[]).await);
        app.state.clock.advance(1);
    }
    assert_eq!(rows(&app), 3, "the oldest gave way");
    let b = Browser::new();
    let r = authorize(&app, &b, &[("client_id", "spa"), ("request_uri", &uris[0])]).await;
    assert_eq!(
        page_error(r).await,
        "invalid_request_uri",
        "the oldest is gone"
    );
    let r = authorize(&app, &b, &[("client_id", "spa"), ("request_uri", &uris[7])]).await;
    assert_eq!(r.status(), 303, "the newest stays");
    // An authenticated client's pushes are its own to answer for: not capped.
    for _ in 0..5 {
        pushed(&app, &id, &secret, &[]).await;
    }
    assert_eq!(rows(&app), 2 + 5);
}
