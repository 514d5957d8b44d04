//! RP-initiated logout (OIDC RP-Initiated Logout 1.0): the conformance lines of SECURITY.md,
//! the confirmation page's CSRF protection (attack 13), framing (attack 14) and the dead cookie
//! after logout (attack 15). Back-channel logout is in `backchannel.rs`.

use base64::Engine;
use reqwest::Response;
use serde_json::{json, Value};
use url::Url;

use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, Backend, TestApp};

both_backends!(
    discovery_advertises_end_session_and_backchannel_logout,
    oidcc_rp_logout_valid_hint_redirects_with_state_then_prompt_none_is_login_required,
    oidcc_rp_logout_without_a_valid_hint_or_registered_uri_shows_confirmation_no_redirect,
    oidcc_rp_logout_expired_hint_is_accepted,
    rp_logout_hint_of_another_user_asks_first,
    rp_logout_a_hint_alone_never_ends_a_session,
    rp_logout_confirmation_with_csrf_signs_out_without_redirect,
    attack13_logout_confirmation_without_csrf_with_another_sessions_token_or_foreign_origin_is_403,
    attack14_logout_pages_send_the_security_headers,
    attack15_after_logout_the_cookie_is_dead,
    logout_revokes_the_sessions_grants_but_offline_access_survives,
);

/// Registered for the client "rp": a query the redirect must keep.
const BYE: &str = "https://rp.example/bye?from=sigil";

async fn setup(backend: Backend) -> (TestApp, String, String) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({ "post_logout_redirect_uris": [BYE] }));
    app.add_user("alice");
    (app, id, secret)
}

/// Signs `username` in at `client_id` in `browser`; returns the token response.
pub async fn sign_in(
    app: &TestApp,
    browser: &Browser,
    client_id: &str,
    secret: &str,
    username: &str,
    extra: &[(&str, &str)],
) -> Value {
    let r = app.start(browser, client_id, extra).await;
    let r = app.drive(browser, r, username).await;
    let code = query(&location(&r))
        .remove("code")
        .expect("a code for the client");
    let r = app.exchange(client_id, secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

pub fn id_token(tokens: &Value) -> String {
    tokens["id_token"]
        .as_str()
        .expect("an ID token")
        .to_string()
}

/// `prompt=none` at `client_id`: true when it silently gives a code.
pub async fn signed_in(app: &TestApp, browser: &Browser, client_id: &str) -> bool {
    let r = app.start(browser, client_id, &[("prompt", "none")]).await;
    let q = query(&location(&r));
    match q.get("error").map(String::as_str) {
        None => q.contains_key("code"),
        Some("login_required") => false,
        Some(other) => panic!("prompt=none answered {other}"),
    }
}

pub async fn end_session_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&app.endpoint("end_session_endpoint").await).unwrap();
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    url.to_string()
}

/// The confirmation page: no redirect, a form with the CSRF token and the `logout` button.
async fn assert_confirmation(r: Response, case: &str) -> String {
    assert_eq!(r.status(), 200, "{case}");
    assert!(r.headers().get("location").is_none(), "{case}: no redirect");
    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"name="logout""#),
        "{case}: confirmation page:\n{html}"
    );
    hidden(&html, "csrf_token")
}

pub async fn assert_signed_out_page(r: Response, case: &str) {
    assert_eq!(r.status(), 200, "{case}");
    assert!(r.headers().get("location").is_none(), "{case}: no redirect");
    let html = r.text().await.unwrap();
    assert!(html.contains("You are signed out"), "{case}:\n{html}");
    assert!(!html.contains(r#"name="logout""#), "{case}");
}

/// The confirmation form as a browser posts it from Sigil's page.
async fn post_confirmation(app: &TestApp, browser: &Browser, csrf: &str) -> Response {
    browser
        .http
        .post(end_session_url(app, &[]).await)
        .header("Origin", "null")
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[("csrf_token", csrf), ("logout", "yes")])
        .send()
        .await
        .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `token`'s claims under a new header and signature.
fn resigned(token: &str, header: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let input = format!("{}.{payload}", b64(header.to_string().as_bytes()));
    let signature = b64(&sign(input.as_bytes()));
    format!("{input}.{signature}")
}

async fn discovery_advertises_end_session_and_backchannel_logout(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = app.discovery().await;
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{}/logout", app.issuer())
    );
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    assert!(doc["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("sid")));
}

async fn oidcc_rp_logout_valid_hint_redirects_with_state_then_prompt_none_is_login_required(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let tokens = sign_in(&app, &browser, &id, &secret, "alice", &[]).await;
    assert!(signed_in(&app, &browser, &id).await);
    // A resource server asks about the access token: active, and now cached on this node.
    let (probe, probe_secret) = app.cc_client("probe");
    let introspect = |token: String| {
        let (app, probe, probe_secret) = (&app, probe.clone(), probe_secret.clone());
        async move {
            let answer: serde_json::Value = app
                .http
                .post(app.endpoint("introspection_endpoint").await)
                .basic_auth(probe, Some(probe_secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["active"] == true
        }
    };
    let at = tokens["access_token"].as_str().unwrap().to_string();
    assert!(introspect(at.clone()).await);
    let url = end_session_url(
        &app,
        &[
            ("id_token_hint", &id_token(&tokens)),
            ("post_logout_redirect_uri", BYE),
            ("state", "s t&1"),
            ("ui_locales", "fr"),
            ("logout_hint", "alice"),
        ],
    )
    .await;
    let r = browser.get(&url).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        "https://rp.example/bye?from=sigil&state=s+t%261"
    );
    let cleared = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("sigil_session=;") && c.contains("Max-Age=0"));
    assert!(cleared, "the session cookie is cleared");
    assert!(!signed_in(&app, &browser, &id).await, "login_required");
    // The session's grant ended with it, at UserInfo and (cached answer dropped) at once at
    // introspection.
    assert_eq!(app.userinfo(&at).await.status(), 401);
    assert!(!introspect(at.clone()).await);

    // §2: the same request by POST, naming the client.
    let browser = Browser::new();
    let tokens = sign_in(&app, &browser, &id, &secret, "alice", &[]).await;
    let r = browser
        .post_form(
            &end_session_url(&app, &[]).await,
            &[
                ("id_token_hint", &id_token(&tokens)),
                ("client_id", &id),
                ("post_logout_redirect_uri", BYE),
                ("state", "st-2"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{BYE}&state=st-2"));
    assert!(!signed_in(&app, &browser, &id).await);

    // A valid hint without a redirect URI: signed out, shown the page.
    let browser = Browser::new();
    let tokens = sign_in(&app, &browser, &id, &secret, "alice", &[]).await;
    let url = end_session_url(&app, &[("id_token_hint", &id_token(&tokens))]).await;
    assert_signed_out_page(browser.get(&url).await, "hint alone").await;
    assert!(!signed_in(&app, &browser, &id).await);
}

async fn oidcc_rp_logout_without_a_valid_hint_or_registered_uri_shows_confirmation_no_redirect(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    app.web_client(
        "other",
        json!({ "post_logout_redirect_uris": ["https://other.example/bye"] }),
    );
    let browser = Browser::new();
    let tokens = sign_in(&app, &browser, &id, &secret, "alice", &[]).await;
    let hint = id_token(&tokens);
    let (header, _) = jwt_parts(&hint);
    let kid = header["kid"].as_str().unwrap().to_string();
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes()),
        hint.split('.').nth(1).unwrap()
    );
    let foreign = {
        let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap();
        let signer = josekit::jws::RS256
            .signer_from_der(pair.to_der_private_key())
            .unwrap();
        resigned(
            &hint,
            json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
            |input| josekit::jws::JwsSigner::sign(&signer, input).unwrap(),
        )
    };
    // RS/HS confusion: HMAC keyed with Sigil's published key.
    let jwks = app.jwks().await;
    let public = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .to_string();
    let hs256 = {
        let signer = josekit::jws::HS256
            .signer_from_bytes(public.as_bytes())
            .unwrap();
        resigned(
            &hint,
            json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
            |input| josekit::jws::JwsSigner::sign(&signer, input).unwrap(),
        )
    };
    let access_token = tokens["access_token"].as_str().unwrap().to_string();
    let appended = format!("{BYE}&x=1");
    let extended = format!("{BYE}x");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "unregistered post_logout_redirect_uri",
            vec![
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", "https://evil.example/bye"),
            ],
        ),
        (
            "another client's registered URI",
            vec![
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", "https://other.example/bye"),
            ],
        ),
        (
            "query appended",
            vec![
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", &appended),
            ],
        ),
        (
            "text appended",
            vec![
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", &extended),
            ],
        ),
        (
            "alg none",
            vec![
                ("id_token_hint", &alg_none),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
        (
            "foreign-signed",
            vec![
                ("id_token_hint", &foreign),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
        (
            "HS256 with the public key",
            vec![("id_token_hint", &hs256), ("post_logout_redirect_uri", BYE)],
        ),
        (
            "an access token",
            vec![
                ("id_token_hint", &access_token),
                ("post_logout_redirect_uri", BYE),
            ],
        ),
        (
            "client_id not in the hint's aud",
            vec![
                ("id_token_hint", &hint),
                ("client_id", "other"),
                ("post_logout_redirect_uri", "https://other.example/bye"),
            ],
        ),
        (
            "no hint",
            vec![
                ("client_id", &id),
                ("post_logout_redirect_uri", BYE),
                ("state", "x"),
            ],
        ),
        ("nothing at all", vec![]),
    ];
    for (case, params) in &cases {
        let r = browser.get(&end_session_url(&app, params).await).await;
        assert_confirmation(r, case).await;
        if !params.is_empty() {
            let r = browser
                .post_form(&end_session_url(&app, &[]).await, params)
                .await;
            assert_confirmation(r, &format!("{case} (POST)")).await;
        }
        assert!(
            signed_in(&app, &browser, &id).await,
            "{case}: still signed in"
        );
    }
}

async fn oidcc_rp_logout_expired_hint_is_accepted(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let hint = id_token(&sign_in(&app, &browser, &id, &secret, "alice", &[]).await);
    // Two hours on: the ID token (1 h) has expired, the session (8 h idle) has not.
    app.state.clock.advance(2 * 3600);
    let exp = jwt_parts(&hint).1["exp"].as_i64().unwrap();
    assert!(exp < app.state.clock.now());
    assert!(signed_in(&app, &browser, &id).await);
    let url = end_session_url(
        &app,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", BYE),
            ("state", "late"),
        ],
    )
    .await;
    let r = browser.get(&url).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{BYE}&state=late"));
    assert!(!signed_in(&app, &browser, &id).await);
}

async fn rp_logout_hint_of_another_user_asks_first(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    app.add_user("bob");
    let (alice, bob) = (Browser::new(), Browser::new());
    sign_in(&app, &alice, &id, &secret, "alice", &[]).await;
    let bobs = id_token(&sign_in(&app, &bob, &id, &secret, "bob", &[]).await);
    // Bob's ID token in Alice's browser: Alice is asked; nobody is signed out.
    let url = end_session_url(
        &app,
        &[("id_token_hint", &bobs), ("post_logout_redirect_uri", BYE)],
    )
    .await;
    let r = alice.get(&url).await;
    assert_confirmation(r, "another user's hint").await;
    assert!(signed_in(&app, &alice, &id).await);
    assert!(signed_in(&app, &bob, &id).await);
}

async fn rp_logout_a_hint_alone_never_ends_a_session(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let hint = id_token(&sign_in(&app, &browser, &id, &secret, "alice", &[]).await);
    let url = end_session_url(
        &app,
        &[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)],
    )
    .await;
    // The hint's `sid` names the browser's session, but the request comes without its cookie
    // (anyone who ever saw the ID token): sent on to the registered URI, nothing ends.
    let r = app.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), BYE);
    assert!(signed_in(&app, &browser, &id).await);
    // Another browser of the same user, with its own session: the hint is not for it, so it is
    // asked, and neither session ends.
    let other = Browser::new();
    sign_in(&app, &other, &id, &secret, "alice", &[]).await;
    let r = other.get(&url).await;
    assert_confirmation(r, "another session's hint").await;
    assert!(signed_in(&app, &other, &id).await);
    assert!(signed_in(&app, &browser, &id).await);
    // The browser whose session the hint names is signed out at once.
    let r = browser.get(&url).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), BYE);
    assert!(!signed_in(&app, &browser, &id).await);
    assert!(signed_in(&app, &other, &id).await);
}

async fn rp_logout_confirmation_with_csrf_signs_out_without_redirect(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    sign_in(&app, &browser, &id, &secret, "alice", &[]).await;
    let url = end_session_url(
        &app,
        &[
            ("client_id", &id),
            ("post_logout_redirect_uri", BYE),
            ("state", "x"),
        ],
    )
    .await;
    let r = browser.get(&url).await;
    let csrf = assert_confirmation(r, "no hint").await;
    let r = post_confirmation(&app, &browser, &csrf).await;
    assert_signed_out_page(r, "confirmed").await;
    assert!(!signed_in(&app, &browser, &id).await);
    // Nobody is signed in any more: no question, just the page.
    assert_signed_out_page(browser.get(&url).await, "already out").await;
}

async fn attack13_logout_confirmation_without_csrf_with_another_sessions_token_or_foreign_origin_is_403(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let (victim, attacker) = (Browser::new(), Browser::new());
    sign_in(&app, &victim, &id, &secret, "alice", &[]).await;
    sign_in(&app, &attacker, &id, &secret, "alice", &[]).await;
    let page = end_session_url(&app, &[]).await;
    let victims = assert_confirmation(victim.get(&page).await, "victim").await;
    let attackers = assert_confirmation(attacker.get(&page).await, "attacker").await;
    assert_ne!(victims, attackers, "the token is bound to the session");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("no token", vec![("logout", "yes")], vec![]),
        (
            "another session's token",
            vec![("csrf_token", &attackers), ("logout", "yes")],
            vec![],
        ),
        (
            "a token and no button",
            vec![("csrf_token", "AAAA")],
            vec![],
        ),
        (
            "foreign Origin",
            vec![("csrf_token", &victims), ("logout", "yes")],
            vec![("Origin", "https://evil.example")],
        ),
        (
            "cross-site form",
            vec![("csrf_token", &victims), ("logout", "yes")],
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
    ];
    for (case, form, headers) in cases {
        let mut req = victim.http.post(&page).form(&form);
        for (h, v) in headers {
            req = req.header(h, v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{case}");
        assert!(r.headers().get("location").is_none(), "{case}");
        assert!(
            signed_in(&app, &victim, &id).await,
            "{case}: still signed in"
        );
    }
    // Without the session cookie, the victim's token is worth nothing.
    let r = app
        .http
        .post(&page)
        .form(&[("csrf_token", victims.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(signed_in(&app, &victim, &id).await);
    // A GET never signs out.
    let url = end_session_url(&app, &[("csrf_token", &victims), ("logout", "yes")]).await;
    assert_confirmation(victim.get(&url).await, "GET").await;
    assert!(signed_in(&app, &victim, &id).await);
    // The real form works, and only for the victim's session.
    assert_signed_out_page(post_confirmation(&app, &victim, &victims).await, "ok").await;
    assert!(!signed_in(&app, &victim, &id).await);
    assert!(signed_in(&app, &attacker, &id).await);
}

async fn attack14_logout_pages_send_the_security_headers(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    sign_in(&app, &browser, &id, &secret, "alice", &[]).await;
    let confirm = browser.get(&end_session_url(&app, &[]).await).await;
    assert_eq!(confirm.status(), 200);
    let csrf = {
        let (headers, html) = (confirm.headers().clone(), confirm.text().await.unwrap());
        assert_secure_page(&headers, &html, "confirmation");
        hidden(&html, "csrf_token")
    };
    let done = post_confirmation(&app, &browser, &csrf).await;
    assert_eq!(done.status(), 200);
    let (headers, html) = (done.headers().clone(), done.text().await.unwrap());
    assert_secure_page(&headers, &html, "signed out");
}

fn assert_secure_page(headers: &reqwest::header::HeaderMap, html: &str, page: &str) {
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(headers[h], v, "{page}: {h}");
    }
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("default-src 'none'")
            && !csp.contains("unsafe-inline"),
        "{page}: {csp}"
    );
    assert!(!html.contains("<script"), "{page}: no script");
}

fn session_cookie(r: &Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sigil_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

async fn attack15_after_logout_the_cookie_is_dead(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", PASSWORD)
        .await;
    let cookie = session_cookie(&r);
    let r = app.drive(&browser, r, "alice").await;
    let code = query(&location(&r)).remove("code").unwrap();
    assert_eq!(
        app.exchange(&id, &secret, &code, Some(VERIFIER))
            .await
            .status(),
        200
    );
    let csrf = assert_confirmation(
        browser.get(&end_session_url(&app, &[]).await).await,
        "confirm",
    )
    .await;
    assert_signed_out_page(post_confirmation(&app, &browser, &csrf).await, "out").await;
    // The old cookie, replayed by hand: not signed in anywhere.
    let url = app
        .authorize_url(&[
            ("client_id", &id),
            ("redirect_uri", crate::flow::REDIRECT),
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
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "login_required");
    let r = app
        .http
        .get(end_session_url(&app, &[]).await)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_signed_out_page(r, "the dead cookie has nothing to confirm").await;
}

async fn logout_revokes_the_sessions_grants_but_offline_access_survives(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let browser = Browser::new();
    let offline = sign_in(
        &app,
        &browser,
        &id,
        &secret,
        "alice",
        &[("scope", "openid offline_access")],
    )
    .await;
    let refresh = offline["refresh_token"]
        .as_str()
        .expect("offline_access gives a refresh token");
    let online = sign_in(
        &app,
        &browser,
        &id,
        &secret,
        "alice",
        &[("scope", "openid")],
    )
    .await;
    let url = end_session_url(&app, &[("id_token_hint", &id_token(&online))]).await;
    assert_signed_out_page(browser.get(&url).await, "out").await;
    let at = online["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(at).await.status(), 401, "online grant revoked");
    // OIDC Core §11: offline access is not tied to the session.
    let r = app
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(r.status(), 200);
}
