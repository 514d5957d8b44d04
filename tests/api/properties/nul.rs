//! Regression (found by the long fuzzing pass): a NUL byte in an identifier from outside
//! reached PostgreSQL, which refuses NUL in text ("invalid byte sequence for encoding UTF8:
//! 0x00"), and the request was answered 500 `server_error`. Every place an identifier from a
//! request is looked up must answer as for an unknown one, on both backends.

use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{location, Browser, REDIRECT};
use crate::helpers::{spawn_app, Backend};

both_backends!(nul_bytes_in_identifiers_are_unknown_identifiers_not_500s);

async fn nul_bytes_in_identifiers_are_unknown_identifiers_not_500s(backend: Backend) {
    let app = spawn_app(backend).await;
    let (cc, secret) = app.cc_client("cc");
    let (web, _) = app.web_client("web", json!({}));
    let nul_id = "c\0c";

    // Client ids at the endpoints clients call (RFC 6749 §2.3.1, §5.2): invalid_client.
    for name in [
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        let url = app.endpoint(name).await;
        let form = [
            ("grant_type", "client_credentials"),
            ("token", "t"),
            ("client_id", nul_id),
            ("client_secret", "s"),
        ];
        let r = app.http.post(&url).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}, client_secret_post");
        let r = app
            .http
            .post(&url)
            .basic_auth(nul_id, Some("s"))
            .form(&form[..2])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}, Basic");
    }
    // A resource indicator (RFC 8707 §2): invalid_target.
    let r = app
        .token_basic(
            &cc,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.example/\0"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_target", "{v}");

    // /authorize and /logout with an unknown client: an error page, no redirect.
    let browser = Browser::new();
    let r = app.start(&browser, nul_id, &[]).await;
    assert_eq!(r.status(), 400, "authorize with a NUL client_id");
    let logout = app.endpoint("end_session_endpoint").await;
    let r = browser
        .get(&format!(
            "{logout}?client_id=c%00c&post_logout_redirect_uri={REDIRECT}"
        ))
        .await;
    assert!(r.status().is_success(), "logout: {}", r.status());

    // What is parked for the sign-in (state, nonce, login_hint).
    let r = app
        .start(
            &browser,
            &web,
            &[("state", "s\0"), ("nonce", "n\0"), ("login_hint", "a\0")],
        )
        .await;
    assert_eq!(r.status(), 303, "a parked request with NUL in its values");
    // The login form itself (a NUL username reaches the per-account failure counter, still a
    // 500 on PostgreSQL) belongs to the brute-force work that rewrites that counter.
    let page = browser.get(&location(&r)).await;
    assert_eq!(
        page.status(),
        200,
        "the login page of a parked request with NUL in it"
    );

    // The same identifier without NUL works: the endpoints above were reachable.
    let r = app
        .token_basic(&cc, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 200);
}
