//! A passkey as the second step after a password, and as the step-up of a weaker session
//! (`/login/factor`'s "Use a passkey": `/login/factor/passkey/options` and
//! `/login/factor/passkey`), with the software authenticator; a code is refused where the
//! request needs `phr`.

use serde_json::{json, Value};

use super::authenticator::{Quirks, SoftKey};
use super::{count, credential_ids, enrol, passkey_app, post_json, refused, user};
use crate::both_backends;
use crate::flow::{attribute, location, Browser};
use crate::helpers::{Backend, TestApp};
use crate::instant;
use crate::second_factors::{path_of, post_otp, to_second_step, tokens, totp_at};

both_backends!(
    password_then_passkey_gives_pwd_hwk_user_mfa_and_acr_phr,
    acr_values_phr_steps_a_totp_session_up_with_the_passkey_and_refuses_a_code,
    thirty_concurrent_finishes_of_one_second_step_ceremony_sign_in_once,
);

/// The second-step page at `factor`: (request id, CSRF token, CSP, HTML).
pub(super) async fn factor_page(
    browser: &Browser,
    factor: &str,
) -> (String, String, String, String) {
    let (csp, html) = page_and_policy(browser, factor).await;
    (
        attribute(&html, "data-request"),
        attribute(&html, "data-csrf"),
        csp,
        html,
    )
}

/// The page at `url`: (its CSP, its HTML).
async fn page_and_policy(browser: &Browser, url: &str) -> (String, String) {
    let page = browser.get(url).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    (csp, page.text().await.unwrap())
}

/// Options and `key`'s answer for the second step of `request`: (ceremony, answer).
pub(super) async fn answer(
    app: &TestApp,
    browser: &Browser,
    request: &str,
    csrf: &str,
    key: &mut SoftKey,
) -> (String, Value) {
    let r = post_json(
        app,
        browser,
        "/login/factor/passkey/options",
        &json!({"request": request, "csrf_token": csrf}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["options"]["publicKey"]["userVerification"], "required");
    assert_eq!(
        credential_ids(&body["options"]["publicKey"]["allowCredentials"]),
        [key.id()]
    );
    let ceremony = body["ceremony"].as_str().unwrap().to_string();
    let answer = key.get(&app.issuer(), &body["options"], &Quirks::default());
    (ceremony, answer)
}

pub(super) async fn finish(
    app: &TestApp,
    browser: &Browser,
    request: &str,
    csrf: &str,
    ceremony: &str,
    credential: &Value,
) -> reqwest::Response {
    let body = json!({"request": request, "csrf_token": csrf, "ceremony": ceremony,
        "credential": credential});
    post_json(app, browser, "/login/factor/passkey", &body).await
}

async fn password_then_passkey_gives_pwd_hwk_user_mfa_and_acr_phr(backend: Backend) {
    let app = passkey_app(backend, |_| {}).await;
    let (id, secret) = app.web_client("rp", json!({}));
    let alice = user(&app, "alice").await;
    let mut key = SoftKey::new(false);
    enrol(&app, &alice, &mut key).await;
    // Another user's passkey cannot be alice's second step.
    let mallory = user(&app, "mallory").await;
    let mut other = SoftKey::new(false);
    enrol(&app, &mallory, &mut other).await;

    // A passkey alone (no TOTP) makes the password sign-in two steps.
    let browser = Browser::new();
    let factor = to_second_step(&app, &browser, &id, &[]).await;
    let (request, csrf, csp, html) = factor_page(&browser, &factor).await;
    assert!(html.contains("Use a passkey"), "{html}");
    assert!(html.contains(r#"data-finish="/login/factor/passkey""#));
    assert!(
        !html.contains("name=\"otp\""),
        "no code form without a code factor"
    );
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    // The code form is refused on the server too.
    let r = browser
        .post_form(
            &app.url("/login/factor"),
            &[
                ("request", &request),
                ("csrf_token", &csrf),
                ("otp", "123456"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);

    // Mallory's key answering a ceremony of hers, posted on alice's second step: refused.
    let r = post_json(
        &app,
        &browser,
        "/login/passkey/options",
        &json!({"request": request, "csrf_token": csrf}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    let theirs = other.get(&app.issuer(), &body["options"], &Quirks::default());
    let ceremony = body["ceremony"].as_str().unwrap();
    refused(finish(&app, &browser, &request, &csrf, ceremony, &theirs).await).await;
    // Without the CSRF token: 403.
    let (ceremony, credential) = answer(&app, &browser, &request, &csrf, &mut key).await;
    let r = finish(&app, &browser, &request, "", &ceremony, &credential).await;
    assert_eq!(r.status(), 403);
    assert_eq!(count(&app, "sessions"), 0);

    let (ceremony, credential) = answer(&app, &browser, &request, &csrf, &mut key).await;
    let r = finish(&app, &browser, &request, &csrf, &ceremony, &credential).await;
    assert_eq!(r.status(), 200);
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(set.iter().any(|c| c.starts_with("sigil_session=")));
    let body: Value = r.json().await.unwrap();
    let to = body["location"].as_str().unwrap().to_string();
    assert_eq!(path_of(&to), "/authorize/resume");
    let r = app.drive(&browser, browser.get(&to).await, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["sub"], alice.id);
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "user", "mfa"]));
    assert_eq!(claims["acr"], "phr");
}

async fn acr_values_phr_steps_a_totp_session_up_with_the_passkey_and_refuses_a_code(
    backend: Backend,
) {
    let app = passkey_app(backend, |_| {}).await;
    let (id, secret) = app.web_client("rp", json!({}));
    let alice = user(&app, "alice").await;
    let totp = app.add_totp("alice");
    // Password and TOTP: mfa.
    let browser = Browser::new();
    let factor = to_second_step(&app, &browser, &id, &[]).await;
    let (csp, html) = page_and_policy(&browser, &factor).await;
    assert!(
        !csp.contains("script-src"),
        "no script without a passkey: {csp}"
    );
    assert!(!html.contains("Use a passkey"));
    let r = post_otp(&app, &browser, &factor, &totp_at(&totp, app.now())).await;
    let r = app.drive(&browser, r, "alice").await;
    let (first, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(first["acr"], "mfa");

    // She adds a passkey; acr_values=phr steps the session up, without a password.
    let mut key = SoftKey::new(true);
    enrol(&app, &alice, &mut key).await;
    app.state.clock.advance(40);
    let r = app.start(&browser, &id, &[("acr_values", "phr")]).await;
    let factor = location(&r);
    assert_eq!(path_of(&factor), "/login/factor", "{factor}");
    let (request, csrf, _, html) = factor_page(&browser, &factor).await;
    assert!(html.contains("Use a passkey"));
    assert!(
        !html.contains("name=\"otp\""),
        "phr is needed: no code form"
    );
    // A code is refused on the server: no code reaches phr.
    let code = totp_at(&totp, app.now());
    let r = browser
        .post_form(
            &app.url("/login/factor"),
            &[("request", &request), ("csrf_token", &csrf), ("otp", &code)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("needs a passkey"));

    let (ceremony, credential) = answer(&app, &browser, &request, &csrf, &mut key).await;
    let r = finish(&app, &browser, &request, &csrf, &ceremony, &credential).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("set-cookie").is_none(),
        "a step-up keeps the session"
    );
    let body: Value = r.json().await.unwrap();
    let to = body["location"].as_str().unwrap().to_string();
    let r = app.drive(&browser, browser.get(&to).await, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["acr"], "phr");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "swk", "user", "mfa"]));
    assert_eq!(
        claims["sid"], first["sid"],
        "the same session, made stronger"
    );
}

async fn thirty_concurrent_finishes_of_one_second_step_ceremony_sign_in_once(backend: Backend) {
    let app = passkey_app(backend, |s| s.login.max_failures = 100).await;
    let (id, _) = app.web_client("rp", json!({}));
    let alice = user(&app, "alice").await;
    let mut key = SoftKey::new(false);
    enrol(&app, &alice, &mut key).await;
    let browser = Browser::new();
    let factor = to_second_step(&app, &browser, &id, &[]).await;
    let (request, csrf, _, _) = factor_page(&browser, &factor).await;
    let (ceremony, credential) = answer(&app, &browser, &request, &csrf, &mut key).await;
    let body = json!({"request": request, "csrf_token": csrf, "ceremony": ceremony,
        "credential": credential})
    .to_string();
    let cookie = format!("sigil_csrf={csrf}");
    let requests = (0..30)
        .map(|_| {
            instant::request(
                "POST",
                &app.url("/login/factor/passkey"),
                &[
                    ("Content-Type", "application/json"),
                    ("Cookie", &cookie),
                    ("Origin", "null"),
                ],
                &body,
            )
        })
        .collect();
    let host = app.address.trim_start_matches("http://").to_string();
    let answers = instant::fire(&host, requests).await;
    let statuses = instant::by_status(&answers);
    assert_eq!(statuses.get(&200), Some(&1), "{statuses:?}");
    assert_eq!(count(&app, "sessions"), 1);
}
