//! Second factors and authentication strength (issue 11; SECURITY.md 31): TOTP enrolled by the
//! CLI, the second step after the password with `amr`/`acr`, wrong and reused codes refused and
//! counted, recovery codes single use, `acr_values` step-up, essential `acr`, `minimum_acr`
//! clients, removal. The codes are computed here by an implementation of RFC 6238 of the
//! tests' own (HMAC-SHA-1 from OpenSSL, base32 by hand), not by Sigil's.

use reqwest::Response;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{attribute, hidden, location, query, Browser, PASSWORD, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, Backend, TestApp};

both_backends!(
    attack31_totp_makes_the_sign_in_two_steps_with_amr_and_acr,
    attack31_wrong_and_reused_codes_are_refused_and_counted,
    attack31_thirty_concurrent_posts_of_one_code_sign_in_once,
    attack31_recovery_codes_are_single_use_and_replaced,
    attack31_totp_secrets_are_sealed_and_the_second_step_cannot_be_skipped,
    removing_totp_returns_to_password_sign_in,
);

mod strength;

// ---- RFC 6238, independently -------------------------------------------------------------

pub(crate) fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base32") as u64;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

pub(crate) fn totp_at(secret_b32: &str, unix: i64) -> String {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::hmac(&base32_decode(secret_b32)).unwrap();
    let mut signer = Signer::new(MessageDigest::sha1(), &key).unwrap();
    signer.update(&((unix / 30) as u64).to_be_bytes()).unwrap();
    let mac = signer.sign_to_vec().unwrap();
    let o = (mac[19] & 0xf) as usize;
    let n = u32::from_be_bytes([mac[o] & 0x7f, mac[o + 1], mac[o + 2], mac[o + 3]]);
    format!("{:06}", n % 1_000_000)
}

#[test]
fn the_tests_own_totp_matches_rfc6238_appendix_b() {
    // "12345678901234567890" in base32.
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(totp_at(secret, 59), "287082");
    assert_eq!(totp_at(secret, 1111111109), "081804");
    assert_eq!(totp_at(secret, 2000000000), "279037");
}

// ---- helpers --------------------------------------------------------------------------------

impl TestApp {
    fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.sigil(args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `sigil user totp add USERNAME`: the base32 secret.
    pub(crate) fn add_totp(&self, username: &str) -> String {
        let v = self.cli_json(&["user", "totp", "add", username]);
        let secret = v["secret"].as_str().unwrap().to_string();
        let uri = v["uri"].as_str().unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&format!("secret={secret}")), "{uri}");
        secret
    }

    fn failures(&self, username: &str) -> i64 {
        self.cli_json(&["user", "show", username])["sign_in"]["failures"]
            .as_i64()
            .unwrap()
    }

    pub(crate) fn now(&self) -> i64 {
        self.state.clock.now()
    }
}

/// Posts the second-step form found at `factor_url` with `otp`.
pub(crate) async fn post_otp(
    app: &TestApp,
    browser: &Browser,
    factor_url: &str,
    otp: &str,
) -> Response {
    let page = browser.get(factor_url).await;
    assert_eq!(page.status(), 200, "second-step page");
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"otp\""), "{html}");
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    browser
        .post_form(
            &app.url("/login/factor"),
            &[("request", &request), ("csrf_token", &csrf), ("otp", otp)],
        )
        .await
}

pub(crate) fn path_of(url: &str) -> String {
    url::Url::parse(url).unwrap().path().to_string()
}

/// Start → password → the second step (its page's URL).
pub(crate) async fn to_second_step(
    app: &TestApp,
    browser: &Browser,
    id: &str,
    extra: &[(&str, &str)],
) -> String {
    let r = app.start(browser, id, extra).await;
    let login = location(&r);
    assert_eq!(path_of(&login), "/login", "{login}");
    let r = app.submit_login(browser, &login, "alice", PASSWORD).await;
    second_step_url(app, r).await
}

/// The request id and CSRF token of a second step's page: the code form's, or (a passkey
/// alone) the passkey button's.
pub(crate) fn step_fields(html: &str) -> (String, String) {
    assert!(
        html.contains("/login/factor"),
        "not the second step: {html}"
    );
    if html.contains(r#"name="otp""#) {
        (hidden(html, "request"), hidden(html, "csrf_token"))
    } else {
        (
            attribute(html, "data-request"),
            attribute(html, "data-csrf"),
        )
    }
}

/// The second step's page, which the right password is answered with at once (200, no
/// redirect), and the URL that shows the same page again.
pub(crate) async fn second_step_url(app: &TestApp, r: Response) -> String {
    assert_eq!(r.status(), 200, "the second step's page");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let (request, _) = step_fields(&html);
    let url = app.url(&format!("/login/factor?request={request}"));
    assert_eq!(path_of(&url), "/login/factor");
    url
}

/// The ID token (and token response) for the code in the client-bound answer `r`.
pub(crate) async fn tokens(app: &TestApp, id: &str, secret: &str, r: &Response) -> (Value, Value) {
    let to = location(r);
    assert!(to.starts_with(REDIRECT), "{to}");
    let code = query(&to)
        .get("code")
        .unwrap_or_else(|| panic!("no code: {to}"))
        .clone();
    let r = app.exchange(id, secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let claims = jwt_parts(body["id_token"].as_str().unwrap()).1;
    (claims, body)
}

async fn setup(backend: Backend, extra: Value) -> (TestApp, String, String) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", extra);
    app.add_user("alice");
    (app, id, secret)
}

// ---- tests ----------------------------------------------------------------------------------

async fn attack31_totp_makes_the_sign_in_two_steps_with_amr_and_acr(backend: Backend) {
    let (app, id, secret) = setup(backend, json!({})).await;
    let discovery = app.discovery().await;
    assert_eq!(
        discovery["acr_values_supported"],
        json!(["pwd", "mfa", "phr"])
    );
    assert_eq!(discovery["claims_parameter_supported"], true);

    // Password only: pwd.
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let r = app.drive(&browser, r, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["acr"], "pwd");

    let totp = app.add_totp("alice");
    let browser = Browser::new();
    let factor = to_second_step(
        &app,
        &browser,
        &id,
        &[("scope", "openid email offline_access")],
    )
    .await;
    let page = browser.get(&factor).await.text().await.unwrap();
    assert!(page.contains("authenticator app"), "{page}");
    let r = post_otp(&app, &browser, &factor, &totp_at(&totp, app.now())).await;
    assert_eq!(r.status(), 303);
    let r = app.drive(&browser, r, "alice").await;
    let (claims, body) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "mfa");
    // The access token and introspection carry the level too.
    let at = jwt_parts(body["access_token"].as_str().unwrap()).1;
    assert_eq!(at["acr"], "mfa");
    let seen = app
        .introspect(&id, &secret, body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["acr"], "mfa");
    assert_eq!(seen["amr"], json!(["pwd", "otp", "mfa"]));
    let seen = app
        .introspect(&id, &secret, body["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(seen["acr"], "mfa");

    // SSO in the same browser keeps the level.
    let r = app.start(&browser, &id, &[]).await;
    let r = app.drive(&browser, r, "alice").await;
    assert_eq!(tokens(&app, &id, &secret, &r).await.0["acr"], "mfa");
}

async fn attack31_wrong_and_reused_codes_are_refused_and_counted(backend: Backend) {
    // Every browser of the test shares 127.0.0.1, whose key also takes five failures a window:
    // each phase stays within it, and the clock moves past the window between them.
    let (app, id, _secret) = setup(backend, json!({})).await;
    let totp = app.add_totp("alice");
    let browser = Browser::new();
    let factor = to_second_step(&app, &browser, &id, &[]).await;
    let right = totp_at(&totp, app.now());
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    for (n, bad) in [wrong, "12345"].into_iter().enumerate() {
        let r = post_otp(&app, &browser, &factor, bad).await;
        assert_eq!(r.status(), 401, "{bad}");
        let html = r.text().await.unwrap();
        assert!(html.contains("That code is not right"), "{html}");
        assert_eq!(app.failures("alice"), n as i64 + 1);
    }
    // The right code works, and the account starts afresh.
    let r = post_otp(&app, &browser, &factor, &right).await;
    assert_eq!(r.status(), 303);
    let r = app.drive(&browser, r, "alice").await;
    assert!(location(&r).starts_with(REDIRECT));
    assert_eq!(app.failures("alice"), 0);

    // The same code again, in another browser with the right password: refused (each code once),
    // and counted.
    let other = Browser::new();
    let factor = to_second_step(&app, &other, &id, &[]).await;
    let r = post_otp(&app, &other, &factor, &right).await;
    assert_eq!(r.status(), 401, "a reused code was accepted");
    assert_eq!(app.failures("alice"), 1);
    // So is the code of the step before it, though still within the drift window.
    let r = post_otp(&app, &other, &factor, &totp_at(&totp, app.now() - 30)).await;
    assert_eq!(
        r.status(),
        401,
        "an older code was accepted after a newer one"
    );
    assert_eq!(app.failures("alice"), 2);

    // Knowing the password does not reset the count: five wrong codes lock the account.
    app.state.clock.advance(16 * 60);
    for bad in [wrong, "not a code", &"9".repeat(200), wrong, wrong] {
        let factor = to_second_step(&app, &other, &id, &[]).await;
        let r = post_otp(&app, &other, &factor, bad).await;
        assert_eq!(r.status(), 401, "{bad}");
    }
    assert_eq!(app.failures("alice"), 5);
    let r = app.start(&other, &id, &[]).await;
    let r = app
        .submit_login(&other, &location(&r), "alice", PASSWORD)
        .await;
    assert_eq!(r.status(), 429, "locked after five wrong codes");
    assert!(r.headers().contains_key("retry-after"));
}

async fn attack31_thirty_concurrent_posts_of_one_code_sign_in_once(backend: Backend) {
    let (app, id, _secret) = setup(backend, json!({})).await;
    let totp = app.add_totp("alice");
    let browser = Browser::new();
    let factor = to_second_step(&app, &browser, &id, &[]).await;
    let html = browser.get(&factor).await.text().await.unwrap();
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    let code = totp_at(&totp, app.now());
    let url = app.url("/login/factor");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(30));
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (browser, url, barrier) = (browser.clone(), url.clone(), barrier.clone());
        let form = [
            ("request", request.clone()),
            ("csrf_token", csrf.clone()),
            ("otp", code.clone()),
        ];
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = browser.post_form(&url, &form).await;
            let to = r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (r.status().as_u16(), to)
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    // One signs in (303 back to /authorize/resume); the others find the code spent (401, or
    // 429 once the failures fill the keys) or the second step already done (303 to /login,
    // where nothing waits any more).
    let signed_in = outcomes
        .iter()
        .filter(|(s, to)| *s == 303 && to.contains("/authorize/resume"))
        .count();
    assert_eq!(signed_in, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|(s, to)| [401, 429].contains(s)
            || (*s == 303 && (to.contains("/authorize/resume") || to.contains("/login?")))),
        "{outcomes:?}"
    );
}

async fn attack31_recovery_codes_are_single_use_and_replaced(backend: Backend) {
    let (app, id, secret) = setup(backend, json!({})).await;
    app.add_totp("alice");
    let codes = app.cli_json(&["user", "recovery-codes", "alice"])["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(codes.len(), 10);
    // Stored only as hashes.
    let stored: Vec<String> = app
        .state
        .db
        .run(|c| {
            use diesel::prelude::*;
            use sigil::storage::schema::recovery_codes::dsl;
            dsl::recovery_codes
                .select(dsl::code_hash)
                .load::<String>(c)
                .map_err(sigil::storage::StorageError::from)
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 10);
    assert!(stored.iter().all(|h| !codes.contains(h)));

    // Typed in capitals with a space instead of the dash: accepted once.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let browser = Browser::new();
    let factor = to_second_step(&app, &browser, &id, &[]).await;
    let r = post_otp(&app, &browser, &factor, &typed).await;
    assert_eq!(r.status(), 303);
    let r = app.drive(&browser, r, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));

    let other = Browser::new();
    let factor = to_second_step(&app, &other, &id, &[]).await;
    let r = post_otp(&app, &other, &factor, &codes[0]).await;
    assert_eq!(r.status(), 401, "a recovery code worked twice");

    // New codes replace the old ones.
    let fresh = app.cli_json(&["user", "recovery-codes", "alice"])["codes"][0]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_otp(&app, &other, &factor, &codes[1]).await;
    assert_eq!(r.status(), 401, "a replaced recovery code still worked");
    let r = post_otp(&app, &other, &factor, &fresh).await;
    assert_eq!(r.status(), 303);
}

async fn attack31_totp_secrets_are_sealed_and_the_second_step_cannot_be_skipped(backend: Backend) {
    let (app, id, _secret) = setup(backend, json!({})).await;
    let totp = app.add_totp("alice");
    let raw = base32_decode(&totp);
    let sealed: Vec<Vec<u8>> = app
        .state
        .db
        .run(|c| {
            use diesel::prelude::*;
            use sigil::storage::schema::totp_factors::dsl;
            dsl::totp_factors
                .select(dsl::secret_sealed)
                .load::<Vec<u8>>(c)
                .map_err(sigil::storage::StorageError::from)
        })
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1);
    assert!(!sealed[0].windows(raw.len()).any(|w| w == raw.as_slice()));
    assert!(!sealed[0].windows(totp.len()).any(|w| w == totp.as_bytes()));

    // After the password alone: no session, so neither resuming nor the consent form gives a
    // code.
    let browser = Browser::new();
    let factor = to_second_step(&app, &browser, &id, &[]).await;
    let request = query(&factor)["request"].clone();
    let r = browser
        .get(&app.url(&format!("/authorize/resume?request={request}")))
        .await;
    assert_eq!(path_of(&location(&r)), "/login", "{}", location(&r));
    let r = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("request", &request),
                (
                    "csrf_token",
                    &hidden(
                        &browser.get(&factor).await.text().await.unwrap(),
                        "csrf_token",
                    ),
                ),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    // Another browser cannot finish this browser's second step.
    let thief = Browser::new();
    let r = thief.get(&factor).await;
    assert_eq!(r.status(), 403);
    // Five minutes later the second step has expired: back to the password.
    app.state.clock.advance(301);
    let r = browser.get(&factor).await;
    assert_eq!(r.status(), 303);
    assert_eq!(path_of(&location(&r)), "/login");
}

async fn removing_totp_returns_to_password_sign_in(backend: Backend) {
    let (app, id, secret) = setup(backend, json!({})).await;
    app.add_totp("alice");
    app.cli_json(&["user", "recovery-codes", "alice"]);
    let shown = app.cli_json(&["user", "show", "alice"]);
    assert_eq!(
        shown["second_factors"],
        json!({"totp": true, "recovery_codes": 10, "passkeys": 0})
    );
    let out = app.sigil(&["user", "totp", "remove", "alice"], None);
    assert!(out.status.success());
    let shown = app.cli_json(&["user", "show", "alice"]);
    assert_eq!(
        shown["second_factors"],
        json!({"totp": false, "recovery_codes": 0, "passkeys": 0})
    );
    let out = app.sigil(&["user", "totp", "remove", "alice"], None);
    assert!(!out.status.success(), "removing a missing factor succeeded");
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let r = app
        .submit_login(&browser, &location(&r), "alice", PASSWORD)
        .await;
    assert_eq!(path_of(&location(&r)), "/authorize/resume");
    let r = app.drive(&browser, r, "alice").await;
    let (claims, _) = tokens(&app, &id, &secret, &r).await;
    assert_eq!(claims["amr"], json!(["pwd"]));
}
