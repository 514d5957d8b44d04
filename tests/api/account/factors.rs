//! Second factors on the account page: an authenticator app set up with a QR code and turned
//! on only by a first code, recovery codes shown once, removal; each change CSRF-bound and
//! re-authenticated like every account change.

use std::time::Duration;

use serde_json::json;
use sigil::config::DurationSetting;

use super::{account_page, post, setup};
use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app_with, Backend, TestApp};
use crate::second_factors::totp_at;

both_backends!(
    an_authenticator_app_is_set_up_by_its_first_code_and_removed,
    thirty_concurrent_set_ups_leave_one_authenticator_app,
    recovery_codes_are_shown_once_and_work_once,
);

/// The text of `<code id="totp-secret">…</code>` on the page.
fn secret_on(html: &str) -> String {
    let start = html
        .find("id=\"totp-secret\">")
        .expect("the TOTP key on the page")
        + 17;
    let end = start + html[start..].find('<').unwrap();
    html[start..end].to_string()
}

/// Signs alice in at the client `id` in a new browser, giving `otp` at the second step;
/// returns the ID token's claims.
async fn sign_in_with(app: &TestApp, id: &str, secret: &str, otp: &str) -> serde_json::Value {
    let b = Browser::new();
    let r = app.start(&b, id, &[]).await;
    let r = app.submit_login(&b, &location(&r), "alice", PASSWORD).await;
    assert_eq!(r.status(), 200, "the second step's page");
    let html = r.text().await.unwrap();
    let r = b
        .post_form(
            &app.url("/login/factor"),
            &[
                ("request", &hidden(&html, "request")),
                ("csrf_token", &hidden(&html, "csrf_token")),
                ("otp", otp),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "the second step");
    let r = app.drive(&b, r, "alice").await;
    let to = location(&r);
    assert!(to.starts_with(REDIRECT), "{to}");
    let r = app
        .exchange(id, secret, &query(&to)["code"], Some(VERIFIER))
        .await;
    let body: serde_json::Value = r.json().await.unwrap();
    jwt_parts(body["id_token"].as_str().unwrap()).1
}

async fn an_authenticator_app_is_set_up_by_its_first_code_and_removed(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let me = Browser::new();
    let html = account_page(&app, &me, PASSWORD).await;
    assert!(html.contains("Set up an authenticator app"), "{html}");
    // Without the CSRF token: 403, nothing started.
    let r = me.post_form(&app.url("/account/totp/start"), &[]).await;
    assert_eq!(r.status(), 403);

    let r = post(&app, &me, "/account/totp/start", &html, &[]).await;
    assert_eq!(query(&location(&r))["done"], "totp-started");
    let page = me.get(&app.url("/account")).await;
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"), "{html}");
    let key = secret_on(&html);
    // Not on yet: signing in is still the password alone.
    let (pwd_only, _) = {
        let b = Browser::new();
        let r = app.start(&b, &id, &[]).await;
        let r = app.drive(&b, r, "alice").await;
        (location(&r), ())
    };
    assert!(pwd_only.starts_with(REDIRECT), "{pwd_only}");
    // A wrong first code leaves it off; the right one turns it on.
    let right = totp_at(&key, app.state.clock.now());
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    let r = post(&app, &me, "/account/totp/confirm", &html, &[("otp", wrong)]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("That code is not right"));
    let r = post(
        &app,
        &me,
        "/account/totp/confirm",
        &html,
        &[("otp", &right)],
    )
    .await;
    assert_eq!(query(&location(&r))["done"], "totp-added");
    let html = me.get(&app.url("/account")).await.text().await.unwrap();
    assert!(html.contains("Remove the authenticator app"), "{html}");
    assert!(
        !html.contains("id=\"totp-secret\""),
        "the key is shown once it is on"
    );

    // The confirming code was spent; the next one signs in with amr otp.
    let next = totp_at(&key, app.state.clock.now() + 30);
    let claims = sign_in_with(&app, &id, &secret, &next).await;
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "mfa");

    // Removed: back to the password alone.
    let r = post(&app, &me, "/account/totp/remove", &html, &[]).await;
    assert_eq!(query(&location(&r))["done"], "totp-removed");
    let b = Browser::new();
    let r = app.start(&b, &id, &[]).await;
    let r = app.submit_login(&b, &location(&r), "alice", PASSWORD).await;
    assert!(
        location(&r).contains("/authorize/resume"),
        "{}",
        location(&r)
    );
}

async fn recovery_codes_are_shown_once_and_work_once(backend: Backend) {
    let (app, id, secret) = setup(backend).await;
    let me = Browser::new();
    let html = account_page(&app, &me, PASSWORD).await;
    let r = post(&app, &me, "/account/recovery-codes", &html, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let list = &html[html.find("id=\"recovery-codes\"").expect("the codes")..];
    let list = &list[..list.find("</ul>").unwrap()];
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .map(|c| c[..c.find('<').unwrap()].to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{list}");
    // Shown on that answer only.
    let again = me.get(&app.url("/account")).await.text().await.unwrap();
    assert!(!again.contains(&codes[0]));
    assert!(again.contains("10 unused"), "{again}");
    // Recovery codes alone make a second step: one works once.
    let claims = sign_in_with(&app, &id, &secret, &codes[0]).await;
    assert_eq!(claims["acr"], "mfa");
    let again = me.get(&app.url("/account")).await.text().await.unwrap();
    assert!(again.contains("9 unused"), "{again}");
}

/// The same signed-in user starting an authenticator app 30 times at once: every request is
/// answered (none fails on the one-factor-per-user key), one factor is left, waiting for its
/// first code, and the key on the page is the one that code must come from.
async fn thirty_concurrent_set_ups_leave_one_authenticator_app(backend: Backend) {
    // Thirty posts share the test's four connections: on a loaded machine the default 2 s wait
    // for one can pass (503, the outage answer), which is not what this test is about.
    let app = spawn_app_with(backend, |s| {
        s.database.acquire_timeout = DurationSetting(Duration::from_secs(30));
    })
    .await;
    let (id, secret) = app.web_client("rp", json!({}));
    app.add_user("alice");
    let me = Browser::new();
    let html = account_page(&app, &me, PASSWORD).await;
    let csrf = hidden(&html, "csrf_token");
    let url = app.url("/account/totp/start");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(30));
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (me, url, csrf, barrier) = (me.clone(), url.clone(), csrf.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = me.post_form(&url, &[("csrf_token", csrf.as_str())]).await;
            (r.status().as_u16(), location(&r))
        }));
    }
    for t in tasks {
        let (status, to) = t.await.unwrap();
        assert_eq!(status, 303, "{to}");
        assert_eq!(query(&to)["done"], "totp-started", "{to}");
    }
    let rows = {
        use diesel::prelude::*;
        use sigil::storage::schema::totp_factors::dsl as t;
        app.state
            .db
            .with_conn(|c| {
                t::totp_factors
                    .select(t::confirmed_at)
                    .load::<Option<i64>>(c)
                    .map_err(sigil::storage::StorageError::from)
            })
            .unwrap()
    };
    assert_eq!(rows, vec![None], "one factor, not on yet");
    // The key shown is the one stored: its first code turns the factor on.
    let html = me.get(&app.url("/account")).await.text().await.unwrap();
    let key = secret_on(&html);
    let r = post(
        &app,
        &me,
        "/account/totp/confirm",
        &html,
        &[("otp", &totp_at(&key, app.state.clock.now()))],
    )
    .await;
    assert_eq!(query(&location(&r))["done"], "totp-added");
    let claims = sign_in_with(
        &app,
        &id,
        &secret,
        &totp_at(&key, app.state.clock.now() + 30),
    )
    .await;
    assert_eq!(claims["acr"], "mfa");
}
