//! The admin console in headless Chromium: an admin signs in with password and TOTP, creates a
//! user and a client, gives the client a new secret, rotates the keys (refused while the next
//! keys are too new, then forced as the deliberate second step), unlocks a locked user, and
//! finds each of those in the audit log. A screenshot of every page goes to
//! `target/test-output/console-*.png`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{tool, Browser};
use crate::both_backends;
use crate::flow::{location, Browser as Http, PASSWORD};
use crate::helpers::{spawn_app, Backend, TestApp};
use crate::second_factors::totp_at;

both_backends!(an_admin_runs_sigil_from_the_console_in_headless_chromium);

fn shot(backend: Backend, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
    std::fs::create_dir_all(&dir).expect("create target/test-output");
    let suffix = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "-postgres",
    };
    dir.join(format!("console-{name}{suffix}.png"))
}

/// The whole page (not just the window) into `console-NAME.png`.
async fn page_shot(browser: &Browser, backend: Backend, name: &str) {
    browser
        .element_screenshot("body", &shot(backend, name))
        .await;
}

/// Five wrong passwords for `username` at `client_id`: the account is locked.
async fn lock(app: &TestApp, client_id: &str, username: &str) {
    for _ in 0..5 {
        let b = Http::new();
        let r = app.start(&b, client_id, &[]).await;
        app.submit_login(&b, &location(&r), username, "not the password")
            .await;
    }
}

async fn an_admin_runs_sigil_from_the_console_in_headless_chromium(backend: Backend) {
    let chromium = tool("SIGIL_TEST_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = tool("SIGIL_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let app = spawn_app(backend).await;
    let out = app.sigil(
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(out.status.success());
    let totp = app.add_totp("root");
    app.add_user("alice");
    let (rp, _) = app.web_client("rp", json!({}));
    let browser = Browser::start(&chromedriver, &chromium).await;
    let base = app.address.clone();

    // Signing in: the console sends the browser to Sigil's login, then the TOTP step.
    browser.go(&app.url("/admin/")).await;
    browser
        .wait_for_url(|u| u.starts_with(&format!("{base}/login?")))
        .await;
    let username = browser.find("input[name=username]").await;
    let password = browser.find("input[name=password]").await;
    browser.type_into(&username, "root").await;
    browser.type_into(&password, PASSWORD).await;
    browser.click("form button[type=submit]").await;
    let otp = browser.find("input[name=otp]").await;
    browser.type_into(&otp, &totp_at(&totp, app.now())).await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_url(|u| u == app.url("/admin/")).await;
    assert_eq!(browser.text("#admin-name").await, "root");
    page_shot(&browser, backend, "01-overview").await;

    // A user, created without a password: the link is shown once.
    browser.go(&app.url("/admin/users")).await;
    page_shot(&browser, backend, "02-users").await;
    let name = browser.find("#new-username").await;
    browser.type_into(&name, "dave").await;
    let email = browser.find("#new-email").await;
    browser.type_into(&email, "dave@example.com").await;
    browser.click("#create-user").await;
    let link = browser.text("#password-link").await;
    assert!(
        link.starts_with(&format!("{}/password/set?token=", app.issuer())),
        "{link}"
    );
    page_shot(&browser, backend, "03-user-created").await;

    // A client from the form; its secret shown once, then a new one.
    browser.go(&app.url("/admin/clients")).await;
    page_shot(&browser, backend, "04-clients").await;
    for (id, text) in [
        ("#client_id", "shop"),
        ("#client_name", "The Shop"),
        ("#redirect_uris", "https://shop.example/callback"),
    ] {
        let field = browser.find(id).await;
        browser.type_into(&field, text).await;
    }
    browser.click("#register-client").await;
    let first = browser.text("#client-secret").await;
    assert!(first.len() >= 43, "{first}");
    page_shot(&browser, backend, "05-client-created").await;
    browser.click("#rotate-secret").await;
    // The page that answers the rotation, not the one it replaces, which has a notice too.
    browser
        .wait_for_text("#notice", |t| t.contains("new secret"))
        .await;
    let second = browser.text("#client-secret").await;
    assert_ne!(first, second, "a new secret");
    page_shot(&browser, backend, "06-client-secret-rotated").await;

    // Keys: refused while the next keys are too new; forcing is a second, deliberate step.
    browser.go(&app.url("/admin/keys")).await;
    page_shot(&browser, backend, "07-keys").await;
    browser.click("#rotate").await;
    browser.find("#too-early").await;
    assert!(browser
        .text("#error")
        .await
        .contains("not been published long enough"));
    page_shot(&browser, backend, "08-keys-rotation-too-early").await;
    browser.click("#force-rotate").await;
    browser
        .wait_for_url(|u| u.contains("done=keys-rotated"))
        .await;

    // A locked user, unlocked.
    lock(&app, &rp, "alice").await;
    browser
        .go(&app.url("/admin/users/view?username=alice"))
        .await;
    assert!(browser
        .text("#sign-in-state")
        .await
        .starts_with("Locked until"));
    page_shot(&browser, backend, "09-user-locked").await;
    browser.click("#unlock").await;
    browser
        .wait_for_url(|u| u.contains("done=user-unlocked"))
        .await;
    assert!(browser.text("#sign-in-state").await.contains("not locked"));

    // The other pages, for the record.
    for (path, name) in [
        ("/admin/groups", "10-groups"),
        ("/admin/sessions", "11-sessions"),
        ("/admin/resources", "12-resources"),
    ] {
        browser.go(&app.url(path)).await;
        page_shot(&browser, backend, name).await;
    }

    // Each of those changes in the audit log, by root.
    browser.go(&app.url("/admin/audit")).await;
    let log = browser.text("table").await;
    for (kind, target) in [
        ("user.created", "dave"),
        ("client.added", "shop"),
        ("client.secret_rotated", "shop"),
        ("keys.rotated", ""),
        ("user.unlocked", "alice"),
    ] {
        let row = log
            .lines()
            .find(|l| l.contains(kind) && l.contains(target))
            .unwrap_or_else(|| panic!("no {kind} {target} in the audit log:\n{log}"));
        assert!(row.contains("root"), "{row}");
    }
    page_shot(&browser, backend, "13-audit-log").await;
    browser
        .go(&app.url("/admin/audit?type=client.secret_rotated"))
        .await;
    let filtered = browser.text("table").await;
    assert!(
        filtered.contains("shop") && !filtered.contains("user.created"),
        "{filtered}"
    );
}
