//! The login page and IdP sessions: SSO, prompt / max_age / id_token_hint, and SECURITY.md
//! attacks 13–16 and 19–21.

use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, Backend, TestApp};

both_backends!(
    sso_a_second_client_skips_the_password,
    oidcc_prompt_none_without_session_is_login_required,
    oidcc_prompt_none_with_session_is_silent_and_consent_required_without_consent,
    oidcc_prompt_login_reauthenticates_and_auth_time_moves,
    oidcc_max_age_forces_a_new_login_when_exceeded,
    oidcc_id_token_hint_with_prompt_none_is_silent,
    attack13_csrf_missing_foreign_or_cross_origin_is_403_and_creates_nothing,
    attack14_login_and_consent_pages_forbid_framing,
    attack15_session_fixation_a_new_id_at_login,
    attack16_login_post_answers_303,
    attack19_unknown_user_and_wrong_password_answer_alike,
    attack20_brute_force_is_refused_with_429_until_the_window_passes,
    attack21_user_controlled_text_is_escaped,
    disabled_users_and_logout_everywhere_end_sessions,
);

async fn setup(backend: Backend) -> (TestApp, String, String) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.add_user("alice");
    (app, id, secret)
}

async fn id_token_for(app: &TestApp, id: &str, secret: &str, code: &str) -> Value {
    let r = app.exchange(id, secret, code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    jwt_parts(body["id_token"].as_str().unwrap()).1
}

async fn sso_a_second_client_skips_the_password(backend: Backend) {
    let (app, a, _) = setup(backend).await;
    let (b, _) = app.web_client("b", json!({"skip_consent": true}));
    let browser = Browser::new();
    app.code_for(&browser, &a, &[]).await;
    // Client B, same browser: straight back with a code, no login page, no consent page.
    let r = app.start(&browser, &b, &[]).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert!(query(&to).contains_key("code"));
    // Another browser has no session.
    let r = app.start(&Browser::new(), &b, &[]).await;
    assert!(location(&r).contains("/login?"));
}

async fn oidcc_prompt_none_without_session_is_login_required(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    let r = app.start(&Browser::new(), &id, &[("prompt", "none")]).await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], app.issuer());
}

async fn oidcc_prompt_none_with_session_is_silent_and_consent_required_without_consent(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let first = app.code_for(&browser, &id, &[]).await;
    let sub = id_token_for(&app, &id, &secret, &first).await["sub"].clone();
    let r = app.start(&browser, &id, &[("prompt", "none")]).await;
    let q = query(&location(&r));
    let again = id_token_for(&app, &id, &secret, &q["code"]).await;
    assert_eq!(again["sub"], sub);
    // Another client this user never consented to.
    let (other, _) = app.web_client("other", json!({}));
    let r = app.start(&browser, &other, &[("prompt", "none")]).await;
    assert_eq!(query(&location(&r))["error"], "consent_required");
}

async fn oidcc_prompt_login_reauthenticates_and_auth_time_moves(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let code = app.code_for(&browser, &id, &[]).await;
    let before = id_token_for(&app, &id, &secret, &code).await["auth_time"]
        .as_i64()
        .unwrap();
    app.state.clock.advance(5);
    let r = app.start(&browser, &id, &[("prompt", "login")]).await;
    assert!(
        location(&r).contains("/login?"),
        "prompt=login shows the login page despite the session"
    );
    let code = app.code_for(&browser, &id, &[("prompt", "login")]).await;
    let after = id_token_for(&app, &id, &secret, &code).await["auth_time"]
        .as_i64()
        .unwrap();
    assert!(after >= before + 5, "{before} → {after}");
}

async fn oidcc_max_age_forces_a_new_login_when_exceeded(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    app.code_for(&browser, &id, &[]).await;
    // max_age=10000 → no prompt.
    let r = app.start(&browser, &id, &[("max_age", "10000")]).await;
    assert!(location(&r).starts_with(REDIRECT));
    // max_age=1 after 2 s → login again, and auth_time present and later.
    app.state.clock.advance(2);
    let r = app.start(&browser, &id, &[("max_age", "1")]).await;
    assert!(location(&r).contains("/login?"));
    let code = app.code_for(&browser, &id, &[("max_age", "1")]).await;
    let claims = id_token_for(&app, &id, &secret, &code).await;
    assert!(claims["auth_time"].as_i64().is_some());
    let r = app.start(&browser, &id, &[("max_age", "-1")]).await;
    assert_eq!(query(&location(&r))["error"], "invalid_request");
}

async fn oidcc_id_token_hint_with_prompt_none_is_silent(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let code = app.code_for(&browser, &id, &[]).await;
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    let body: Value = r.json().await.unwrap();
    let hint = body["id_token"].as_str().unwrap();
    let sub = jwt_parts(hint).1["sub"].clone();
    let r = app
        .start(
            &browser,
            &id,
            &[("prompt", "none"), ("id_token_hint", hint)],
        )
        .await;
    let q = query(&location(&r));
    assert_eq!(
        id_token_for(&app, &id, &secret, &q["code"]).await["sub"],
        sub
    );
    // An access token, a forged token or garbage is not a hint.
    let at = body["access_token"].as_str().unwrap();
    let (h, _) = hint.split_once('.').unwrap();
    let none_alg = format!(
        "{}.{}.",
        base64_json(&json!({"alg": "none"})),
        hint.split('.').nth(1).unwrap()
    );
    for bad in [at.to_string(), format!("{h}.e30.AAAA"), none_alg] {
        let r = app
            .start(
                &browser,
                &id,
                &[("prompt", "none"), ("id_token_hint", &bad)],
            )
            .await;
        assert_eq!(query(&location(&r))["error"], "invalid_request");
    }
    // An oversized hint (by POST: too long for a URL) is refused before anything reads it:
    // the body is over http.max_body_bytes.
    let authorize = app.endpoint("authorization_endpoint").await;
    let huge = "x".repeat(70_000);
    let r = browser
        .post_form(
            &authorize,
            &[
                ("client_id", &id),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", crate::flow::CHALLENGE),
                ("code_challenge_method", "S256"),
                ("prompt", "none"),
                ("id_token_hint", &huge),
            ],
        )
        .await;
    assert_eq!(r.status(), 413);
    assert!(r.headers().get("location").is_none());
}

fn base64_json(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The login page's hidden fields, for a fresh authorization request in `browser`.
async fn login_form(app: &TestApp, browser: &Browser, id: &str) -> (String, String, String) {
    let r = app.start(browser, id, &[]).await;
    let login_url = location(&r);
    let html = browser.get(&login_url).await.text().await.unwrap();
    (
        login_url,
        hidden(&html, "request"),
        hidden(&html, "csrf_token"),
    )
}

async fn session_count(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use sigil::storage::schema::sessions::dsl;
    app.state
        .db
        .run(|c| -> Result<i64, sigil::storage::StorageError> {
            Ok(dsl::sessions.count().get_result(c)?)
        })
        .await
        .unwrap()
}

async fn attack13_csrf_missing_foreign_or_cross_origin_is_403_and_creates_nothing(
    backend: Backend,
) {
    let (app, id, _) = setup(backend).await;
    let victim = Browser::new();
    let attacker = Browser::new();
    let (_, request, csrf) = login_form(&app, &victim, &id).await;
    let (_, _, attacker_csrf) = login_form(&app, &attacker, &id).await;
    let login = app.url("/login");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("request", &request),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            None,
        ),
        (
            vec![
                ("request", &request),
                ("csrf_token", &attacker_csrf),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            None,
        ),
        (
            vec![
                ("request", &request),
                ("csrf_token", &csrf),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            Some("https://evil.example"),
        ),
    ];
    for (form, origin) in cases {
        let mut req = victim.http.post(&login).form(&form);
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("location").is_none());
    }
    // A cross-site form (Fetch Metadata), even carrying the right token.
    let r = victim
        .http
        .post(&login)
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(session_count(&app).await, 0, "no session was created");
    // The same form as a browser sends it from Sigil's page (no-referrer makes Origin null)
    // works.
    let r = victim
        .http
        .post(&login)
        .header("Origin", "null")
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(session_count(&app).await, 1);

    // Consent: without the token, or with the attacker's, nothing is granted.
    let r = victim.get(&location(&r)).await;
    let consent_url = location(&r);
    let html = victim.get(&consent_url).await.text().await.unwrap();
    let request = hidden(&html, "request");
    for token in ["", attacker_csrf.as_str()] {
        let r = victim
            .post_form(
                &app.url("/consent"),
                &[
                    ("request", &request),
                    ("csrf_token", token),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(r.status(), 403);
    }
    let r = app.start(&victim, &id, &[]).await;
    assert!(
        location(&r).contains("/consent?"),
        "no consent was recorded"
    );
}

async fn attack14_login_and_consent_pages_forbid_framing(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    let browser = Browser::new();
    let (login_url, _, _) = login_form(&app, &browser, &id).await;
    let r = browser.get(&login_url).await;
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.headers()[h], v);
    }
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline")
            && csp.contains("default-src 'none'")
    );
    // Browsers apply form-action to the redirects after the POST, which end at the client.
    assert!(
        csp.contains("form-action 'self' https://rp.example;"),
        "{csp}"
    );
    let r = app
        .submit_login(&browser, &login_url, "alice", PASSWORD)
        .await;
    let r = browser.get(&location(&r)).await;
    let r = browser.get(&location(&r)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sigil_session="))
        .map(str::to_string)
}

async fn attack15_session_fixation_a_new_id_at_login(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    let browser = Browser::new();
    let (login_url, _, _) = login_form(&app, &browser, &id).await;
    let r = app
        .submit_login(&browser, &login_url, "alice", PASSWORD)
        .await;
    let first = session_cookie(&r).expect("a session cookie");
    assert!(
        first.contains("HttpOnly") && first.contains("SameSite=Lax") && first.contains("Path=/"),
        "{first}"
    );
    // Signing in again (prompt=login) gives a new id, and the old one is no longer signed in.
    let old_value = first.split(';').next().unwrap().to_string();
    let r = app.start(&browser, &id, &[("prompt", "login")]).await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", PASSWORD)
        .await;
    let second = session_cookie(&r).expect("a new session cookie");
    assert_ne!(second.split(';').next().unwrap(), old_value);
    let url = app
        .authorize_url(&[
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("prompt", "none"),
            ("code_challenge", crate::flow::CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .await;
    let r = app
        .http
        .get(url)
        .header("Cookie", &old_value)
        .send()
        .await
        .unwrap();
    assert_eq!(
        query(&location(&r))["error"],
        "login_required",
        "the old session id is dead"
    );
}

async fn attack16_login_post_answers_303(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    let browser = Browser::new();
    let (login_url, _, _) = login_form(&app, &browser, &id).await;
    let r = app
        .submit_login(&browser, &login_url, "alice", PASSWORD)
        .await;
    assert_eq!(r.status(), 303);
}

async fn attack19_unknown_user_and_wrong_password_answer_alike(backend: Backend) {
    let (app, id, _) = setup(backend).await;
    let mut answers = Vec::new();
    for (user, password) in [("alice", "wrong password"), ("nobody", "wrong password")] {
        let browser = Browser::new();
        let (login_url, _, _) = login_form(&app, &browser, &id).await;
        let r = app.submit_login(&browser, &login_url, user, password).await;
        assert_eq!(r.status(), 401);
        assert!(session_cookie(&r).is_none());
        let html = r.text().await.unwrap();
        assert!(html.contains("Incorrect username or password."));
        answers.push(
            html.replace(user, "USER")
                .replace(&hidden(&html, "request"), "R")
                .replace(&hidden(&html, "csrf_token"), "C"),
        );
    }
    assert_eq!(answers[0], answers[1]);
    // A disabled account answers the same too.
    assert!(app
        .sigil(&["user", "disable", "alice"], None)
        .status
        .success());
    let browser = Browser::new();
    let (login_url, _, _) = login_form(&app, &browser, &id).await;
    let r = app
        .submit_login(&browser, &login_url, "alice", PASSWORD)
        .await;
    assert_eq!(r.status(), 401);
}

async fn attack20_brute_force_is_refused_with_429_until_the_window_passes(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.login.max_failures = 3).await;
    let (id, _) = app.web_client("rp", json!({}));
    app.add_user("alice");
    app.add_user("bob");
    let browser = Browser::new();
    for _ in 0..3 {
        let (login_url, _, _) = login_form(&app, &browser, &id).await;
        assert_eq!(
            app.submit_login(&browser, &login_url, "alice", "nope")
                .await
                .status(),
            401
        );
    }
    // Locked: the right password too.
    let (login_url, _, _) = login_form(&app, &browser, &id).await;
    let r = app
        .submit_login(&browser, &login_url, "alice", PASSWORD)
        .await;
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // The same address is locked for other accounts too.
    let r = app
        .submit_login(&browser, &login_url, "bob", PASSWORD)
        .await;
    assert_eq!(r.status(), 429);
    // After the window the right password works again.
    app.state.clock.advance(retry + 1);
    let (login_url, _, _) = login_form(&app, &browser, &id).await;
    assert_eq!(
        app.submit_login(&browser, &login_url, "alice", PASSWORD)
            .await
            .status(),
        303
    );
}

async fn attack21_user_controlled_text_is_escaped(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = app.web_client("xss", json!({"client_name": "<script>alert(1)</script>"}));
    app.add_user("alice");
    let browser = Browser::new();
    let (login_url, _, _) = login_form(&app, &browser, &id).await;
    let html = browser.get(&login_url).await.text().await.unwrap();
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "client name unescaped"
    );
    assert!(
        html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
        "client name missing"
    );
    let r = app
        .submit_login(&browser, &login_url, "\"><script>x()</script>", "pw")
        .await;
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>x()</script>"));
    let r = app
        .start(
            &browser,
            &id,
            &[("state", "<script>s</script>"), ("response_type", "bogus")],
        )
        .await;
    let q = query(&location(&r));
    assert_eq!(
        q["state"], "<script>s</script>",
        "state travels URL-encoded, unchanged"
    );
}

async fn disabled_users_and_logout_everywhere_end_sessions(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    // Each of these ends the session and the refresh tokens issued before it.
    for command in [
        vec!["user", "logout-everywhere", "alice"],
        vec!["user", "passwd", "alice", "--password-stdin"],
        vec!["user", "disable", "alice"],
    ] {
        let browser = Browser::new();
        let code = app
            .code_for(&browser, &id, &[("scope", "openid offline_access")])
            .await;
        let tokens: Value = app
            .exchange(&id, &secret, &code, Some(VERIFIER))
            .await
            .json()
            .await
            .unwrap();
        let out = app.sigil(&command, Some(PASSWORD));
        assert!(
            out.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = app.start(&browser, &id, &[("prompt", "none")]).await;
        assert_eq!(
            query(&location(&r))["error"],
            "login_required",
            "{command:?}"
        );
        let at = tokens["access_token"].as_str().unwrap();
        assert_eq!(app.userinfo(at).await.status(), 401, "{command:?}");
        let refresh = app
            .token_basic(
                &id,
                &secret,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ],
            )
            .await;
        assert_eq!(refresh.status(), 400, "{command:?}");
        // Sign-ins a second later work again (for the disabled user: once enabled).
        assert!(app
            .sigil(&["user", "enable", "alice"], None)
            .status
            .success());
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
}
