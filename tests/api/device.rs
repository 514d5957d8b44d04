//! The device authorization grant (RFC 8628; SECURITY.md 34): the device authorization
//! endpoint, the `/device` page through Sigil's own sign-in and consent, and polling the token
//! endpoint, with the error of every case the RFC names, the bounds on what unauthenticated
//! requests can store, throttled user-code guessing and a single-use device code.

use reqwest::Response;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, Browser, PASSWORD};
use crate::helpers::{form_encode, jwt_parts, spawn_app, Backend, TestApp};
use crate::second_factors::{post_otp, second_step_url, totp_at};

mod attacks;

both_backends!(
    rfc8628_3_1_a_client_not_registered_for_the_grant_is_refused,
    rfc8628_3_2_the_response_and_the_user_code_format,
    rfc8628_3_5_authorization_pending_until_the_user_decides,
    rfc8628_3_5_slow_down_when_polling_too_fast,
    rfc8628_3_5_access_denied_when_the_user_denies,
    rfc8628_3_5_expired_token_after_the_lifetime,
    rfc8628_3_5_invalid_grant_for_an_unknown_or_another_clients_code,
    rfc8628_3_3_approval_gives_tokens_with_an_id_token_once,
    rfc8628_3_3_the_second_factor_is_asked_like_at_any_sign_in,
);

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SCOPE: &str = "openid profile email offline_access";

/// A confidential client registered for the device grant (and refresh tokens).
pub fn device_client(app: &TestApp, client_id: &str, extra: Value) -> (String, String) {
    let mut metadata = json!({
        "grant_types": [GRANT, "refresh_token"],
        "scope": SCOPE,
        "client_name": format!("TV {client_id}"),
    });
    for (k, v) in extra.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    let r = app.register_client(client_id, &metadata);
    (
        client_id.to_string(),
        r["client_secret"].as_str().unwrap_or("").to_string(),
    )
}

/// POST /device_authorization (RFC 8628 §3.1) with HTTP Basic (no secret: a public client).
pub async fn authorize(app: &TestApp, client: &(String, String), scope: &str) -> Response {
    let url = app.endpoint("device_authorization_endpoint").await;
    let request = app.http.post(url);
    let request = if client.1.is_empty() {
        request.form(&[("client_id", client.0.as_str()), ("scope", scope)])
    } else {
        request
            .basic_auth(form_encode(&client.0), Some(form_encode(&client.1)))
            .form(&[("scope", scope)])
    };
    request.send().await.unwrap()
}

/// A device authorization that must succeed: its response.
pub async fn started(app: &TestApp, client: &(String, String)) -> Value {
    let r = authorize(app, client, SCOPE).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// One poll of the token endpoint (RFC 8628 §3.4): status and body. A public client (no
/// secret) names itself with `client_id`.
async fn poll(app: &TestApp, client: &(String, String), device_code: &str) -> (u16, Value) {
    let form = [("grant_type", GRANT), ("device_code", device_code)];
    let r = if client.1.is_empty() {
        let url = app.endpoint("token_endpoint").await;
        let mut form = form.to_vec();
        form.push(("client_id", &client.0));
        app.http.post(url).form(&form).send().await.unwrap()
    } else {
        app.token_basic(&client.0, &client.1, &form).await
    };
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls once the interval has passed (the clock moves on by it).
async fn poll_later(app: &TestApp, client: &(String, String), device: &Value) -> (u16, Value) {
    app.state
        .clock
        .advance(device["interval"].as_i64().unwrap());
    poll(app, client, device["device_code"].as_str().unwrap()).await
}

fn error(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or("(none)"))
}

/// Types `user_code` on the /device page in `browser`: the answer to the form.
pub async fn enter_code(app: &TestApp, browser: &Browser, user_code: &str) -> Response {
    let page = browser.get(&app.url("/device")).await;
    assert_eq!(page.status(), 200);
    let csrf = hidden(&page.text().await.unwrap(), "csrf_token");
    browser
        .post_form(
            &app.url("/device"),
            &[("user_code", user_code), ("csrf_token", &csrf)],
        )
        .await
}

/// Follows Sigil's pages from `r` — the login as alice, then the consent page, which must show
/// `user_code`, answered with `decision` — to the last page.
pub async fn sign_in_and_decide(
    app: &TestApp,
    browser: &Browser,
    mut r: Response,
    user_code: &str,
    decision: &str,
) -> Response {
    for _ in 0..8 {
        if r.status() != 303 {
            return r;
        }
        let to = location(&r);
        assert!(to.starts_with(&app.address), "leaves Sigil: {to}");
        r = if to.contains("/login?") {
            app.submit_login(browser, &to, "alice", PASSWORD).await
        } else if to.contains("/consent?") {
            let page = browser.get(&to).await;
            assert_eq!(page.status(), 200, "consent page");
            let html = page.text().await.unwrap();
            assert!(
                html.contains(&format!("<strong id=\"user-code\">{user_code}</strong>")),
                "the consent page shows the user code: {html}"
            );
            let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
            browser
                .post_form(
                    &app.url("/consent"),
                    &[
                        ("request", &request),
                        ("csrf_token", &csrf),
                        ("decision", decision),
                    ],
                )
                .await
        } else {
            browser.get(&to).await
        };
    }
    panic!("too many redirects");
}

/// The whole browser part: code typed, signed in, `decision` given; the last page's text.
pub async fn decide(app: &TestApp, device: &Value, decision: &str) -> String {
    let browser = Browser::new();
    let code = device["user_code"].as_str().unwrap();
    let r = enter_code(app, &browser, code).await;
    assert_eq!(r.status(), 303, "a right code leads on");
    let r = sign_in_and_decide(app, &browser, r, code, decision).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn rfc8628_3_1_a_client_not_registered_for_the_grant_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let web = app.web_client("web", json!({}));
    let r = authorize(&app, &web, "openid").await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    // Nor may it poll (RFC 6749 §5.2).
    let answer = poll(&app, &web, "anything").await;
    assert_eq!(error(&answer), (400, "unauthorized_client"));
    // A wrong secret or an unknown client: invalid_client (RFC 6749 §5.2).
    let (id, _) = device_client(&app, "tv", json!({}));
    let r = authorize(&app, &(id, "wrong".into()), "openid").await;
    assert_eq!(r.status(), 401);
    let r = authorize(&app, &("nobody".into(), "x".into()), "openid").await;
    assert_eq!(r.status(), 401);
    // Scopes beyond the registered ones: invalid_scope.
    let tv = device_client(&app, "tv2", json!({"scope": "openid"}));
    let r = authorize(&app, &tv, "openid email").await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
}

async fn rfc8628_3_2_the_response_and_the_user_code_format(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = app.discovery().await;
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{}/device_authorization", app.issuer())
    );
    assert!(doc["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(GRANT)));
    let tv = device_client(&app, "tv", json!({}));
    let r = authorize(&app, &tv, SCOPE).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let d: Value = r.json().await.unwrap();
    let device_code = d["device_code"].as_str().unwrap();
    assert_eq!(device_code.len(), 43, "256 bits, base64url");
    let user_code = d["user_code"].as_str().unwrap();
    let (a, b) = user_code.split_once('-').expect("XXXX-XXXX");
    assert_eq!((a.len(), b.len()), (4, 4), "{user_code}");
    assert!(
        (a.to_string() + b)
            .chars()
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    assert_eq!(d["verification_uri"], format!("{}/device", app.issuer()));
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", app.issuer())
    );
    assert_eq!(d["expires_in"], 600);
    assert_eq!(d["interval"], 5);
    // Neither code is stored as it is.
    let stored = stored_rows(&app);
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(device_code) && !stored[0].contains(&(a.to_string() + b)));
    assert!(!stored[0].contains(user_code));
    // Another request gets other codes.
    let e = started(&app, &tv).await;
    assert_ne!(e["device_code"], d["device_code"]);
    assert_ne!(e["user_code"], d["user_code"]);
    // Typed in lower case, without the dash, with spaces: the same code.
    let typed = format!(" {} {} ", a.to_lowercase(), b.to_lowercase());
    let r = enter_code(&app, &Browser::new(), &typed).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/login?"), "{}", location(&r));
}

/// Every stored device row, all columns joined as text.
fn stored_rows(app: &TestApp) -> Vec<String> {
    use diesel::prelude::*;
    use sigil::storage::schema::device_codes::dsl as d;
    app.state
        .db
        .with_conn(|c| {
            d::device_codes
                .select((d::device_code_hash, d::user_code_hash, d::scope, d::status))
                .load::<(String, String, String, String)>(c)
                .map_err(sigil::storage::StorageError::from)
        })
        .unwrap()
        .into_iter()
        .map(|(a, b, c, e)| format!("{a} {b} {c} {e}"))
        .collect()
}

async fn rfc8628_3_5_authorization_pending_until_the_user_decides(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(
        error(&poll(&app, &tv, code).await),
        (400, "authorization_pending")
    );
    // Signed in, the consent page shown but not answered: still pending.
    let browser = Browser::new();
    let r = enter_code(&app, &browser, d["user_code"].as_str().unwrap()).await;
    let login = location(&r);
    let r = app.submit_login(&browser, &login, "alice", PASSWORD).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        error(&poll_later(&app, &tv, &d).await),
        (400, "authorization_pending")
    );
}

async fn rfc8628_3_5_slow_down_when_polling_too_fast(backend: Backend) {
    let app = spawn_app(backend).await;
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let code = d["device_code"].as_str().unwrap();
    let clock = &app.state.clock;
    assert_eq!(
        error(&poll(&app, &tv, code).await),
        (400, "authorization_pending")
    );
    // At once again: slow_down, and the interval is now 10 s.
    assert_eq!(error(&poll(&app, &tv, code).await), (400, "slow_down"));
    clock.advance(9);
    assert_eq!(error(&poll(&app, &tv, code).await), (400, "slow_down"));
    // That too-fast poll counted, and raised the interval to 15 s.
    clock.advance(14);
    assert_eq!(error(&poll(&app, &tv, code).await), (400, "slow_down"));
    clock.advance(20);
    assert_eq!(
        error(&poll(&app, &tv, code).await),
        (400, "authorization_pending")
    );
    // Another device's interval is its own.
    let e = started(&app, &tv).await;
    let other = e["device_code"].as_str().unwrap();
    assert_eq!(
        error(&poll(&app, &tv, other).await),
        (400, "authorization_pending")
    );
    clock.advance(5);
    assert_eq!(
        error(&poll(&app, &tv, other).await),
        (400, "authorization_pending")
    );
}

async fn rfc8628_3_5_access_denied_when_the_user_denies(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let page = decide(&app, &d, "deny").await;
    assert!(page.contains("denied"), "{page}");
    assert_eq!(
        error(&poll_later(&app, &tv, &d).await),
        (400, "access_denied")
    );
    assert_eq!(
        error(&poll_later(&app, &tv, &d).await),
        (400, "access_denied")
    );
    // The code is decided: typing it again leads nowhere.
    let r = enter_code(&app, &Browser::new(), d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 400);
}

async fn rfc8628_3_5_expired_token_after_the_lifetime(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let code = d["device_code"].as_str().unwrap();
    app.state.clock.advance(601);
    assert_eq!(error(&poll(&app, &tv, code).await), (400, "expired_token"));
    let r = enter_code(&app, &Browser::new(), d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 400, "an expired user code is a wrong one");
    // Approved, but not redeemed in time: expired too.
    let e = started(&app, &tv).await;
    decide(&app, &e, "allow").await;
    app.state.clock.advance(601);
    let code = e["device_code"].as_str().unwrap();
    assert_eq!(error(&poll(&app, &tv, code).await), (400, "expired_token"));
}

async fn rfc8628_3_5_invalid_grant_for_an_unknown_or_another_clients_code(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let other = device_client(&app, "other", json!({}));
    let d = started(&app, &tv).await;
    decide(&app, &d, "allow").await;
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(
        error(&poll(&app, &other, code).await),
        (400, "invalid_grant")
    );
    assert_eq!(
        error(&poll(&app, &tv, "not-a-device-code").await),
        (400, "invalid_grant")
    );
    let r = app
        .token_basic(&tv.0, &tv.1, &[("grant_type", GRANT)])
        .await;
    assert_eq!(r.status(), 400, "device_code is required");
    // The other client's attempts changed nothing: the owner still gets its tokens.
    let answer = poll(&app, &tv, code).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
}

async fn rfc8628_3_3_approval_gives_tokens_with_an_id_token_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.add_user("alice");
    // Consent is asked even of a first-party client (the user must confirm the code).
    let tv = device_client(&app, "tv", json!({"skip_consent": true}));
    let d = started(&app, &tv).await;
    let page = decide(&app, &d, "allow").await;
    assert!(page.contains("Return to your device"), "{page}");
    let (status, tokens) = poll_later(&app, &tv, &d).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_parts(tokens["id_token"].as_str().unwrap()).1;
    assert_eq!(claims["sub"], alice["id"]);
    assert_eq!(claims["aud"], "tv");
    assert_eq!(claims["iss"], app.issuer());
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["amr"], json!(["pwd"]));
    let r = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    // offline_access was granted: a refresh token, which refreshes.
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token");
    let r = app
        .token_basic(
            &tv.0,
            &tv.1,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(r.status(), 200);
    // Once: the device code again is a replay (invalid_grant), and its grant is revoked.
    let again = poll_later(&app, &tv, &d).await;
    assert_eq!(error(&again), (400, "invalid_grant"));
    let r = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401, "the replay revoked the grant");
}

async fn rfc8628_3_3_the_second_factor_is_asked_like_at_any_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let totp = app.add_totp("alice");
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let code = d["user_code"].as_str().unwrap();
    let browser = Browser::new();
    let r = enter_code(&app, &browser, code).await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", PASSWORD)
        .await;
    let factor = second_step_url(&app, r).await;
    // Before the second factor nothing is approved.
    assert_eq!(
        error(&poll_later(&app, &tv, &d).await),
        (400, "authorization_pending")
    );
    let r = post_otp(
        &app,
        &browser,
        &factor,
        &totp_at(&totp, app.state.clock.now()),
    )
    .await;
    let r = sign_in_and_decide(&app, &browser, r, code, "allow").await;
    assert_eq!(r.status(), 200);
    let (status, tokens) = poll_later(&app, &tv, &d).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_parts(tokens["id_token"].as_str().unwrap()).1;
    assert_eq!(claims["acr"], "mfa");
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(amr.contains(&"otp") && amr.contains(&"mfa"), "{amr:?}");
}
