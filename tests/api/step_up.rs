//! SECURITY.md 26, step-up bypass: a parked request that still needs a sign-in (`prompt=login`,
//! `max_age`, an `id_token_hint` naming someone else) is never answered with a code because the
//! consent form was posted with the live session; and signing in as someone else than the hint
//! names gives no code either.

use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, Backend, TestApp};

both_backends!(
    attack26_consent_posted_for_a_request_that_needs_a_fresh_login_gives_no_code,
    attack26_a_hint_naming_another_user_never_gives_a_code_for_the_signed_in_one,
);

async fn setup(backend: Backend) -> (TestApp, String, String) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.add_user("alice");
    app.add_user("bob");
    (app, id, secret)
}

async fn id_token(app: &TestApp, id: &str, secret: &str, code: &str) -> (String, Value) {
    let r = app.exchange(id, secret, code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["id_token"].as_str().unwrap().to_string();
    let claims = jwt_parts(&token).1;
    (token, claims)
}

/// Posts the consent form for the parked request behind `login_url` (the form a page of this
/// browser could post: its own CSRF token, its own request id).
async fn post_consent(app: &TestApp, browser: &Browser, login_url: &str) -> reqwest::Response {
    let html = browser.get(login_url).await.text().await.unwrap();
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    browser
        .post_form(
            &app.url("/consent"),
            &[
                ("request", &request),
                ("csrf_token", &csrf),
                ("decision", "allow"),
            ],
        )
        .await
}

async fn attack26_consent_posted_for_a_request_that_needs_a_fresh_login_gives_no_code(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let code = app.code_for(&browser, &id, &[]).await;
    let first_auth_time = id_token(&app, &id, &secret, &code).await.1["auth_time"].clone();
    app.state.clock.advance(5);
    for extra in [[("prompt", "login")], [("max_age", "1")]] {
        let r = app.start(&browser, &id, &extra).await;
        let login_url = location(&r);
        assert!(login_url.contains("/login?"), "{extra:?}: {login_url}");
        // The consent form, posted with the live session, sends the browser to the login page
        // for the same request instead of answering it.
        let r = post_consent(&app, &browser, &login_url).await;
        assert_eq!(r.status(), 303, "{extra:?}");
        let to = location(&r);
        assert!(
            !to.starts_with(REDIRECT),
            "{extra:?}: a code without a sign-in: {to}"
        );
        assert_eq!(
            url::Url::parse(&to).unwrap().path(),
            "/login",
            "{extra:?}: {to}"
        );
        assert_eq!(query(&to)["request"], query(&login_url)["request"]);
        // The request is still parked: signing in now answers it, with a later auth_time.
        let r = app
            .submit_login(&browser, &login_url, "alice", PASSWORD)
            .await;
        let r = app.drive(&browser, r, "alice").await;
        let to = location(&r);
        assert!(to.starts_with(REDIRECT), "{to}");
        let claims = id_token(&app, &id, &secret, &query(&to)["code"]).await.1;
        assert!(
            claims["auth_time"].as_i64() > first_auth_time.as_i64(),
            "{extra:?}: auth_time {} is not after {first_auth_time}",
            claims["auth_time"]
        );
        app.state.clock.advance(5);
    }
}

async fn attack26_a_hint_naming_another_user_never_gives_a_code_for_the_signed_in_one(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    // Bob's ID token, from his own browser.
    let bob_browser = Browser::new();
    let r = app.start(&bob_browser, &id, &[]).await;
    let r = app.drive(&bob_browser, r, "bob").await;
    let (bob_hint, bob) = id_token(&app, &id, &secret, &query(&location(&r))["code"]).await;
    // Alice is signed in in this browser.
    let browser = Browser::new();
    let code = app.code_for(&browser, &id, &[]).await;
    let alice = id_token(&app, &id, &secret, &code).await.1;
    assert_ne!(alice["sub"], bob["sub"]);

    let r = app
        .start(&browser, &id, &[("id_token_hint", &bob_hint)])
        .await;
    let login_url = location(&r);
    assert!(login_url.contains("/login?"), "{login_url}");
    // The consent form for it, with alice's session: no code for alice.
    let r = post_consent(&app, &browser, &login_url).await;
    let to = location(&r);
    assert!(!to.starts_with(REDIRECT), "a code for alice: {to}");
    // Signing in again as alice: the client is told login_required, still no code.
    let r = app
        .submit_login(&browser, &login_url, "alice", PASSWORD)
        .await;
    let r = app.drive(&browser, r, "alice").await;
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    let q = query(&to);
    assert!(!q.contains_key("code"), "{to}");
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["iss"], app.issuer());

    // Signing in as bob, whom the hint names, answers with bob's code.
    let r = app
        .start(&browser, &id, &[("id_token_hint", &bob_hint)])
        .await;
    let login_url = location(&r);
    let r = app
        .submit_login(&browser, &login_url, "bob", PASSWORD)
        .await;
    let r = app.drive(&browser, r, "bob").await;
    let q = query(&location(&r));
    let claims = id_token(&app, &id, &secret, &q["code"]).await.1;
    assert_eq!(claims["sub"], bob["sub"]);
}
