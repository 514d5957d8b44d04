//! One-time password-set links: a user created without a password chooses one at
//! `/password/set?token=…`; the link works once, a new one replaces the old, an expired,
//! used or unknown one changes nothing.

use reqwest::Method;
use serde_json::{json, Value};

use super::{admin_token, audited, call, fresh_admin_token, json_of};
use crate::both_backends;
use crate::flow::{hidden, location, Browser};
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(
    password_link_sets_the_password_once,
    password_links_are_replaced_expire_and_refuse_bad_forms,
);

const CHOSEN: &str = "a brand new passphrase";

/// The link's form: GET it (200) and read the hidden fields.
async fn open(browser: &Browser, url: &str) -> (String, String) {
    let r = browser.get(url).await;
    assert_eq!(r.status(), 200, "{url}");
    let html = r.text().await.unwrap();
    assert!(html.contains("name=\"password\""), "{html}");
    assert!(html.contains("name=\"password_confirm\""), "{html}");
    (hidden(&html, "token"), hidden(&html, "csrf_token"))
}

async fn submit(
    app: &TestApp,
    browser: &Browser,
    token: &str,
    csrf: &str,
    password: &str,
    confirm: &str,
) -> (u16, String) {
    let r = browser
        .post_form(
            &app.url("/password/set"),
            &[
                ("token", token),
                ("csrf_token", csrf),
                ("password", password),
                ("password_confirm", confirm),
            ],
        )
        .await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Whether `username` can sign in with `password` (the login answers with a redirect).
async fn signs_in(app: &TestApp, username: &str, password: &str) -> bool {
    let (id, _) = app.web_client(&format!("web-{}", rand_suffix()), json!({}));
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let r = app
        .submit_login(&browser, &location(&r), username, password)
        .await;
    r.status() == 303
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn created_without_password(app: &TestApp, token: &str, username: &str) -> Value {
    let r = call(
        app,
        Method::POST,
        "/users",
        Some(token),
        Some(json!({"username": username, "email": format!("{username}@example.com")})),
    )
    .await;
    json_of(r, 201).await
}

async fn password_link_sets_the_password_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = admin_token(&app).await;
    let made = created_without_password(&app, &t, "frank").await;
    assert_eq!(made["password_set"], false);
    let url = made["password_link"]["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&app.url("/password/set?token=")), "{url}");
    // No password works before the link is used.
    assert!(!signs_in(&app, "frank", "").await);
    let shown = json_of(
        call(&app, Method::GET, "/users/frank", Some(&t), None).await,
        200,
    )
    .await;
    assert!(shown["password_link_expires_at"].is_i64(), "{shown}");
    // The token is stored only hashed.
    let raw = url.split("token=").nth(1).unwrap().to_string();
    let stored = app
        .state
        .db
        .with_conn(|c| {
            use diesel::prelude::*;
            sigil::storage::schema::password_links::table
                .select(sigil::storage::schema::password_links::token_hash)
                .load::<String>(c)
                .map_err(sigil::storage::StorageError::from)
        })
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], raw);
    let browser = Browser::new();
    let (token, csrf) = open(&browser, &url).await;
    // Two different passwords: refused, the link still works.
    let (status, html) = submit(&app, &browser, &token, &csrf, CHOSEN, "something else").await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("Nothing was changed"), "{html}");
    // Without the browser's CSRF token: 403.
    let (status, _) = submit(&app, &Browser::new(), &token, &csrf, CHOSEN, CHOSEN).await;
    assert_eq!(status, 403);
    let (status, html) = submit(&app, &browser, &token, &csrf, CHOSEN, CHOSEN).await;
    assert_eq!(status, 200, "{html}");
    assert!(signs_in(&app, "frank", CHOSEN).await);
    let event = audited_by_user(&app, &t, "frank").await;
    assert_eq!(event["actor_name"], "frank");
    // Used: the page and the form both refuse it, and nothing changes.
    assert_eq!(browser.get(&url).await.status(), 400);
    let (status, _) = submit(
        &app,
        &browser,
        &token,
        &csrf,
        "yet another one",
        "yet another one",
    )
    .await;
    assert_eq!(status, 400);
    assert!(signs_in(&app, "frank", CHOSEN).await);
    let shown = json_of(
        call(&app, Method::GET, "/users/frank", Some(&t), None).await,
        200,
    )
    .await;
    assert_eq!(shown["password_set"], true);
    assert!(shown["password_link_expires_at"].is_null(), "{shown}");
    audited(&app, &t, "user.password_link_issued", "frank").await;
}

/// The `user.password_set` event of `username`: by the user, not by the admin client.
async fn audited_by_user(app: &TestApp, token: &str, username: &str) -> Value {
    let page = json_of(
        call(
            app,
            Method::GET,
            &format!("/audit?type=user.password_set&target={username}"),
            Some(token),
            None,
        )
        .await,
        200,
    )
    .await;
    let events = page["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor_kind"], "user");
    events[0].clone()
}

async fn password_links_are_replaced_expire_and_refuse_bad_forms(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = admin_token(&app).await;
    let first = created_without_password(&app, &t, "gina").await["password_link"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        &app,
        Method::POST,
        "/users/gina/password-link",
        Some(&t),
        None,
    )
    .await;
    let second = json_of(r, 201).await["url"].as_str().unwrap().to_string();
    // A new link replaces the old; the CLI's too.
    let browser = Browser::new();
    assert_eq!(browser.get(&first).await.status(), 400);
    open(&browser, &second).await;
    let out = app.sigil(&["user", "password-link", "gina"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third: Value = serde_json::from_slice(&out.stdout).unwrap();
    let third = third["url"].as_str().unwrap().to_string();
    assert_eq!(browser.get(&second).await.status(), 400);
    let (token, csrf) = open(&browser, &third).await;
    // Unknown and malformed tokens: the plain error page.
    for bad in [
        "/password/set",
        "/password/set?token=",
        "/password/set?token=nope",
    ] {
        assert_eq!(browser.get(&app.url(bad)).await.status(), 400, "{bad}");
    }
    let (status, _) = submit(&app, &browser, "nope", &csrf, CHOSEN, CHOSEN).await;
    assert_eq!(status, 400);
    // A password too short: refused in words, the link still works.
    let (status, html) = submit(&app, &browser, &token, &csrf, "short", "short").await;
    assert_eq!(status, 400);
    assert!(html.contains("at least 8"), "{html}");
    // A day later the link has expired: refused, nothing changes.
    app.state.clock.advance(24 * 3600 + 1);
    assert_eq!(browser.get(&third).await.status(), 400);
    let (status, _) = submit(&app, &browser, &token, &csrf, CHOSEN, CHOSEN).await;
    assert_eq!(status, 400);
    assert!(!signs_in(&app, "gina", CHOSEN).await);
    // `sigil user add --no-password` prints a link too.
    let out = app.sigil(&["user", "add", "hank", "--no-password"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hank: Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = hank["password_link"]["url"].as_str().unwrap();
    assert!(url.contains("/password/set?token="), "{hank}");
    // A fresh link works.
    let t = fresh_admin_token(&app, "ops-later").await;
    let r = call(
        &app,
        Method::POST,
        "/users/gina/password-link",
        Some(&t),
        None,
    )
    .await;
    let fourth = json_of(r, 201).await["url"].as_str().unwrap().to_string();
    let (token, csrf) = open(&browser, &fourth).await;
    let (status, _) = submit(&app, &browser, &token, &csrf, CHOSEN, CHOSEN).await;
    assert_eq!(status, 200);
    assert!(signs_in(&app, "gina", CHOSEN).await);
}
