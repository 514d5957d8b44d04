//! SECURITY.md 31 (and 27) at the login page's passkey endpoints: origin, RP ID and user
//! verification checked; a ceremony answered once, and only by its user's passkey; a counter
//! that goes back logged and refused; forged or oversized requests refused before anything
//! changes; refusals counted on the client address; ceremonies capped and purged.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::authenticator::{Quirks, SoftKey};
use super::{
    at_the_login_page, attempt, count, credential_ids, enrol, finish, finish_body, here,
    login_page, options, refusal_setup, refused, user,
};
use crate::both_backends;
use crate::flow::{location, Browser, PASSWORD};
use crate::helpers::{Backend, TestApp};
use crate::instant;
use sigil::storage::maintenance::{self, Horizon, Limits};
use sigil::web::passkeys::{self, PasskeyError};

both_backends!(
    attack31_wrong_origin_rp_id_or_missing_user_verification_is_refused,
    attack31_a_ceremony_is_used_once_and_only_for_its_user,
    attack31_a_counter_regression_is_logged_and_refused,
    attack31_bogus_or_oversized_bodies_missing_csrf_or_foreign_origin_change_nothing,
    attack31_concurrent_finishes_of_one_ceremony_sign_in_once,
    attack31_refused_passkeys_count_as_failed_sign_ins_of_the_address,
    attack27_ceremonies_are_capped_per_address_and_expire,
);

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
            audit_retention: 90 * 86_400,
        },
        Limits {
            batch_size: 100,
            max_batches: 10,
        },
        |_| true,
    );
    assert_eq!(count(&app, "webauthn_ceremonies"), 0);
}
