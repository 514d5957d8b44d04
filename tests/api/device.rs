//! The device authorization grant (RFC 8628; SECURITY.md 34): the device authorization
//! endpoint, the `/device` page through Sigil's own sign-in and consent, and polling the token
//! endpoint, with the error of every case the RFC names, the bounds on what unauthenticated
//! requests can store, throttled user-code guessing and a single-use device code.

use reqwest::Response;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, Browser, PASSWORD};
use crate::helpers::{form_encode, jwt_parts, spawn_app, spawn_app_with, Backend, TestApp};
use crate::instant;
use crate::second_factors::{post_otp, second_step_url, totp_at};

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
    rfc8628_3_3_a_prefilled_page_never_approves,
    rfc8628_3_3_the_code_form_needs_the_csrf_token_and_sigils_origin,
    rfc8628_5_1_wrong_user_codes_are_throttled_like_passwords,
    rfc8628_3_5_concurrent_polls_of_an_approved_code_give_one_token_response,
    rfc8628_5_2_pending_authorizations_are_capped,
    rfc8628_5_1_concurrent_guesses_check_at_most_max_failures_codes,
    rfc8628_3_3_a_device_is_decided_once,
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

async fn rfc8628_3_3_a_prefilled_page_never_approves(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let user_code = d["user_code"].as_str().unwrap();
    // A browser already signed in (and consented before) opens the complete URI.
    let browser = Browser::new();
    let e = started(&app, &tv).await;
    let r = enter_code(&app, &browser, e["user_code"].as_str().unwrap()).await;
    sign_in_and_decide(&app, &browser, r, e["user_code"].as_str().unwrap(), "allow").await;
    let complete = d["verification_uri_complete"].as_str().unwrap();
    let path = complete.strip_prefix(&app.issuer()).unwrap();
    let r = browser.get(&app.url(path)).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("name=\"user_code\" value=\"{user_code}\"")),
        "{html}"
    );
    assert!(html.contains("name=\"csrf_token\""));
    assert_eq!(
        error(&poll_later(&app, &tv, &d).await),
        (400, "authorization_pending")
    );
    // Markup in the query is escaped, never rendered.
    let r = browser
        .get(&app.url("/device?user_code=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"))
        .await;
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
}

async fn rfc8628_3_3_the_code_form_needs_the_csrf_token_and_sigils_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let code = d["user_code"].as_str().unwrap();
    let browser = Browser::new();
    let page = browser.get(&app.url("/device")).await;
    let csrf = hidden(&page.text().await.unwrap(), "csrf_token");
    let url = app.url("/device");
    // No token; another browser's token; a foreign origin; a cross-site fetch.
    let r = browser.post_form(&url, &[("user_code", code)]).await;
    assert_eq!(r.status(), 403);
    let other = Browser::new();
    let other_page = other.get(&url).await;
    let other_csrf = hidden(&other_page.text().await.unwrap(), "csrf_token");
    let r = browser
        .post_form(&url, &[("user_code", code), ("csrf_token", &other_csrf)])
        .await;
    assert_eq!(r.status(), 403);
    for (name, value) in [
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let r = browser
            .http
            .post(&url)
            .header(name, value)
            .form(&[("user_code", code), ("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
    }
    // None of these counted as a guess, parked anything, or approved.
    assert_eq!(
        error(&poll_later(&app, &tv, &d).await),
        (400, "authorization_pending")
    );
    let r = browser
        .post_form(&url, &[("user_code", code), ("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status(), 303);
}

async fn rfc8628_5_1_wrong_user_codes_are_throttled_like_passwords(backend: Backend) {
    // A window shorter than a user code's life, to see the limit end.
    let app = spawn_app_with(backend, |s| {
        s.login.window = sigil::config::DurationSetting::from_secs(120)
    })
    .await;
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let browser = Browser::new();
    // login.max_failures (5) wrong codes, well-formed or not, from one address: refused.
    for wrong in ["BCDF-GHJK", "zzzz-zzzz", "not a code", "", "BCDF-GHJL"] {
        let r = enter_code(&app, &browser, wrong).await;
        assert_eq!(r.status(), 400, "{wrong:?}");
        let html = r.text().await.unwrap();
        assert!(html.contains("not valid"), "{html}");
    }
    // Then 429 with Retry-After, whatever the code — the right one too.
    for code in ["BCDF-GHJM", d["user_code"].as_str().unwrap()] {
        let r = enter_code(&app, &browser, code).await;
        assert_eq!(r.status(), 429, "{code}");
        let wait: i64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait > 0);
    }
    // The limit is the address's: a password from there is refused too.
    let web = app.web_client("web", json!({}));
    let r = app.start(&browser, &web.0, &[]).await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", "guess")
        .await;
    assert_eq!(r.status(), 429);
    // After the window the right code works.
    app.state
        .clock
        .advance(app.settings.login.window.as_secs() as i64 + 1);
    let r = enter_code(&app, &browser, d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 303);
}

async fn rfc8628_3_5_concurrent_polls_of_an_approved_code_give_one_token_response(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let token_url = app.endpoint("token_endpoint").await;
    let addr = app.address.strip_prefix("http://").unwrap().to_string();
    let basic = {
        use base64::Engine;
        let raw = format!("{}:{}", form_encode(&tv.0), form_encode(&tv.1));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    for round in 0..3 {
        let d = started(&app, &tv).await;
        decide(&app, &d, "allow").await;
        app.state.clock.advance(5);
        let code = d["device_code"].as_str().unwrap();
        let requests = (0..30)
            .map(|_| {
                instant::form_post(
                    &token_url,
                    None,
                    &[("grant_type", GRANT), ("device_code", code)],
                    &[("Authorization", &basic)],
                )
            })
            .collect();
        let answers = instant::fire(&addr, requests).await;
        let ok: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
        assert_eq!(
            ok.len(),
            1,
            "round {round}: {:?}",
            instant::by_status(&answers)
        );
        for a in answers.iter().filter(|a| a.status != 200) {
            assert_eq!(a.status, 400, "round {round}: {}", a.body);
            let body: Value = serde_json::from_str(&a.body).unwrap();
            let e = body["error"].as_str().unwrap();
            assert!(matches!(e, "slow_down" | "invalid_grant"), "{e}");
        }
        let tokens: Value = serde_json::from_str(&ok[0].body).unwrap();
        assert!(tokens["id_token"].is_string());
    }
}

async fn rfc8628_5_2_pending_authorizations_are_capped(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.device.max_pending_per_client = 3;
        s.device.max_pending = 5;
        s.device.max_pending_per_address = 2;
    })
    .await;
    // Per client: the fourth live authorization is refused with 503 and Retry-After.
    let tv = device_client(&app, "tv", json!({}));
    for _ in 0..3 {
        started(&app, &tv).await;
    }
    let r = authorize(&app, &tv, SCOPE).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // In all: two more for another client, then nothing for anyone.
    let radio = device_client(&app, "radio", json!({}));
    started(&app, &radio).await;
    started(&app, &radio).await;
    assert_eq!(authorize(&app, &radio, SCOPE).await.status(), 503);
    // Expired ones count no more.
    app.state.clock.advance(601);
    let first = started(&app, &radio).await;
    // A public client: from one address, the oldest beyond two give way.
    let public = device_client(&app, "cli", json!({"token_endpoint_auth_method": "none"}));
    let oldest = started(&app, &public).await;
    started(&app, &public).await;
    started(&app, &public).await;
    let gone = poll(&app, &public, oldest["device_code"].as_str().unwrap()).await;
    assert_eq!(error(&gone), (400, "invalid_grant"));
    let kept = poll(&app, &radio, first["device_code"].as_str().unwrap()).await;
    assert_eq!(error(&kept), (400, "authorization_pending"));
}

async fn rfc8628_5_1_concurrent_guesses_check_at_most_max_failures_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let tv = device_client(&app, "tv", json!({}));
    started(&app, &tv).await;
    // One browser's CSRF cookie and token, then 30 guesses released at the same instant.
    let page = app.http.get(app.url("/device")).send().await.unwrap();
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("sigil_csrf="), "{cookie}");
    let csrf = hidden(&page.text().await.unwrap(), "csrf_token");
    let url = app.url("/device");
    let guesses: Vec<String> = (0..30)
        .map(|i| {
            let letters = b"BCDFGHJKLMNPQRSTVWXZ";
            let (a, b) = (letters[i % 20] as char, letters[i / 20] as char);
            format!("{a}{b}{a}{b}-{b}{a}{b}{a}")
        })
        .collect();
    let requests = guesses
        .iter()
        .map(|g| {
            instant::form_post(
                &url,
                Some(&cookie),
                &[("user_code", g.as_str()), ("csrf_token", csrf.as_str())],
                &[],
            )
        })
        .collect();
    let answers = instant::fire(app.address.strip_prefix("http://").unwrap(), requests).await;
    let by_status = instant::by_status(&answers);
    let max = app.settings.login.max_failures as usize;
    assert_eq!(
        by_status,
        std::collections::BTreeMap::from([(400, max), (429, 30 - max)]),
        "at most login.max_failures codes were looked up"
    );
}

async fn rfc8628_3_3_a_device_is_decided_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let tv = device_client(&app, "tv", json!({}));
    let d = started(&app, &tv).await;
    let code = d["user_code"].as_str().unwrap();
    // Two browsers enter the same code; each signs in and reaches the consent page.
    let (first, second) = (Browser::new(), Browser::new());
    let mut at_consent = Vec::new();
    for browser in [&first, &second] {
        let mut r = enter_code(&app, browser, code).await;
        while !location(&r).contains("/consent?") {
            let to = location(&r);
            r = if to.contains("/login?") {
                app.submit_login(browser, &to, "alice", PASSWORD).await
            } else {
                browser.get(&to).await
            };
        }
        at_consent.push(r);
    }
    let second_r = at_consent.pop().unwrap();
    let first_r = at_consent.pop().unwrap();
    let r = sign_in_and_decide(&app, &first, first_r, code, "allow").await;
    assert_eq!(r.status(), 200);
    // The other browser's answer comes too late, allow or deny: it changes nothing.
    let r = sign_in_and_decide(&app, &second, second_r, code, "deny").await;
    assert_eq!(r.status(), 400);
    let (status, tokens) = poll_later(&app, &tv, &d).await;
    assert_eq!(status, 200, "{tokens}");
}
