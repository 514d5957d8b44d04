//! `/admin/`, the admin console: reached through Sigil's own login as the first-party client
//! `sigil-admin` (`minimum_acr` `mfa`), only by users with the admin flag; every change
//! same-origin, CSRF-protected, within 15 minutes of an authentication, and an audit event
//! whose actor is the admin.

use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::audit::{events, find};
use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD};
use crate::helpers::{spawn_app, Backend, TestApp};
use crate::second_factors::{path_of, post_otp, second_step_url, totp_at};

mod changes;
mod people;

both_backends!(
    not_signed_in_redirects_to_authorize_and_an_admin_signs_in_with_password_and_totp,
    a_signed_in_user_without_the_admin_flag_gets_a_plain_403,
    an_admin_without_a_second_factor_is_led_to_enrol_one,
    a_stale_authentication_reprompts_and_changes_nothing_until_resubmitted,
    a_change_without_the_csrf_token_or_from_another_origin_is_refused_and_changes_nothing,
    every_page_renders_with_the_nav_and_a_heading,
);

pub(crate) const ADMIN: &str = "root";

/// An app with the admin `root` (password and TOTP); the TOTP secret.
pub(crate) async fn setup(backend: Backend) -> (TestApp, String) {
    let app = spawn_app(backend).await;
    let out = app.sigil(
        &["user", "add", ADMIN, "--admin", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let totp = app.add_totp(ADMIN);
    (app, totp)
}

/// Follows Sigil's redirects from `r`, signing in as `username` (password, then the TOTP code
/// from `totp` when the second step comes), until an answer that is not a redirect.
pub(crate) async fn follow(
    app: &TestApp,
    b: &Browser,
    mut r: Response,
    username: &str,
    totp: Option<&str>,
) -> Response {
    for _ in 0..12 {
        if r.status() != StatusCode::SEE_OTHER {
            return r;
        }
        let to = location(&r);
        assert!(to.starts_with(&app.address), "left Sigil for {to}");
        r = if path_of(&to) == "/login" {
            let r = app.submit_login(b, &to, username, PASSWORD).await;
            if r.status() == StatusCode::OK {
                let factor = second_step_url(app, r).await;
                let secret = totp.expect("a second step, and no TOTP secret to answer it");
                post_otp(app, b, &factor, &totp_at(secret, app.now())).await
            } else {
                r
            }
        } else {
            b.get(&to).await
        };
    }
    panic!("too many redirects");
}

/// A browser signed in to the console as the admin; the overview's HTML.
pub(crate) async fn signed_in(app: &TestApp, totp: &str) -> (Browser, String) {
    let b = Browser::new();
    let r = follow(app, &b, b.get(&app.url("/admin/")).await, ADMIN, Some(totp)).await;
    assert_eq!(r.status(), 200, "the console");
    let html = r.text().await.unwrap();
    (b, html)
}

/// GET `path` in the signed-in `b`: 200 and its HTML.
pub(crate) async fn page(app: &TestApp, b: &Browser, path: &str) -> String {
    let r = b.get(&app.url(path)).await;
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.text().await.unwrap()
}

/// Posts a form of the console with the CSRF token of the page `html`.
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

/// A 303 to `path` with the notice `done`.
pub(crate) fn assert_done(r: &Response, path: &str, done: &str) {
    assert_eq!(r.status(), 303, "{path} {done}");
    let to = location(r);
    assert_eq!(path_of(&to), path, "{to}");
    assert_eq!(query(&to)["done"], done, "{to}");
}

pub(crate) async fn resources(app: &TestApp) -> Vec<String> {
    let out = app.sigil(&["resource", "list", "--json"], None);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap().to_string())
        .collect()
}

async fn not_signed_in_redirects_to_authorize_and_an_admin_signs_in_with_password_and_totp(
    backend: Backend,
) {
    let (app, totp) = setup(backend).await;
    let b = Browser::new();
    let r = b.get(&app.url("/admin/")).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert_eq!(path_of(&to), "/authorize", "{to}");
    let q = query(&to);
    assert_eq!(q["client_id"], "sigil-admin");
    assert_eq!(q["code_challenge_method"], "S256");
    // Sigil's own client, registered at start with minimum_acr mfa.
    let out = app.sigil(&["client", "show", "sigil-admin"], None);
    let client: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(client["minimum_acr"], "mfa");
    assert_eq!(
        client["redirect_uris"],
        json!([format!("{}/admin/callback", app.issuer())])
    );
    // Password, then the TOTP code, then the overview.
    let r = follow(&app, &b, r, ADMIN, Some(&totp)).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>"), "{html}");
    assert!(html.contains(r#"<strong id="admin-name">root</strong>"#));
    let all = events(&app).await;
    let signed_in = find(&all, "console.signed_in");
    assert_eq!(signed_in.actor_name.as_deref(), Some(ADMIN));
    // Without the TOTP code there is no console: a browser stopped at the second step.
    let other = Browser::new();
    let r = other.get(&app.url("/admin/")).await;
    let r = other.get(&location(&r)).await;
    let r = app
        .submit_login(&other, &location(&r), ADMIN, PASSWORD)
        .await;
    assert_eq!(r.status(), 200, "the second step");
    assert_eq!(other.get(&app.url("/admin/")).await.status(), 303);
}

async fn a_signed_in_user_without_the_admin_flag_gets_a_plain_403(backend: Backend) {
    let (app, _) = setup(backend).await;
    app.add_user("alice");
    let totp = app.add_totp("alice");
    let b = Browser::new();
    let r = follow(
        &app,
        &b,
        b.get(&app.url("/admin/")).await,
        "alice",
        Some(&totp),
    )
    .await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("not an administrator"), "{html}");
    assert!(!html.contains("csrf_token"), "no console form");
    for path in [
        "/admin/users",
        "/admin/clients",
        "/admin/keys",
        "/admin/audit",
    ] {
        assert_eq!(b.get(&app.url(path)).await.status(), 403, "{path}");
    }
    // Her changes are refused too, whatever the form holds.
    let r = b
        .post_form(
            &app.url("/admin/resources"),
            &[
                ("csrf_token", "x"),
                ("resource", "https://api.example/"),
                ("scope", "a"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(resources(&app).await.is_empty());
}

async fn an_admin_without_a_second_factor_is_led_to_enrol_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.sigil(
        &["user", "add", "newadmin", "--admin", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(out.status.success());
    let b = Browser::new();
    let r = b.get(&app.url("/admin/")).await;
    let r = b.get(&location(&r)).await;
    let r = app
        .submit_login(&b, &location(&r), "newadmin", PASSWORD)
        .await;
    let r = b.get(&location(&r)).await;
    let to = location(&r);
    assert_eq!(path_of(&to), "/login/enrol", "{to}");
    let html = b.get(&to).await.text().await.unwrap();
    assert!(html.contains("Set up a second factor"), "{html}");
    // No console session came of it.
    assert_eq!(b.get(&app.url("/admin/")).await.status(), 303);
}

async fn a_stale_authentication_reprompts_and_changes_nothing_until_resubmitted(backend: Backend) {
    let (app, totp) = setup(backend).await;
    let (b, _) = signed_in(&app, &totp).await;
    let html = page(&app, &b, "/admin/resources").await;
    let form = [
        ("resource", "https://api.example/"),
        ("scope", "orders:read"),
    ];
    app.state.clock.advance(901);
    let r = post(&app, &b, "/admin/resources", &html, &form).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert_eq!(path_of(&to), "/authorize", "{to}");
    assert_eq!(query(&to)["max_age"], "900");
    assert!(resources(&app).await.is_empty(), "nothing registered");
    let all = events(&app).await;
    let reprompt = find(&all, "console.reauthentication_required");
    assert_eq!(reprompt.actor_name.as_deref(), Some(ADMIN));
    // Signing in again (password and a new code) comes back saying to make the change again.
    let r = b.get(&to).await;
    assert_eq!(
        path_of(&location(&r)),
        "/login",
        "a fresh sign-in is required"
    );
    let r = follow(&app, &b, r, ADMIN, Some(&totp)).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("nothing was changed: make your change once more"),
        "{html}"
    );
    assert!(resources(&app).await.is_empty(), "still nothing");
    let html = page(&app, &b, "/admin/resources").await;
    let r = post(&app, &b, "/admin/resources", &html, &form).await;
    assert_done(&r, "/admin/resources", "resource-added");
    assert_eq!(resources(&app).await, ["https://api.example/"]);
}

async fn a_change_without_the_csrf_token_or_from_another_origin_is_refused_and_changes_nothing(
    backend: Backend,
) {
    let (app, totp) = setup(backend).await;
    let (b, _) = signed_in(&app, &totp).await;
    let html = page(&app, &b, "/admin/resources").await;
    let form = [
        ("resource", "https://api.example/"),
        ("scope", "orders:read"),
    ];
    let r = b.post_form(&app.url("/admin/resources"), &form).await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let mut wrong = form.to_vec();
    wrong.push(("csrf_token", "forged"));
    let r = b.post_form(&app.url("/admin/resources"), &wrong).await;
    assert_eq!(r.status(), 403, "a wrong CSRF token");
    // Another browser's genuine token is not this browser's.
    let (other, _) = signed_in_again(&app, &totp).await;
    let other_html = page(&app, &other, "/admin/resources").await;
    assert_ne!(
        hidden(&other_html, "csrf_token"),
        hidden(&html, "csrf_token")
    );
    let r = post(&app, &b, "/admin/resources", &other_html, &form).await;
    assert_eq!(r.status(), 403, "another session's token");
    let csrf = hidden(&html, "csrf_token");
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = b
            .http
            .post(app.url("/admin/resources"))
            .header(header, value)
            .form(&[("csrf_token", csrf.as_str()), form[0], form[1]])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{header}: {value}");
    }
    // GET changes nothing either: there is no such route for a change.
    let r = b
        .get(&app.url("/admin/resources/remove?resource=https://api.example/"))
        .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(resources(&app).await.is_empty());
    // The genuine form works.
    let r = post(&app, &b, "/admin/resources", &html, &form).await;
    assert_done(&r, "/admin/resources", "resource-added");
}

/// A second signed-in console browser (a new TOTP step: codes are single use).
async fn signed_in_again(app: &TestApp, totp: &str) -> (Browser, String) {
    app.state.clock.advance(31);
    signed_in(app, totp).await
}

async fn every_page_renders_with_the_nav_and_a_heading(backend: Backend) {
    let (app, totp) = setup(backend).await;
    let (b, _) = signed_in(&app, &totp).await;
    for (path, heading) in [
        ("/admin/", "Overview"),
        ("/admin/users", "Users"),
        ("/admin/users?q=ro", "Users"),
        ("/admin/users/view?username=root", "User"),
        ("/admin/groups", "Groups"),
        ("/admin/sessions", "Sessions"),
        ("/admin/clients", "Clients"),
        ("/admin/clients/view?client_id=sigil-account", "Client"),
        ("/admin/resources", "Resource servers"),
        ("/admin/keys", "Signing keys"),
        ("/admin/audit", "Audit log"),
        ("/admin/audit?type=console.signed_in&since=1h", "Audit log"),
    ] {
        let html = page(&app, &b, path).await;
        assert!(html.contains(&format!("<h1>{heading}")), "{path}: {html}");
        assert!(
            html.contains(r#"<nav aria-label="Admin console">"#),
            "{path}: no nav"
        );
        assert!(
            html.contains(r#"aria-current="page""#),
            "{path}: no current section"
        );
    }
}
