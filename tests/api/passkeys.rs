//! Passkeys (WebAuthn) and SECURITY.md 31: enrolment through `web::passkeys` (the account page
//! that will offer it over HTTP is not built yet), then passwordless sign-in through the login
//! page over real HTTP. The authenticator is a small software one written here — a P-256 key
//! from openssl, `none` attestation, CBOR and authenticator data built by hand, ES256 over
//! authData ‖ SHA-256(clientDataJSON) — independent of Sigil's code and of webauthn-rs.

use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, PASSWORD, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, Backend, TestApp};
use crate::instant;
use sigil::config::Settings;
use sigil::storage::maintenance::{self, Horizon, Limits};
use sigil::storage::users::{self, UserRow};
use sigil::storage::StorageError;
use sigil::web::client_address::ClientAddress;
use sigil::web::passkeys::{self, PasskeyError};

both_backends!(
    passwordless_sign_in_gives_amr_hwk_or_swk_user_mfa_and_acr_phr,
    enrolment_needs_a_resident_key_a_name_and_room_for_it,
    passkeys_are_off_when_the_issuer_is_an_ip_address,
    attack31_wrong_origin_rp_id_or_missing_user_verification_is_refused,
    attack31_a_ceremony_is_used_once_and_only_for_its_user,
    attack31_a_counter_regression_is_logged_and_refused,
    attack31_bogus_or_oversized_bodies_missing_csrf_or_foreign_origin_change_nothing,
    attack31_concurrent_finishes_of_one_ceremony_sign_in_once,
    attack31_refused_passkeys_count_as_failed_sign_ins_of_the_address,
    attack27_ceremonies_are_capped_per_address_and_expire,
);

// ---- A software authenticator -------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// The CBOR (RFC 8949) this authenticator writes.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

fn cbor_head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
    }
}

fn cbor(value: &Cbor) -> Vec<u8> {
    match value {
        Cbor::Int(i) if *i >= 0 => cbor_head(0, *i as u64),
        Cbor::Int(i) => cbor_head(1, (-1 - *i) as u64),
        Cbor::Bytes(b) => [cbor_head(2, b.len() as u64), b.clone()].concat(),
        Cbor::Text(t) => [cbor_head(3, t.len() as u64), t.as_bytes().to_vec()].concat(),
        Cbor::Map(entries) => {
            let mut out = cbor_head(5, entries.len() as u64);
            for (k, v) in entries {
                out.extend(cbor(k));
                out.extend(cbor(v));
            }
            out
        }
    }
}

/// What an answer gets wrong on purpose.
#[derive(Clone, Default)]
struct Quirks {
    /// clientDataJSON's origin instead of the app's.
    origin: Option<String>,
    /// The RP ID whose hash starts authData, instead of the one asked for.
    rp_id: Option<String>,
    /// Leave the UV flag out.
    no_user_verification: bool,
    /// This signature counter instead of the next one.
    counter: Option<u32>,
}

/// A passkey on a software authenticator.
struct SoftKey {
    key: PKey<Private>,
    x: Vec<u8>,
    y: Vec<u8>,
    credential_id: Vec<u8>,
    /// The user handle it was created for (returned when it answers).
    user_handle: Vec<u8>,
    counter: u32,
    /// Backup eligible: a synced passkey (amr `swk`).
    synced: bool,
}

impl SoftKey {
    fn new(synced: bool) -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let mut credential_id = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut credential_id).unwrap();
        Self {
            x: x.to_vec_padded(32).unwrap(),
            y: y.to_vec_padded(32).unwrap(),
            key: PKey::from_ec_key(ec).unwrap(),
            credential_id,
            user_handle: Vec::new(),
            counter: 0,
            synced,
        }
    }

    fn id(&self) -> String {
        b64(&self.credential_id)
    }

    /// RFC 9053 §7.1.1 / WebAuthn L2 §6.5.1.1: the EC2 P-256 public key for ES256.
    fn cose_key(&self) -> Vec<u8> {
        cbor(&Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(self.x.clone())),
            (Cbor::Int(-3), Cbor::Bytes(self.y.clone())),
        ]))
    }

    /// WebAuthn L2 §6.1: rpIdHash ‖ flags ‖ signCount (‖ attested credential data).
    fn auth_data(&self, rp_id: &str, user_verified: bool, attested: bool, counter: u32) -> Vec<u8> {
        let mut flags = 0x01; // UP
        if user_verified {
            flags |= 0x04;
        }
        if self.synced {
            flags |= 0x08; // BE
        }
        let mut data = openssl::sha::sha256(rp_id.as_bytes()).to_vec();
        if attested {
            flags |= 0x40; // AT
        }
        data.push(flags);
        data.extend(counter.to_be_bytes());
        if attested {
            data.extend([0u8; 16]); // AAGUID
            data.extend((self.credential_id.len() as u16).to_be_bytes());
            data.extend(&self.credential_id);
            data.extend(self.cose_key());
        }
        data
    }

    fn client_data(kind: &str, challenge: &Value, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create()` for `options` (`{"publicKey": …}`), at `origin`.
    fn create(&mut self, origin: &str, options: &Value) -> Value {
        let o = &options["publicKey"];
        self.user_handle = unb64(o["user"]["id"].as_str().unwrap());
        let client_data = Self::client_data("webauthn.create", &o["challenge"], origin);
        let auth_data = self.auth_data(o["rp"]["id"].as_str().unwrap(), true, true, self.counter);
        let attestation = cbor(&Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ]));
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        })
    }

    /// `navigator.credentials.get()` for `options`, at `origin`, with `quirks`.
    fn get(&mut self, origin: &str, options: &Value, quirks: &Quirks) -> Value {
        let o = &options["publicKey"];
        self.counter = quirks.counter.unwrap_or(self.counter + 1);
        let origin = quirks.origin.as_deref().unwrap_or(origin);
        let rp_id = quirks
            .rp_id
            .clone()
            .unwrap_or_else(|| o["rpId"].as_str().unwrap().to_string());
        let client_data = Self::client_data("webauthn.get", &o["challenge"], origin);
        let auth_data = self.auth_data(&rp_id, !quirks.no_user_verification, false, self.counter);
        let signed = [
            auth_data.clone(),
            openssl::sha::sha256(&client_data).to_vec(),
        ]
        .concat();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        let signature = signer.sign_oneshot_to_vec(&signed).unwrap();
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&signature),
                "userHandle": b64(&self.user_handle),
            },
            "extensions": {},
        })
    }
}

// ---- The app, enrolment, and the login page's JSON endpoints ------------------------------

/// An app whose issuer is `http://localhost:PORT` (WebAuthn RP IDs are domain names), and
/// every request of the test's browsers made there.
async fn passkey_app(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
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
    let name = name.to_string();
    app.state
        .db
        .run(move |c| users::by_username(c, &name))
        .await
        .unwrap()
        .unwrap()
}

/// Enrols `key` for `user` as the account page will.
async fn enrol(app: &TestApp, user: &UserRow, key: &mut SoftKey) -> passkeys::PasskeyRow {
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
async fn passwordless_code(app: &TestApp, client_id: &str, key: &mut SoftKey) -> String {
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
    // The password still works.
    let code = app.code_for(&browser, &client.0, &[]).await;
    assert!(!code.is_empty());
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

async fn attack31_wrong_origin_rp_id_or_missing_user_verification_is_refused(backend: Backend) {
    let (app, _, mut key, browser, ids) = refusal_setup(backend).await;
    let port = app.settings.issuer.port().unwrap();
    let cases = [
        Quirks {
            origin: Some("https://evil.example".into()),
            ..Quirks::default()
        },
        // The right host on another port is another origin.
        Quirks {
            origin: Some(format!("http://localhost:{}", port + 1)),
            ..Quirks::default()
        },
        Quirks {
            rp_id: Some("evil.example".into()),
            ..Quirks::default()
        },
        Quirks {
            no_user_verification: true,
            ..Quirks::default()
        },
    ];
    for quirks in &cases {
        refused(attempt(&app, &browser, &ids, &mut key, quirks).await).await;
    }
    assert_eq!(count(&app, "sessions"), 0);
    let r = attempt(&app, &browser, &ids, &mut key, &Quirks::default()).await;
    assert_eq!(r.status(), 200);
}

async fn attack31_a_ceremony_is_used_once_and_only_for_its_user(backend: Backend) {
    let (app, alice, mut key, browser, ids) = refusal_setup(backend).await;
    let (request, csrf) = (&ids.0, &ids.1);
    // Replay: the same answer, or a fresh one, to a ceremony already finished.
    let (ceremony, opts) = options(&app, &browser, request, csrf).await;
    let answer = key.get(&app.issuer(), &opts, &Quirks::default());
    let r = finish(&app, &browser, request, csrf, &ceremony, &answer).await;
    assert_eq!(r.status(), 200);
    refused(finish(&app, &browser, request, csrf, &ceremony, &answer).await).await;
    let fresh = key.get(&app.issuer(), &opts, &Quirks::default());
    refused(finish(&app, &browser, request, csrf, &ceremony, &fresh).await).await;

    // A ceremony started for bob (second factor after his password) takes only his passkeys.
    let bob = user(&app, "bob").await;
    let mut bobs = SoftKey::new(false);
    enrol(&app, &bob, &mut bobs).await;
    let (ceremony, opts) = passkeys::start_authentication(&app.state, Some(&bob), &here())
        .await
        .unwrap();
    let allowed = credential_ids(&opts["publicKey"]["allowCredentials"]);
    assert_eq!(allowed, [bobs.id()]);
    let answer = key.get(&app.issuer(), &opts, &Quirks::default());
    refused(finish(&app, &browser, request, csrf, &ceremony, &answer).await).await;
    let (ceremony, opts) = passkeys::start_authentication(&app.state, Some(&bob), &here())
        .await
        .unwrap();
    let answer = key.get(&app.issuer(), &opts, &Quirks::default());
    let r = passkeys::finish_authentication(&app.state, &ceremony, &answer).await;
    assert!(matches!(r, Err(PasskeyError::UnknownCredential)), "{r:?}");
    // Bob's own key answers it, as a second factor.
    let (ceremony, opts) = passkeys::start_authentication(&app.state, Some(&bob), &here())
        .await
        .unwrap();
    let answer = bobs.get(&app.issuer(), &opts, &Quirks::default());
    let used = passkeys::finish_authentication(&app.state, &ceremony, &answer)
        .await
        .unwrap();
    assert_eq!(used.user.id, bob.id);
    assert_eq!(used.method, "hwk");
    assert!(used.user_verified);

    // A registration ceremony is no authentication ceremony.
    let (ceremony, _) = passkeys::start_registration(&app.state, &alice, &here())
        .await
        .unwrap();
    let (_, opts) = options(&app, &browser, request, csrf).await;
    let answer = key.get(&app.issuer(), &opts, &Quirks::default());
    refused(finish(&app, &browser, request, csrf, &ceremony, &answer).await).await;

    // A disabled user's passkey signs no one in.
    let out = app.sigil(&["user", "disable", "alice"], None);
    assert!(out.status.success());
    refused(attempt(&app, &browser, &ids, &mut key, &Quirks::default()).await).await;
}

/// Captures what this thread logs at WARN and above while the guard lives.
fn capture_warnings() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

async fn attack31_a_counter_regression_is_logged_and_refused(backend: Backend) {
    let (app, _, mut key, browser, ids) = refusal_setup(backend).await;
    let counter = |n| Quirks {
        counter: Some(n),
        ..Quirks::default()
    };
    let r = attempt(&app, &browser, &ids, &mut key, &counter(5)).await;
    assert_eq!(r.status(), 200);
    // A lower counter, and the same one: a cloned authenticator?
    refused(attempt(&app, &browser, &ids, &mut key, &counter(3)).await).await;
    refused(attempt(&app, &browser, &ids, &mut key, &counter(5)).await).await;

    // Called here, its WARN line can be read: the credential id, and no secret.
    let (logged, guard) = capture_warnings();
    let (ceremony, opts) = passkeys::start_authentication(&app.state, None, &here())
        .await
        .unwrap();
    let answer = key.get(&app.issuer(), &opts, &counter(4));
    let r = passkeys::finish_authentication(&app.state, &ceremony, &answer).await;
    assert!(matches!(r, Err(PasskeyError::CounterRegression)), "{r:?}");
    drop(guard);
    let text = String::from_utf8(logged.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains(&key.id()), "{text}");
    let signature = answer["response"]["signature"].as_str().unwrap();
    assert!(
        !text.contains(signature) && !text.contains(&ceremony),
        "{text}"
    );

    // The stored counter did not move back; a higher one signs in.
    let held = passkeys::list(&app.state, &key_owner(&app, &key).await)
        .await
        .unwrap();
    assert_eq!(held[0].sign_count, 5);
    let r = attempt(&app, &browser, &ids, &mut key, &counter(6)).await;
    assert_eq!(r.status(), 200);
}

async fn key_owner(app: &TestApp, key: &SoftKey) -> String {
    use sigil::storage::passkeys::by_credential_id;
    let id = key.id();
    app.state
        .db
        .run(move |c| by_credential_id(c, &id))
        .await
        .unwrap()
        .unwrap()
        .user_id
}

async fn attack31_bogus_or_oversized_bodies_missing_csrf_or_foreign_origin_change_nothing(
    backend: Backend,
) {
    let (app, _, mut key, browser, ids) = refusal_setup(backend).await;
    let (request, csrf) = (ids.0.as_str(), ids.1.as_str());
    let (ceremony, opts) = options(&app, &browser, request, csrf).await;
    let answer = key.get(&app.issuer(), &opts, &Quirks::default());
    let url = app.url("/login/passkey");
    let good = finish_body(request, csrf, &ceremony, &answer);
    let send = |body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let mut r = browser
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body);
        for (name, value) in headers {
            r = r.header(name, value);
        }
        r.send()
    };
    let same = || vec![("Origin", "null".to_string())];
    // Not JSON, JSON of the wrong shape, a credential that is not a WebAuthn answer.
    for (body, status) in [
        (b"request=x&csrf_token=y".to_vec(), 400),
        (b"{}".to_vec(), 400),
        (br#"{"request": 1}"#.to_vec(), 400),
    ] {
        let r = send(body, same()).await.unwrap();
        assert_eq!(r.status(), status);
    }
    let mut bogus = good.clone();
    bogus["credential"] = json!({"id": "AAAA", "response": "nope"});
    bogus["ceremony"] = json!("unknown");
    refused(send(bogus.to_string().into_bytes(), same()).await.unwrap()).await;
    // Over http.max_body_bytes (16 KiB): refused before anything reads it.
    let mut huge = good.clone();
    huge["credential"]["extensions"] = json!({"padding": "x".repeat(20_000)});
    let r = send(huge.to_string().into_bytes(), same()).await.unwrap();
    assert_eq!(r.status(), 413);
    // Without the CSRF token, with another browser's, from another site: 403.
    let other = Browser::new();
    let (_, other_csrf) = login_page(&app, &other, "rp").await;
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("csrf_token");
    let mut foreign_token = good.clone();
    foreign_token["csrf_token"] = json!(other_csrf);
    for (body, headers) in [
        (missing, same()),
        (foreign_token, same()),
        (
            good.clone(),
            vec![("Origin", "https://evil.example".to_string())],
        ),
        (
            good.clone(),
            vec![("Sec-Fetch-Site", "cross-site".to_string())],
        ),
    ] {
        let r = send(body.to_string().into_bytes(), headers).await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("set-cookie").is_none());
    }
    // The options too.
    let r = browser
        .http
        .post(app.url("/login/passkey/options"))
        .header("Origin", "https://evil.example")
        .json(&json!({"request": request, "csrf_token": csrf}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Another browser's parked request.
    let mut not_mine = good.clone();
    not_mine["request"] = json!(login_page(&app, &other, "rp").await.0);
    let r = send(not_mine.to_string().into_bytes(), same())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // None of it signed in, nor used the ceremony.
    assert_eq!(count(&app, "sessions"), 0);
    let r = send(good.to_string().into_bytes(), same()).await.unwrap();
    assert_eq!(r.status(), 200);
}

async fn attack31_concurrent_finishes_of_one_ceremony_sign_in_once(backend: Backend) {
    let (app, _, mut key, browser, ids) = refusal_setup(backend).await;
    let (ceremony, opts) = options(&app, &browser, &ids.0, &ids.1).await;
    let answer = key.get(&app.issuer(), &opts, &Quirks::default());
    let body = finish_body(&ids.0, &ids.1, &ceremony, &answer).to_string();
    let cookie = format!("sigil_csrf={}", ids.1);
    let requests = (0..30)
        .map(|_| {
            instant::request(
                "POST",
                &app.url("/login/passkey"),
                &[
                    ("Content-Type", "application/json"),
                    ("Cookie", &cookie),
                    ("Origin", "null"),
                ],
                &body,
            )
        })
        .collect();
    let host = app.address.trim_start_matches("http://").to_string();
    let answers = instant::fire(&host, requests).await;
    let statuses = instant::by_status(&answers);
    assert_eq!(statuses.get(&200), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get(&401), Some(&29), "{statuses:?}");
    assert_eq!(count(&app, "sessions"), 1);
}

async fn attack31_refused_passkeys_count_as_failed_sign_ins_of_the_address(backend: Backend) {
    let (app, _, mut key, browser, ids) =
        at_the_login_page(backend, |s| s.login.max_failures = 2).await;
    let wrong = Quirks {
        origin: Some("https://evil.example".into()),
        ..Quirks::default()
    };
    for _ in 0..2 {
        refused(attempt(&app, &browser, &ids, &mut key, &wrong).await).await;
    }
    // The address is locked: even the right passkey waits, and so does the password form.
    let r = attempt(&app, &browser, &ids, &mut key, &Quirks::default()).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let login = location(&app.start(&browser, "rp", &[]).await);
    let r = app.submit_login(&browser, &login, "alice", PASSWORD).await;
    assert_eq!(r.status(), 429);
}

async fn attack27_ceremonies_are_capped_per_address_and_expire(backend: Backend) {
    let (app, _, mut key, browser, ids) =
        at_the_login_page(backend, |s| s.login.max_parked_per_address = 3).await;
    let mut started = Vec::new();
    for _ in 0..5 {
        started.push(options(&app, &browser, &ids.0, &ids.1).await);
        // Ceremonies are ordered by when they expire: one a second keeps the order plain.
        app.state.clock.advance(1);
    }
    assert_eq!(count(&app, "webauthn_ceremonies"), 3);
    // The oldest gave way; the newest works.
    let (oldest, opts) = &started[0];
    let answer = key.get(&app.issuer(), opts, &Quirks::default());
    refused(finish(&app, &browser, &ids.0, &ids.1, oldest, &answer).await).await;
    let (newest, opts) = &started[4];
    let answer = key.get(&app.issuer(), opts, &Quirks::default());
    let r = finish(&app, &browser, &ids.0, &ids.1, newest, &answer).await;
    assert_eq!(r.status(), 200);

    // Five minutes later a ceremony is over, and the purge takes what is left.
    let (late, opts) = options(&app, &browser, &ids.0, &ids.1).await;
    app.state.clock.advance(passkeys::CEREMONY_TTL);
    let answer = key.get(&app.issuer(), &opts, &Quirks::default());
    refused(finish(&app, &browser, &ids.0, &ids.1, &late, &answer).await).await;
    assert!(count(&app, "webauthn_ceremonies") > 0);
    let now = app.state.clock.now();
    maintenance::run(
        &app.state.db,
        || Horizon {
            now,
            idle_timeout: 3600,
        },
        Limits {
            batch_size: 100,
            max_batches: 10,
        },
        |_| true,
    );
    assert_eq!(count(&app, "webauthn_ceremonies"), 0);
}
