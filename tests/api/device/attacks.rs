//! SECURITY.md 34 and RFC 8628 §5 against the device grant: user-code guessing throttled like
//! passwords (one by one and all at once), the page's CSRF and origin checks, a pre-filled page
//! that approves nothing, one token response of many simultaneous polls, a device decided once,
//! and the caps on what unauthenticated requests can store.

use serde_json::{json, Value};

use super::{
    authorize, decide, device_client, enter_code, error, poll, poll_later, sign_in_and_decide,
    started, GRANT, SCOPE,
};
use crate::both_backends;
use crate::flow::{hidden, location, Browser, PASSWORD};
use crate::helpers::{form_encode, spawn_app, spawn_app_with, Backend};
use crate::instant;

both_backends!(
    rfc8628_3_3_a_prefilled_page_never_approves,
    rfc8628_3_3_the_code_form_needs_the_csrf_token_and_sigils_origin,
    rfc8628_5_1_wrong_user_codes_are_throttled_like_passwords,
    rfc8628_3_5_concurrent_polls_of_an_approved_code_give_one_token_response,
    rfc8628_5_2_pending_authorizations_are_capped,
    rfc8628_5_1_concurrent_guesses_check_at_most_max_failures_codes,
    rfc8628_3_3_a_device_is_decided_once,
);

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
    // Rows are ordered by their second of creation: the later two come a second after.
    app.state.clock.advance(1);
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
