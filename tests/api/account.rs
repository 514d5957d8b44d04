//! `/account`, the signed-in user's own page: reached through Sigil's own login as the
//! first-party client `sigil-account`; profile, change password, sessions, consented apps;
//! every change same-origin, CSRF-protected and within 5 minutes of an authentication.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD};
use crate::helpers::{spawn_app, Backend, TestApp};
use crate::introspection::active;
use crate::logout::{sign_in, signed_in};

mod factors;
mod first_party;

both_backends!(
    reaching_account_signs_in_through_login_and_shows_the_profile,
    change_password_needs_the_current_one_and_ends_every_other_session_and_token,
    sessions_are_listed_and_ending_one_or_all_others_signs_those_browsers_out,
    withdrawing_consent_revokes_the_apps_refresh_token,
    attack13_changes_without_csrf_or_from_another_origin_are_403_and_change_nothing,
    a_change_after_5_minutes_reprompts_and_changes_nothing_until_resubmitted,
);

const NEW_PASSWORD: &str = "a whole new passphrase";

async fn setup(backend: Backend) -> (TestApp, String, String) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.add_user("alice");
    (app, id, secret)
}

/// A browser with its own `User-Agent`.
fn browser(agent: &str) -> Browser {
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(agent)
            .build()
            .unwrap(),
    }
}

/// Follows the redirects of the Sigil at `base` from `r` (signing in as alice with `password`
/// when the login page comes) until an answer that is not a redirect.
async fn follow(base: &str, b: &Browser, mut r: Response, password: &str) -> Response {
    for _ in 0..10 {
        if r.status() != StatusCode::SEE_OTHER {
            return r;
        }
        let to = location(&r);
        assert!(to.starts_with(base), "left Sigil for {to}");
        r = if to.contains("/login?") {
            let html = b.get(&to).await.text().await.unwrap();
            let form = [
                ("request", hidden(&html, "request")),
                ("csrf_token", hidden(&html, "csrf_token")),
                ("username", "alice".into()),
                ("password", password.into()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post_form(&format!("{base}/login"), &form).await
        } else {
            b.get(&to).await
        };
    }
    panic!("too many redirects");
}

/// Opens the account page in `b` (signing in when asked); returns its HTML.
pub(crate) async fn account_page(app: &TestApp, b: &Browser, password: &str) -> String {
    let r = follow(&app.address, b, b.get(&app.url("/account")).await, password).await;
    assert_eq!(r.status(), 200, "the account page");
    r.text().await.unwrap()
}

/// Posts a form of the account page with its CSRF token.
pub(crate) async fn post(
    app: &TestApp,
    b: &Browser,
    path: &str,
    html: &str,
    form: &[(&str, &str)],
) -> Response {
    let csrf = hidden(html, "csrf_token");
    let mut fields = vec![("csrf_token", csrf.as_str())];
    fields.extend_from_slice(form);
    b.post_form(&app.url(path), &fields).await
}

/// Ends the session `sid` from the account page `html`, and checks that it was.
async fn end(app: &TestApp, me: &Browser, html: &str, sid: &str) {
    let r = post(app, me, "/account/sessions/end", html, &[("session", sid)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(query(&location(&r))["done"], "session");
}

/// Alice signed in at `id` in a "phone" browser, and on her account page in this one: the two
/// browsers, the page, and the phone's session id as the page names it.
async fn phone_and_me(app: &TestApp, id: &str, secret: &str) -> (Browser, Browser, String, String) {
    let phone = Browser::new();
    sign_in(app, &phone, id, secret, "alice", &[]).await;
    let me = Browser::new();
    let html = account_page(app, &me, PASSWORD).await;
    let sid = hidden(&html, "session");
    (phone, me, html, sid)
}

async fn failures(app: &TestApp) -> i64 {
    let out = app.sigil(&["user", "show", "alice"], None);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    shown["sign_in"]["failures"].as_i64().unwrap()
}

/// Whether alice can sign in with `password` at `rp` in a new browser.
async fn password_works(app: &TestApp, id: &str, password: &str) -> bool {
    let b = Browser::new();
    let r = app.start(&b, id, &[]).await;
    let r = app.submit_login(&b, &location(&r), "alice", password).await;
    r.status() == StatusCode::SEE_OTHER
}

async fn refresh(app: &TestApp, id: &str, secret: &str, tokens: &Value) -> Response {
    let rt = tokens["refresh_token"].as_str().expect("a refresh token");
    app.token_basic(
        id,
        secret,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

async fn reaching_account_signs_in_through_login_and_shows_the_profile(backend: Backend) {
    let (app, _, _) = setup(backend).await;
    let b = Browser::new();
    let r = b.get(&app.url("/account")).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    let q = query(&to);
    assert!(
        to.starts_with(&app.endpoint("authorization_endpoint").await),
        "{to}"
    );
    assert_eq!(q["client_id"], "sigil-account");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/account/callback", app.issuer())
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 43 && q["code_challenge"].len() == 43);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("sigil_account_login="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // The ordinary way in: /authorize → the login page → the code → the callback → the page.
    let r = b.get(&to).await;
    let login = location(&r);
    assert!(login.contains("/login?"), "{login}");
    let r = app.submit_login(&b, &login, "alice", PASSWORD).await;
    let r = follow(&app.address, &b, r, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(csp, sigil::endpoints::pages::CSP);
    let html = r.text().await.unwrap();
    for shown in [
        "alice",
        "Alice Liddell",
        "alice@example.com (verified)",
        "Given name",
        "Liddell",
        "en-GB",
        "+44 20 7946 0000",
        "1 Rabbit Hole, Oxford, GB",
        "This browser",
        "Second factors",
    ] {
        assert!(html.contains(shown), "{shown} in:\n{html}");
    }
    assert!(!html.contains("<script"), "no JavaScript");
    // The account session holds: the page again without signing in.
    let r = b.get(&app.url("/account")).await;
    assert_eq!(r.status(), 200);
    // Signing out at the IdP ends the account session with it.
    let page = b.get(&app.url("/logout")).await.text().await.unwrap();
    let r = b
        .post_form(
            &app.url("/logout"),
            &[
                ("csrf_token", &hidden(&page, "csrf_token")),
                ("logout", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = b.get(&app.url("/account")).await;
    assert_eq!(
        r.status(),
        303,
        "signed out: the account page asks to sign in"
    );
}

async fn change_password_needs_the_current_one_and_ends_every_other_session_and_token(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let other = Browser::new();
    let tokens = sign_in(
        &app,
        &other,
        &id,
        &secret,
        "alice",
        &[("scope", "openid profile email offline_access")],
    )
    .await;
    let me = Browser::new();
    let html = account_page(&app, &me, PASSWORD).await;
    let before = failures(&app).await;

    // A wrong current password: refused, counted like a failed sign-in, nothing changed.
    let r = post(
        &app,
        &me,
        "/account/password",
        &html,
        &[
            ("current_password", "not my password"),
            ("new_password", NEW_PASSWORD),
            ("repeat_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("current password is not correct"));
    assert_eq!(
        failures(&app).await,
        before + 1,
        "counted on the account key"
    );
    // The repetition must match.
    let r = post(
        &app,
        &me,
        "/account/password",
        &html,
        &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("repeat_password", "something else entirely"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(
        password_works(&app, &id, PASSWORD).await,
        "nothing changed yet"
    );
    assert!(signed_in(&app, &other, &id).await);

    // The right one: changed.
    let r = post(
        &app,
        &me,
        "/account/password",
        &html,
        &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("repeat_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(query(&location(&r))["done"], "password");
    let page = me.get(&location(&r)).await;
    assert_eq!(page.status(), 200, "this browser stays on /account");
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Your password was changed"));
    assert!(signed_in(&app, &me, &id).await, "and signed in at the IdP");

    assert!(
        !password_works(&app, &id, PASSWORD).await,
        "the old password fails at /login"
    );
    assert!(password_works(&app, &id, NEW_PASSWORD).await);
    assert!(
        !signed_in(&app, &other, &id).await,
        "the other browser's session is dead"
    );
    assert_eq!(
        refresh(&app, &id, &secret, &tokens).await.status(),
        400,
        "its refresh token too"
    );
    let r = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401, "and its access token");
}

async fn sessions_are_listed_and_ending_one_or_all_others_signs_those_browsers_out(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let phone = browser("Phone/1.0 (a small screen)");
    sign_in(&app, &phone, &id, &secret, "alice", &[]).await;
    let me = browser("Desk/2.0");
    let html = account_page(&app, &me, PASSWORD).await;
    assert!(
        html.contains("Phone/1.0 (a small screen)") && html.contains("Desk/2.0"),
        "{html}"
    );
    assert!(html.contains("From 127.0.0.1"), "the address is listed");
    assert!(html.contains("last seen"));
    assert_eq!(html.matches("This browser").count(), 1);
    // The one end button is the phone's (this browser's own has none).
    let sid = hidden(&html, "session");
    end(&app, &me, &html, &sid).await;
    assert!(
        !signed_in(&app, &phone, &id).await,
        "the phone is signed out"
    );
    let html = account_page(&app, &me, PASSWORD).await;
    assert!(!html.contains("Phone/1.0"), "no longer listed");
    // A session that is not one of the user's own (ended, or anyone else's) ends nothing.
    for other in [sid.as_str(), "not-a-session"] {
        let r = post(
            &app,
            &me,
            "/account/sessions/end",
            &html,
            &[("session", other)],
        )
        .await;
        assert_eq!(query(&location(&r))["done"], "session-gone");
    }
    assert!(signed_in(&app, &me, &id).await);

    // End every other one: two more browsers, both signed out; this one stays.
    let (tablet, laptop) = (browser("Tablet/3.0"), browser("Laptop/4.0"));
    for b in [&tablet, &laptop] {
        sign_in(&app, b, &id, &secret, "alice", &[]).await;
    }
    let html = account_page(&app, &me, PASSWORD).await;
    assert!(html.contains("Tablet/3.0") && html.contains("Laptop/4.0"));
    let r = post(&app, &me, "/account/sessions/end-others", &html, &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(query(&location(&r))["done"], "others");
    assert!(!signed_in(&app, &tablet, &id).await && !signed_in(&app, &laptop, &id).await);
    assert!(signed_in(&app, &me, &id).await);
    let r = me.get(&app.url("/account")).await;
    assert_eq!(r.status(), 200);
}

async fn withdrawing_consent_revokes_the_apps_refresh_token(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let tokens = sign_in(
        &app,
        &Browser::new(),
        &id,
        &secret,
        "alice",
        &[("scope", "openid email offline_access")],
    )
    .await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(active(&app, &id, &secret, &rt).await["active"], true);
    let me = Browser::new();
    let html = account_page(&app, &me, PASSWORD).await;
    assert!(html.contains("App rp"), "{html}");
    assert!(
        html.contains("See your email address"),
        "the scopes in words"
    );
    let r = post(
        &app,
        &me,
        "/account/apps/withdraw",
        &html,
        &[("client_id", "rp")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(query(&location(&r))["done"], "consent");
    assert_eq!(
        active(&app, &id, &secret, &rt).await,
        json!({"active": false})
    );
    assert_eq!(refresh(&app, &id, &secret, &tokens).await.status(), 400);
    let html = me.get(&location(&r)).await.text().await.unwrap();
    assert!(
        html.contains("Access withdrawn") && !html.contains("App rp"),
        "{html}"
    );
    // The app must ask again.
    let r = app.start(&me, &id, &[("prompt", "none")]).await;
    assert_eq!(query(&location(&r))["error"], "consent_required");
}

async fn attack13_changes_without_csrf_or_from_another_origin_are_403_and_change_nothing(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let (phone, me, html, sid) = phone_and_me(&app, &id, &secret).await;
    // Another account session's token is not this one's.
    let elsewhere = account_page(&app, &Browser::new(), PASSWORD).await;
    let foreign_csrf = hidden(&elsewhere, "csrf_token");
    assert_ne!(foreign_csrf, hidden(&html, "csrf_token"));
    let change = [
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
        ("repeat_password", NEW_PASSWORD),
    ];
    for (case, csrf) in [
        ("missing", None),
        ("wrong", Some("x")),
        ("another session's", Some(foreign_csrf.as_str())),
    ] {
        let mut form: Vec<(&str, &str)> = change.to_vec();
        form.extend(csrf.map(|c| ("csrf_token", c)));
        let r = me.post_form(&app.url("/account/password"), &form).await;
        assert_eq!(r.status(), 403, "{case} CSRF token");
        let mut form: Vec<(&str, &str)> = vec![("session", &sid)];
        form.extend(csrf.map(|c| ("csrf_token", c)));
        let r = me.post_form(&app.url("/account/sessions/end"), &form).await;
        assert_eq!(r.status(), 403, "{case} CSRF token");
    }
    let csrf = hidden(&html, "csrf_token");
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = me
            .http
            .post(app.url("/account/sessions/end"))
            .header(header, value)
            .form(&[("csrf_token", csrf.as_str()), ("session", &sid)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{header}: {value}");
        let r = me
            .http
            .post(app.url("/account/password"))
            .header(header, value)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("repeat_password", NEW_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{header}: {value}");
    }
    assert!(
        signed_in(&app, &phone, &id).await,
        "the phone is still signed in"
    );
    assert!(
        password_works(&app, &id, PASSWORD).await,
        "the password is unchanged"
    );
    // No account session at all: nothing to check a token against; sign in first.
    let r = Browser::new()
        .post_form(
            &app.url("/account/sessions/end"),
            &[("csrf_token", &csrf), ("session", &sid)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/authorize?"));
    assert!(signed_in(&app, &phone, &id).await);
}

async fn a_change_after_5_minutes_reprompts_and_changes_nothing_until_resubmitted(
    backend: Backend,
) {
    let (app, id, secret) = setup(backend).await;
    let (phone, me, html, sid) = phone_and_me(&app, &id, &secret).await;
    app.state.clock.advance(301);
    let r = post(
        &app,
        &me,
        "/account/sessions/end",
        &html,
        &[("session", &sid)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.contains("/authorize?"), "{to}");
    assert_eq!(query(&to)["max_age"], "300");
    assert!(signed_in(&app, &phone, &id).await, "nothing was ended");
    // Signing in again (the login page: the last sign-in is older than max_age) comes back to
    // the page, which says to make the change again.
    let r = me.get(&to).await;
    assert!(
        location(&r).contains("/login?"),
        "a fresh sign-in is required"
    );
    let r = follow(&app.address, &me, r, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("nothing was changed: make your change once more"),
        "{html}"
    );
    assert!(signed_in(&app, &phone, &id).await, "still nothing ended");
    // Resubmitted: done.
    end(&app, &me, &html, &sid).await;
    assert!(!signed_in(&app, &phone, &id).await);
}
