//! The authorization endpoint's first checks (RFC 6749 §4.1.2.1): before the client and the
//! redirect_uri are known good, errors are an HTML page and never a redirect; after, errors go
//! back by redirect with `state` and `iss` (RFC 9207).

use serde_json::json;

use crate::both_backends;
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(
    attack11_open_redirect_variants_get_an_error_page,
    attack12_error_redirects_carry_iss_and_state_and_keep_the_registered_query,
    attack14_error_pages_forbid_framing_and_escape_input,
);

const REGISTERED: &str = "https://app.example/cb";

async fn setup(backend: Backend) -> (TestApp, String) {
    let app = spawn_app(backend).await;
    app.register_client(
        "web",
        &json!({"redirect_uris": [REGISTERED, "https://app.example/q?tenant=1"], "client_name": "Web"}),
    );
    let authorize = app.endpoint("authorization_endpoint").await;
    (app, authorize)
}

async fn assert_error_page(app: &TestApp, url: &str, query: &[(&str, &str)]) {
    let r = app.http.get(url).query(query).send().await.unwrap();
    assert_eq!(r.status(), 400, "{query:?}");
    assert!(
        r.headers().get("location").is_none(),
        "{query:?} redirected"
    );
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

async fn attack11_open_redirect_variants_get_an_error_page(backend: Backend) {
    let (app, authorize) = setup(backend).await;
    let base = [
        ("client_id", "web"),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s"),
    ];
    for redirect in [
        "https://app.example/cb/",
        "https://APP.example/cb",
        "https://app.example/cb/%2e%2e/",
        "https://app.example/cb@evil.example",
        "https://app.example:8443/cb",
        "https://app.example/cb?x=1",
        "https://app.example/cb#f",
        "https://app.example/cbx",
        "https://app.example/q?tenant=2",
        "https://evil.example/cb",
    ] {
        let mut q = base.to_vec();
        q.push(("redirect_uri", redirect));
        assert_error_page(&app, &authorize, &q).await;
    }
    // Missing redirect_uri, unknown client, no client.
    assert_error_page(&app, &authorize, &base).await;
    assert_error_page(
        &app,
        &authorize,
        &[
            ("client_id", "nobody"),
            ("redirect_uri", REGISTERED),
            ("response_type", "code"),
        ],
    )
    .await;
    assert_error_page(
        &app,
        &authorize,
        &[("redirect_uri", REGISTERED), ("response_type", "code")],
    )
    .await;
    // A repeated parameter is refused before anything is trusted.
    let url = format!(
        "{authorize}?client_id=web&client_id=web&redirect_uri={REGISTERED}&response_type=code"
    );
    let r = app.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

async fn attack12_error_redirects_carry_iss_and_state_and_keep_the_registered_query(
    backend: Backend,
) {
    let (app, authorize) = setup(backend).await;
    for (response_type, code) in [
        (None, "invalid_request"),
        (Some("token"), "unsupported_response_type"),
    ] {
        let mut q = vec![
            ("client_id", "web"),
            ("redirect_uri", "https://app.example/q?tenant=1"),
            ("state", "a b&c"),
        ];
        if let Some(rt) = response_type {
            q.push(("response_type", rt));
        }
        let r = app.http.get(&authorize).query(&q).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(location.host_str(), Some("app.example"));
        assert_eq!(location.path(), "/q");
        let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs["tenant"], "1", "registered query kept");
        assert_eq!(pairs["error"], code);
        assert_eq!(pairs["state"], "a b&c");
        assert_eq!(pairs["iss"], app.issuer());
    }
    // By POST too (OIDC Core §3.1.2.1).
    let r = app
        .http
        .post(&authorize)
        .form(&[
            ("client_id", "web"),
            ("redirect_uri", REGISTERED),
            ("response_type", "token"),
            ("state", "p"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{REGISTERED}?error=unsupported_response_type")),
        "{location}"
    );
}

async fn attack14_error_pages_forbid_framing_and_escape_input(backend: Backend) {
    let (app, authorize) = setup(backend).await;
    let r = app
        .http
        .get(&authorize)
        .query(&[
            ("client_id", "<script>alert(1)</script>"),
            ("redirect_uri", REGISTERED),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    assert!(!body.contains("<script>"));
}
