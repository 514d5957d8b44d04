//! Passkeys (WebAuthn): enrolment through `web::passkeys` (over HTTP on the account page in
//! `account`), then passwordless sign-in through the login page over real
//! HTTP, with the software authenticator of `authenticator`. The attacks of SECURITY.md 31 are
//! in `attacks`.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, Backend, TestApp};
use authenticator::{Quirks, SoftKey};
use sigil::config::Settings;
use sigil::storage::passkeys as passkeys_store;
use sigil::storage::users::{self, UserRow};
use sigil::storage::StorageError;
use sigil::web::client_address::ClientAddress;
use sigil::web::passkeys::{self, PasskeyError};

mod account;
mod attacks;
pub(crate) mod authenticator;
mod second_step;

both_backends!(
    passwordless_sign_in_gives_amr_hwk_or_swk_user_mfa_and_acr_phr,
    enrolment_needs_a_resident_key_a_name_and_room_for_it,
    passkeys_are_off_when_the_issuer_is_an_ip_address,
);

/// An app whose issuer is `http://localhost:PORT` (WebAuthn RP IDs are domain names), and
/// every request of the test's browsers made there.
pub(crate) async fn passkey_app(
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut app = spawn_app_with(backend, |s| {
        let port = s.bind.rsplit(':').next().unwrap().to_string();
        s.issuer = url::Url::parse(&format!("http://localhost:{port}")).unwrap();
        configure(s);
    })
    .await;
    app.address = app.issuer();
    app
}

fn here() -> ClientAddress {
    ClientAddress {
        ip: [127, 0, 0, 1].into(),
        proto: None,
    }
}

async fn user(app: &TestApp, name: &str) -> UserRow {
    app.add_user(name);
    existing_user(app, name).await
}

/// The stored row of the user `name`.
pub(crate) async fn existing_user(app: &TestApp, name: &str) -> UserRow {
    let name = name.to_string();
    app.state
        .db
        .run(move |c| users::by_username(c, &name))
        .await
        .unwrap()
        .unwrap()
}

/// Enrols `key` for `user` as the account page will.
pub(crate) async fn enrol(
    app: &TestApp,
    user: &UserRow,
    key: &mut SoftKey,
) -> passkeys::PasskeyRow {
    let (ceremony, options) = passkeys::start_registration(&app.state, user, &here())
        .await
        .unwrap();
    let credential = key.create(&app.issuer(), &options);
    passkeys::finish_registration(&app.state, user, &ceremony, "Laptop", &credential)
        .await
        .unwrap()
}

/// A fresh authorization request in `browser` at its login page: (request id, CSRF token).
async fn login_page(app: &TestApp, browser: &Browser, client_id: &str) -> (String, String) {
    let (_, html) = login_page_and_policy(app, browser, client_id).await;
    (hidden(&html, "request"), hidden(&html, "csrf_token"))
}

/// The login page of a fresh authorization request in `browser`: (its CSP, its HTML).
async fn login_page_and_policy(
    app: &TestApp,
    browser: &Browser,
    client_id: &str,
) -> (String, String) {
    let r = app.start(browser, client_id, &[]).await;
    let page = browser.get(&location(&r)).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    (csp, page.text().await.unwrap())
}

/// A JSON POST as the login page's script sends it (same origin; `no-referrer` makes the
/// browser send `Origin: null`).
async fn post_json(
    app: &TestApp,
    browser: &Browser,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    browser
        .http
        .post(app.url(path))
        .header("Origin", "null")
        .header("Sec-Fetch-Site", "same-origin")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `POST /login/passkey/options`: (ceremony id, options).
async fn options(app: &TestApp, browser: &Browser, request: &str, csrf: &str) -> (String, Value) {
    let r = post_json(
        app,
        browser,
        "/login/passkey/options",
        &json!({"request": request, "csrf_token": csrf}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    (
        body["ceremony"].as_str().unwrap().to_string(),
        body["options"].clone(),
    )
}

fn finish_body(request: &str, csrf: &str, ceremony: &str, credential: &Value) -> Value {
    json!({"request": request, "csrf_token": csrf, "ceremony": ceremony, "credential": credential})
}

/// `POST /login/passkey`.
async fn finish(
    app: &TestApp,
    browser: &Browser,
    request: &str,
    csrf: &str,
    ceremony: &str,
    credential: &Value,
) -> reqwest::Response {
    let body = finish_body(request, csrf, ceremony, credential);
    post_json(app, browser, "/login/passkey", &body).await
}

/// One whole attempt at the login page: options, `key`'s answer with `quirks`, finish.
async fn attempt(
    app: &TestApp,
    browser: &Browser,
    ids: &(String, String),
    key: &mut SoftKey,
    quirks: &Quirks,
) -> reqwest::Response {
    let (ceremony, opts) = options(app, browser, &ids.0, &ids.1).await;
    let answer = key.get(&app.issuer(), &opts, quirks);
    finish(app, browser, &ids.0, &ids.1, &ceremony, &answer).await
}

/// The ids of a list of `PublicKeyCredentialDescriptor`s.
fn credential_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

async fn refused(r: reqwest::Response) {
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"error": "passkey_refused"}));
}

fn count(app: &TestApp, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    app.state
        .db
        .with_conn(|c| {
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<N>(c)
                .map_err(StorageError::from)
        })
        .unwrap()
        .n
}

/// The claims of the ID token for `code`.
async fn id_token(app: &TestApp, client: &(String, String), code: &str) -> Value {
    let r = app
        .exchange(&client.0, &client.1, code, Some(VERIFIER))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    jwt_parts(body["id_token"].as_str().unwrap()).1
}

/// Signs in with `key` at the login page of a new request and follows the flow to the code.
pub(crate) async fn passwordless_code(app: &TestApp, client_id: &str, key: &mut SoftKey) -> String {
    let browser = Browser::new();
    let ids = login_page(app, &browser, client_id).await;
    let r = attempt(app, &browser, &ids, key, &Quirks::default()).await;
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(cookies.iter().any(|c| c.starts_with("sigil_session=")));
    assert!(cookies.iter().any(|c| c.starts_with("sigil_device=")));
    let body: Value = r.json().await.unwrap();
    let to = body["location"].as_str().unwrap().to_string();
    let resume = format!("{}/authorize/resume?request={}", app.issuer(), ids.0);
    assert_eq!(to, resume);
    // The browser goes there; no password is asked for (`drive` would give one at a login
    // page, and the amr would say so).
    let r = app.drive(&browser, browser.get(&to).await, "nobody").await;
    query(&location(&r))["code"].clone()
}

/// [`at_the_login_page`] with a roomy failure limit.
async fn refusal_setup(backend: Backend) -> (TestApp, UserRow, SoftKey, Browser, (String, String)) {
    at_the_login_page(backend, |s| s.login.max_failures = 100).await
}

/// An app configured by `configure`, a client, alice with one passkey, and a browser at the
/// login page: (app, alice, her key, the browser, (request id, CSRF token)).
async fn at_the_login_page(
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, UserRow, SoftKey, Browser, (String, String)) {
    let app = passkey_app(backend, configure).await;
    let (id, _) = app.web_client("rp", json!({}));
    let alice = user(&app, "alice").await;
    let mut key = SoftKey::new(false);
    enrol(&app, &alice, &mut key).await;
    let browser = Browser::new();
    let ids = login_page(&app, &browser, &id).await;
    (app, alice, key, browser, ids)
}

// ---- The tests -----------------------------------------------------------------------------

async fn passwordless_sign_in_gives_amr_hwk_or_swk_user_mfa_and_acr_phr(backend: Backend) {
    let app = passkey_app(backend, |_| {}).await;
    let client = app.web_client("rp", json!({}));
    let alice = user(&app, "alice").await;
    let mut key = SoftKey::new(false);
    let row = enrol(&app, &alice, &mut key).await;
    assert_eq!(row.credential_id, key.id());
    assert!(!row.backup_eligible);

    // The login page offers the button, with its script from Sigil and nothing inline.
    let browser = Browser::new();
    let (csp, html) = login_page_and_policy(&app, &browser, &client.0).await;
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    assert!(
        !csp.contains("unsafe") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(html.contains("Sign in with a passkey"));
    assert!(html.contains(r#"<script src="/static/passkey.js" defer></script>"#));
    let script = browser.get(&app.url("/static/passkey.js")).await;
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script
        .text()
        .await
        .unwrap()
        .contains("navigator.credentials.get"));

    // Discoverable: no allowCredentials, user verification required.
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    let (_, opts) = options(&app, &browser, &request, &csrf).await;
    assert_eq!(opts["publicKey"]["userVerification"], "required");
    assert_eq!(opts["publicKey"]["rpId"], "localhost");
    assert!(opts["publicKey"]["allowCredentials"]
        .as_array()
        .is_none_or(|a| a.is_empty()));

    let code = passwordless_code(&app, &client.0, &mut key).await;
    let claims = id_token(&app, &client, &code).await;
    assert_eq!(claims["sub"], alice.id);
    assert_eq!(claims["amr"], json!(["hwk", "user", "mfa"]));
    assert_eq!(claims["acr"], "phr");
    let held = passkeys::list(&app.state, &alice.id).await.unwrap();
    assert_eq!(held[0].sign_count, 1);
    assert!(held[0].last_used_at.is_some());

    // A synced passkey (backup eligible) is a software key.
    let bob = user(&app, "bob").await;
    let mut synced = SoftKey::new(true);
    assert!(enrol(&app, &bob, &mut synced).await.backup_eligible);
    let code = passwordless_code(&app, &client.0, &mut synced).await;
    let claims = id_token(&app, &client, &code).await;
    assert_eq!(claims["sub"], bob.id);
    assert_eq!(claims["amr"], json!(["swk", "user", "mfa"]));
    assert_eq!(claims["acr"], "phr");
}

async fn enrolment_needs_a_resident_key_a_name_and_room_for_it(backend: Backend) {
    let app = passkey_app(backend, |_| {}).await;
    let alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let (ceremony, options) = passkeys::start_registration(&app.state, &alice, &here())
        .await
        .unwrap();
    let o = &options["publicKey"];
    assert_eq!(o["rp"]["id"], "localhost");
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(o["authenticatorSelection"]["requireResidentKey"], true);
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    let mut key = SoftKey::new(false);
    let credential = key.create(&app.issuer(), &options);

    // A bad name is refused before the ceremony is used; so is another user.
    for name in ["", "   ", &"x".repeat(65), "tab\there"] {
        let r = passkeys::finish_registration(&app.state, &alice, &ceremony, name, &credential);
        assert!(
            matches!(r.await, Err(PasskeyError::InvalidName)),
            "{name:?}"
        );
    }
    let r = passkeys::finish_registration(&app.state, &bob, &ceremony, "Mine", &credential);
    assert!(matches!(r.await, Err(PasskeyError::UnknownCeremony)));
    // Bob's attempt used the ceremony up.
    let r = passkeys::finish_registration(&app.state, &alice, &ceremony, "Laptop", &credential);
    assert!(matches!(r.await, Err(PasskeyError::UnknownCeremony)));

    let first = enrol(&app, &alice, &mut key).await;
    assert_eq!(first.name, "Laptop");
    // Registered keys are excluded from the next enrolment, and cannot be added twice.
    let (ceremony, options) = passkeys::start_registration(&app.state, &alice, &here())
        .await
        .unwrap();
    let excluded = credential_ids(&options["publicKey"]["excludeCredentials"]);
    assert_eq!(excluded, [key.id()]);
    let again = key.create(&app.issuer(), &options);
    let r = passkeys::finish_registration(&app.state, &alice, &ceremony, "Again", &again);
    assert!(r.await.is_err());
    // The wrong origin is refused at enrolment too.
    let (ceremony, options) = passkeys::start_registration(&app.state, &alice, &here())
        .await
        .unwrap();
    let phished = SoftKey::new(false).create("http://evil.example", &options);
    let r = passkeys::finish_registration(&app.state, &alice, &ceremony, "Phished", &phished);
    assert!(matches!(r.await, Err(PasskeyError::Refused(_))));

    // At most ten.
    for _ in 1..10 {
        enrol(&app, &alice, &mut SoftKey::new(false)).await;
    }
    let (ceremony, options) = passkeys::start_registration(&app.state, &alice, &here())
        .await
        .unwrap();
    let eleventh = SoftKey::new(false).create(&app.issuer(), &options);
    let r = passkeys::finish_registration(&app.state, &alice, &ceremony, "11", &eleventh);
    assert!(matches!(r.await, Err(PasskeyError::TooMany)));
    assert_eq!(
        passkeys::list(&app.state, &alice.id).await.unwrap().len(),
        10
    );

    // Removal: only by its owner, once.
    assert!(!passkeys::remove(&app.state, &bob.id, &first.credential_id)
        .await
        .unwrap());
    assert!(
        passkeys::remove(&app.state, &alice.id, &first.credential_id)
            .await
            .unwrap()
    );
    assert!(
        !passkeys::remove(&app.state, &alice.id, &first.credential_id)
            .await
            .unwrap()
    );
    assert_eq!(
        passkeys::list(&app.state, &alice.id).await.unwrap().len(),
        9
    );
}

async fn passkeys_are_off_when_the_issuer_is_an_ip_address(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.web_client("rp", json!({}));
    let alice = user(&app, "alice").await;
    let r = passkeys::start_registration(&app.state, &alice, &here()).await;
    assert!(matches!(r, Err(PasskeyError::Unavailable)));
    let browser = Browser::new();
    let (csp, html) = login_page_and_policy(&app, &browser, &client.0).await;
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(!html.contains("passkey"));
    let body =
        json!({"request": hidden(&html, "request"), "csrf_token": hidden(&html, "csrf_token")});
    let r = post_json(&app, &browser, "/login/passkey/options", &body).await;
    assert_eq!(r.status(), 404);
    // The password still works — also for a user who enrolled a passkey while the issuer was a
    // domain name: a factor Sigil cannot use now does not send them to an empty second step.
    let row = passkeys_store::PasskeyRow {
        credential_id: "AAAA".into(),
        user_id: alice.id.clone(),
        name: "Laptop".into(),
        credential: "{}".into(),
        backup_eligible: false,
        sign_count: 0,
        created_at: 0,
        last_used_at: None,
    };
    let added = app
        .state
        .db
        .run(move |c| passkeys_store::insert_limited(c, &row, 10))
        .await
        .unwrap();
    assert_eq!(added, passkeys_store::Added::Yes);
    let code = app.code_for(&browser, &client.0, &[]).await;
    assert!(!code.is_empty());
}
