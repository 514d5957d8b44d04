//! Passkeys on `/account` over HTTP: added with the page's JSON endpoints (CSRF token, same
//! origin, fresh authentication), listed, removed with the page's form; and a `minimum_acr:
//! phr` client leading a TOTP user to enrol one there, then continuing with it.

use reqwest::Response;
use serde_json::{json, Value};

use super::authenticator::SoftKey;
use super::second_step::{answer, factor_page, finish};
use super::{passkey_app, post_json, user};
use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD};
use crate::helpers::{Backend, TestApp};
use crate::second_factors::{path_of, post_otp, step_fields, to_second_step, tokens, totp_at};
use sigil::web::passkeys;

both_backends!(
    the_account_page_adds_lists_and_removes_passkeys_with_csrf_and_fresh_authentication,
    a_minimum_acr_phr_client_leads_a_totp_user_to_enrol_a_passkey_then_continues_with_it,
);

/// Follows Sigil's redirects from `r` until a page (or the client's redirect), signing alice in on the way: her password
/// at the login page, `key` at the second step.
async fn follow(app: &TestApp, b: &Browser, mut r: Response, key: &mut SoftKey) -> Response {
    for _ in 0..12 {
        if r.status() != 303 {
            return r;
        }
        let to = location(&r);
        if !to.starts_with(&app.issuer()) {
            // The client's redirect URI: the caller takes it from here.
            return r;
        }
        r = match path_of(&to).as_str() {
            "/login" => {
                let r = app.submit_login(b, &to, "alice", PASSWORD).await;
                if r.status() != 200 {
                    r
                } else {
                    // The right password is answered with the second step's page.
                    let html = r.text().await.unwrap();
                    let (request, csrf) = step_fields(&html);
                    with_passkey(app, b, &request, &csrf, key).await
                }
            }
            "/login/factor" => {
                let (request, csrf, _, _) = factor_page(b, &to).await;
                with_passkey(app, b, &request, &csrf, key).await
            }
            _ => b.get(&to).await,
        };
    }
    panic!("too many redirects");
}

/// The second step with `key` for the parked request `request`: where it leads.
async fn with_passkey(
    app: &TestApp,
    b: &Browser,
    request: &str,
    csrf: &str,
    key: &mut SoftKey,
) -> Response {
    let (ceremony, credential) = answer(app, b, request, csrf, key).await;
    let done = finish(app, b, request, csrf, &ceremony, &credential).await;
    assert_eq!(done.status(), 200);
    let body: Value = done.json().await.unwrap();
    b.get(body["location"].as_str().unwrap()).await
}

/// Adds `key` named `name` from the account page `html`: the finish's answer.
async fn add(app: &TestApp, b: &Browser, html: &str, key: &mut SoftKey, name: &str) -> Response {
    let csrf = hidden(html, "csrf_token");
    let r = post_json(
        app,
        b,
        "/account/passkeys/options",
        &json!({"csrf_token": csrf}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let credential = key.create(&app.issuer(), &body["options"]);
    let finish = json!({"csrf_token": csrf, "ceremony": body["ceremony"], "name": name,
        "credential": credential});
    post_json(app, b, "/account/passkeys", &finish).await
}

async fn the_account_page_adds_lists_and_removes_passkeys_with_csrf_and_fresh_authentication(
    backend: Backend,
) {
    let app = passkey_app(backend, |_| {}).await;
    let alice = user(&app, "alice").await;
    let mut key = SoftKey::new(false);
    let b = Browser::new();
    let r = follow(&app, &b, b.get(&app.url("/account")).await, &mut key).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("Add a passkey") && html.contains("You have no passkey."));
    assert!(html.contains(r#"data-options="/account/passkeys/options""#));
    let csrf = hidden(&html, "csrf_token");

    // Without the CSRF token, or from another origin: 403, nothing started or added.
    let r = post_json(&app, &b, "/account/passkeys/options", &json!({})).await;
    assert_eq!(r.status(), 403);
    let r = b
        .http
        .post(app.url("/account/passkeys/options"))
        .header("Origin", "https://evil.example")
        .json(&json!({"csrf_token": csrf}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = post_json(
        &app,
        &b,
        "/account/passkeys/options",
        &json!({"csrf_token": csrf}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    let credential = key.create(&app.issuer(), &body["options"]);
    let mut finish = json!({"ceremony": body["ceremony"], "name": "Laptop",
        "credential": credential});
    let r = post_json(&app, &b, "/account/passkeys", &finish).await;
    assert_eq!(r.status(), 403);
    assert!(passkeys::list(&app.state, &alice.id)
        .await
        .unwrap()
        .is_empty());
    // With it: added, and the page lists it.
    finish["csrf_token"] = json!(csrf);
    let r = post_json(&app, &b, "/account/passkeys", &finish).await;
    assert_eq!(r.status(), 200);
    let to: Value = r.json().await.unwrap();
    let to = to["location"].as_str().unwrap().to_string();
    assert_eq!(query(&to)["done"], "passkey-added");
    let html = b.get(&to).await.text().await.unwrap();
    assert!(html.contains("The passkey was added."), "{html}");
    assert!(
        html.contains("Laptop") && html.contains("Hardware key"),
        "{html}"
    );
    let held = passkeys::list(&app.state, &alice.id).await.unwrap();
    assert_eq!(held.len(), 1);
    let credential_id = held[0].credential_id.clone();

    // Removal without the token: 403.
    let r = b
        .post_form(
            &app.url("/account/passkeys/remove"),
            &[("credential_id", &credential_id)],
        )
        .await;
    assert_eq!(r.status(), 403);

    // Five minutes on: adding answers 401 reauthenticate, removing goes to sign in again.
    app.state.clock.advance(301);
    let r = post_json(
        &app,
        &b,
        "/account/passkeys/options",
        &json!({"csrf_token": csrf}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "reauthenticate");
    let to = body["location"].as_str().unwrap();
    assert!(to.contains("/authorize?"), "{to}");
    assert_eq!(query(to)["max_age"], "300");
    finish["name"] = json!("Phone");
    let r = post_json(&app, &b, "/account/passkeys", &finish).await;
    assert_eq!(r.status(), 401);
    let r = b
        .post_form(
            &app.url("/account/passkeys/remove"),
            &[("csrf_token", &csrf), ("credential_id", &credential_id)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(query(&location(&r))["max_age"], "300");
    assert_eq!(
        passkeys::list(&app.state, &alice.id).await.unwrap().len(),
        1
    );

    // Signing in again (password, then the passkey as the second step) and removing it.
    let r = follow(&app, &b, r, &mut key).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("make your change once more"), "{html}");
    let r = b
        .post_form(
            &app.url("/account/passkeys/remove"),
            &[
                ("csrf_token", &hidden(&html, "csrf_token")),
                ("credential_id", &credential_id),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(query(&location(&r))["done"], "passkey-removed");
    assert!(passkeys::list(&app.state, &alice.id)
        .await
        .unwrap()
        .is_empty());
}

async fn a_minimum_acr_phr_client_leads_a_totp_user_to_enrol_a_passkey_then_continues_with_it(
    backend: Backend,
) {
    let app = passkey_app(backend, |_| {}).await;
    let (id, secret) = app.web_client("rp", json!({"minimum_acr": "phr"}));
    user(&app, "alice").await;
    let totp = app.add_totp("alice");
    let b = Browser::new();
    let factor = to_second_step(&app, &b, &id, &[]).await;
    let r = post_otp(&app, &b, &factor, &totp_at(&totp, app.now())).await;
    assert_eq!(r.status(), 303);
    let r = b.get(&location(&r)).await;
    let to = location(&r);
    assert_eq!(path_of(&to), "/login/enrol", "{to}");
    let html = b.get(&to).await.text().await.unwrap();
    assert!(html.contains("a passkey"), "{html}");
    let request = query(&to)["request"].clone();

    // She adds a passkey on her account page (the same browser, signed in a moment ago).
    let mut key = SoftKey::new(false);
    let r = follow(&app, &b, b.get(&app.url("/account")).await, &mut key).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let r = add(&app, &b, &html, &mut key, "Security key").await;
    assert_eq!(r.status(), 200);

    // Continuing: the passkey steps the session up, and the client gets phr.
    let r = b
        .get(&app.url(&format!("/authorize/resume?request={request}")))
        .await;
    let factor = location(&r);
    assert_eq!(path_of(&factor), "/login/factor", "{factor}");
    let (request, csrf, _, page) = factor_page(&b, &factor).await;
    assert!(
        !page.contains("name=\"otp\""),
        "phr is needed: no code form"
    );
    let (ceremony, credential) = answer(&app, &b, &request, &csrf, &mut key).await;
    let r = finish(&app, &b, &request, &csrf, &ceremony, &credential).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let r = b.get(body["location"].as_str().unwrap()).await;
    let r = app.drive(&b, r, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["acr"], "phr");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "hwk", "user", "mfa"]));
}
