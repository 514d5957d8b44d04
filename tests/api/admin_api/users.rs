//! The admin API's users: search, show, create, update, remove and the account switches, each
//! with its effect, its refusals (nothing changed) and its audit event.

use reqwest::Method;
use serde_json::{json, Value};

use super::{admin_token, audited, call, json_of};
use crate::both_backends;
use crate::flow::{location, Browser, PASSWORD};
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(
    admin_api_creates_searches_shows_updates_and_removes_users,
    admin_api_refuses_bad_user_input_and_changes_nothing,
    admin_api_disabled_user_cannot_sign_in_until_enabled,
    admin_api_reset_factors_removes_totp_recovery_codes_and_passkeys,
    admin_api_unlock_clears_the_sign_in_counter,
    admin_api_thirty_concurrent_identical_creates_make_one_user,
);

async fn user(app: &TestApp, token: &str, username: &str) -> Value {
    json_of(
        call(
            app,
            Method::GET,
            &format!("/users/{username}"),
            Some(token),
            None,
        )
        .await,
        200,
    )
    .await
}

async fn names(app: &TestApp, token: &str, query: &str) -> (Vec<String>, Value) {
    let page = json_of(
        call(
            app,
            Method::GET,
            &format!("/users{query}"),
            Some(token),
            None,
        )
        .await,
        200,
    )
    .await;
    let names = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    (names, page["next"].clone())
}

async fn admin_api_creates_searches_shows_updates_and_removes_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = admin_token(&app).await;
    for (username, email, name) in [
        ("alice", "alice@example.com", "Alice Liddell"),
        ("alfred", "fred@corp.example", "Alfred Pennyworth"),
        ("bob", "bob@example.com", "Robert Alison"),
    ] {
        let r = call(
            &app,
            Method::POST,
            "/users",
            Some(&t),
            Some(json!({"username": username, "email": email, "name": name,
                        "password": PASSWORD, "claims": {"locale": "en-GB"}})),
        )
        .await;
        let made = json_of(r, 201).await;
        assert_eq!(made["username"], username);
        assert_eq!(made["password_set"], true);
        assert!(made["password_link"].is_null(), "{made}");
        assert!(!made.to_string().contains("argon2"), "{made}");
    }
    // Search: username prefix, email or name substring, case-insensitive; keyset pages.
    assert_eq!(names(&app, &t, "").await.0, ["alfred", "alice", "bob"]);
    assert_eq!(names(&app, &t, "?q=AL").await.0, ["alfred", "alice", "bob"]);
    assert_eq!(names(&app, &t, "?q=corp.EX").await.0, ["alfred"]);
    assert_eq!(names(&app, &t, "?q=liddell").await.0, ["alice"]);
    assert_eq!(names(&app, &t, "?q=%25").await.0, Vec::<String>::new());
    let (first, next) = names(&app, &t, "?limit=2").await;
    assert_eq!(first, ["alfred", "alice"]);
    assert_eq!(next, "alice");
    let (rest, next) = names(&app, &t, "?limit=2&after=alice").await;
    assert_eq!((rest, next), (vec!["bob".to_string()], Value::Null));
    // One user's whole picture.
    let alice = user(&app, &t, "alice").await;
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["claims"]["locale"], "en-GB");
    assert_eq!(alice["second_factors"]["totp"], false);
    assert_eq!(alice["sign_in"]["failures"], 0);
    assert_eq!(alice["groups"], json!([]));
    assert_eq!(alice["sessions"], json!([]));
    // She signs in with the password she was given, and the session shows.
    let (id, _) = app.web_client("web", json!({}));
    app.code_for(&Browser::new(), &id, &[]).await;
    let alice = user(&app, &t, "alice").await;
    assert_eq!(alice["sessions"].as_array().unwrap().len(), 1, "{alice}");
    assert_eq!(alice["consents"].as_array().unwrap().len(), 1, "{alice}");
    // Update: fields given replace, null clears, claims merge and null removes one.
    let r = call(
        &app,
        Method::PATCH,
        "/users/alice",
        Some(&t),
        Some(
            json!({"email": "a@new.example", "name": null, "admin": true,
                    "email_verified": true,
                    "claims": {"locale": null, "given_name": "Alice"}}),
        ),
    )
    .await;
    let changed = json_of(r, 200).await;
    assert_eq!(changed["email"], "a@new.example");
    assert_eq!(changed["name"], Value::Null);
    assert_eq!(changed["admin"], true);
    assert_eq!(changed["claims"], json!({"given_name": "Alice"}));
    let shown = user(&app, &t, "alice").await;
    assert_eq!(shown["email"], "a@new.example");
    assert_eq!(shown["email_verified"], true);
    let event = audited(&app, &t, "user.updated", "alice").await;
    assert_eq!(event["details"]["admin"], true);
    audited(&app, &t, "user.created", "bob").await;
    // Remove: gone, and the name is free again.
    let r = call(&app, Method::DELETE, "/users/bob", Some(&t), None).await;
    assert_eq!(r.status(), 204);
    let r = call(&app, Method::GET, "/users/bob", Some(&t), None).await;
    assert_eq!(json_of(r, 404).await["error"], "not_found");
    let r = call(&app, Method::DELETE, "/users/bob", Some(&t), None).await;
    assert_eq!(r.status(), 404);
    audited(&app, &t, "user.removed", "bob").await;
    assert_eq!(names(&app, &t, "").await.0, ["alfred", "alice"]);
}

async fn admin_api_refuses_bad_user_input_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = admin_token(&app).await;
    let made = call(
        &app,
        Method::POST,
        "/users",
        Some(&t),
        Some(json!({"username": "carol", "email": "carol@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(made.status(), 201);
    let before = user(&app, &t, "carol").await;
    for (method, path, body, status) in [
        (
            Method::POST,
            "/users",
            json!({"username": "carol", "password": PASSWORD}),
            409,
        ),
        (
            Method::POST,
            "/users",
            json!({"username": "has space"}),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({"username": "dave", "password": "short"}),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({"username": "dave", "email": "not-an-email"}),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({"username": "dave", "claims": {"role": "x"}}),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({"username": "dave", "surprise": 1}),
            400,
        ),
        (Method::POST, "/users", json!(["dave"]), 400),
        (Method::PATCH, "/users/carol", json!({"email": "nope"}), 400),
        (
            Method::PATCH,
            "/users/carol",
            json!({"claims": {"locale": 5}}),
            400,
        ),
        (
            Method::PATCH,
            "/users/carol",
            json!({"claims": {"custom": "x"}, "name": "C"}),
            400,
        ),
        (
            Method::PATCH,
            "/users/carol",
            json!({"username": "other"}),
            400,
        ),
        (Method::PATCH, "/users/nobody", json!({"name": "N"}), 404),
        (Method::POST, "/users/nobody/disable", json!({}), 404),
        (Method::POST, "/users/nobody/reset-factors", json!({}), 404),
        (Method::POST, "/users/nobody/password-link", json!({}), 404),
    ] {
        let r = call(&app, method.clone(), path, Some(&t), Some(body.clone())).await;
        assert_eq!(r.status(), status, "{method} {path} {body}");
        let err: Value = r.json().await.unwrap();
        assert!(
            err["error"].is_string() && err["error_description"].is_string(),
            "{err}"
        );
    }
    for query in ["?limit=0", "?limit=501", "?surprise=1"] {
        let r = call(&app, Method::GET, &format!("/users{query}"), Some(&t), None).await;
        assert_eq!(r.status(), 400, "{query}");
    }
    assert_eq!(user(&app, &t, "carol").await, before);
    let r = call(&app, Method::GET, "/users/dave", Some(&t), None).await;
    assert_eq!(r.status(), 404);
}

/// The login page's answer to `username` with `password`, from a fresh browser.
async fn sign_in(app: &TestApp, client_id: &str, username: &str, password: &str) -> u16 {
    let browser = Browser::new();
    let r = app.start(&browser, client_id, &[]).await;
    let login = location(&r);
    app.submit_login(&browser, &login, username, password)
        .await
        .status()
        .as_u16()
}

async fn admin_api_disabled_user_cannot_sign_in_until_enabled(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let t = admin_token(&app).await;
    let (id, _) = app.web_client("web", json!({}));
    assert_eq!(sign_in(&app, &id, "alice", PASSWORD).await, 303);
    let r = call(&app, Method::POST, "/users/alice/disable", Some(&t), None).await;
    assert_eq!(json_of(r, 200).await["action"], "disable");
    assert_eq!(user(&app, &t, "alice").await["disabled"], true);
    assert_eq!(sign_in(&app, &id, "alice", PASSWORD).await, 401);
    audited(&app, &t, "user.disabled", "alice").await;
    let r = call(&app, Method::POST, "/users/alice/enable", Some(&t), None).await;
    assert_eq!(json_of(r, 200).await["action"], "enable");
    assert_eq!(sign_in(&app, &id, "alice", PASSWORD).await, 303);
    audited(&app, &t, "user.enabled", "alice").await;
}

async fn admin_api_reset_factors_removes_totp_recovery_codes_and_passkeys(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let t = admin_token(&app).await;
    assert!(app
        .sigil(&["user", "totp", "add", "alice"], None)
        .status
        .success());
    assert!(app
        .sigil(&["user", "recovery-codes", "alice"], None)
        .status
        .success());
    let held = &user(&app, &t, "alice").await["second_factors"];
    assert_eq!(
        (held["totp"].clone(), held["recovery_codes"].clone()),
        (json!(true), json!(10))
    );
    // With TOTP, the right password leads to the second step, not to the client.
    let (id, _) = app.web_client("web", json!({}));
    assert_eq!(sign_in(&app, &id, "alice", PASSWORD).await, 200);
    let r = call(
        &app,
        Method::POST,
        "/users/alice/reset-factors",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        json_of(r, 200).await,
        json!({"totp": true, "recovery_codes": 10, "passkeys": 0})
    );
    let held = &user(&app, &t, "alice").await["second_factors"];
    assert_eq!(held["totp"], false);
    assert_eq!(held["recovery_codes"], 0);
    assert_eq!(sign_in(&app, &id, "alice", PASSWORD).await, 303);
    let event = audited(&app, &t, "user.factors_reset", "alice").await;
    assert_eq!(event["details"]["totp"], true);
}

async fn admin_api_unlock_clears_the_sign_in_counter(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let t = admin_token(&app).await;
    let (id, _) = app.web_client("web", json!({}));
    assert_eq!(sign_in(&app, &id, "alice", "wrong password").await, 401);
    assert_eq!(sign_in(&app, &id, "alice", "wrong again!").await, 401);
    assert_eq!(user(&app, &t, "alice").await["sign_in"]["failures"], 2);
    let r = call(&app, Method::POST, "/users/alice/unlock", Some(&t), None).await;
    assert_eq!(json_of(r, 200).await["action"], "unlock");
    assert_eq!(user(&app, &t, "alice").await["sign_in"]["failures"], 0);
    audited(&app, &t, "user.unlocked", "alice").await;
}

async fn admin_api_thirty_concurrent_identical_creates_make_one_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = admin_token(&app).await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (http, url, t) = (app.http.clone(), app.url("/admin/api/users"), t.clone());
        attempts.spawn(async move {
            let body = json!({"username": "erin", "email": "erin@example.com"});
            let r = http.post(url).bearer_auth(t).json(&body).send().await;
            r.unwrap().status().as_u16()
        });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort();
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
    assert_eq!(names(&app, &t, "?q=erin").await.0, ["erin"]);
    audited(&app, &t, "user.created", "erin").await;
}
