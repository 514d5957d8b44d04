//! Master key rotation: `sigil keys rewrap` re-encrypts every private key, client secret and
//! TOTP secret under a new master key in one transaction, and refuses a bad key file changing nothing.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, verify_with_jwks, Backend, TestApp};
use crate::refresh_and_userinfo::{error_of, refresh};
use crate::two_nodes::start_node;
use sigil::clock::Clock;
use sigil::crypto::master_key::MasterKey;
use sigil::startup::Application;
use sigil::storage::{clients, factors, signing_keys};

both_backends!(
    keys_rewrap_moves_every_secret_to_the_new_master_key,
    keys_rewrap_refuses_a_malformed_key_file_and_changes_nothing,
    keys_rewrap_drops_the_answers_kept_for_the_refresh_grace,
);

/// `sigil keys rewrap --new-master-key-file FILE`, the real binary.
fn rewrap(app: &TestApp, file: &std::path::Path) -> std::process::Output {
    app.sigil(
        &[
            "keys",
            "rewrap",
            "--new-master-key-file",
            file.to_str().unwrap(),
        ],
        None,
    )
}

/// A rewrap that must succeed; what it printed.
fn rewrapped(app: &TestApp, file: &std::path::Path) -> Value {
    let out = rewrap(app, file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every sealed value of the database with what it is bound to, for comparing before and
/// after.
async fn sealed_values(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let keys = app.state.db.run(signing_keys::all).await.unwrap();
    let clients = app.state.db.run(clients::all).await.unwrap();
    let totp = app.state.db.run(factors::all_totp).await.unwrap();
    keys.into_iter()
        .map(|k| (k.kid, k.private_sealed))
        .chain(
            clients
                .into_iter()
                .filter_map(|c| Some((c.client_id, c.secret_sealed?))),
        )
        .chain(
            totp.into_iter()
                .map(|t| (format!("totp:{}", t.user_id), t.secret_sealed)),
        )
        .collect()
}

/// `sigil keys rewrap`: afterwards every private key, client secret and TOTP secret opens
/// under the new master key and none under the old one; a node started with the new key signs
/// tokens that verify, and client secrets still authenticate; a node with the old key no
/// longer starts.
async fn keys_rewrap_moves_every_secret_to_the_new_master_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    app.web_client("public-rp", json!({"token_endpoint_auth_method": "none"}));
    app.add_user("alice");
    let added = app.sigil(&["user", "totp", "add", "alice"], None);
    assert!(added.status.success(), "{added:?}");
    let new_key = MasterKey::generate();
    let file = app.dir.path().join("new.master.key");
    std::fs::write(&file, format!("{}\n", new_key.to_base64())).unwrap();
    let old_key =
        MasterKey::from_base64(app.settings.master_key.as_ref().unwrap().expose()).unwrap();
    let before = sealed_values(&app).await;

    let out = rewrap(&app, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        done,
        json!({"signing_keys": 8, "client_secrets": 1, "totp_secrets": 1, "already_under_new_key": 0, "refresh_answers_dropped": 0})
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_key_file"));

    let after = sealed_values(&app).await;
    assert_eq!(after.len(), before.len());
    for (aad, sealed) in &after {
        assert!(
            old_key.open(sealed, aad.as_bytes()).is_err(),
            "{aad} opens under the old key"
        );
        new_key
            .open(sealed, aad.as_bytes())
            .expect("opens under the new key");
    }
    for ((aad, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(
            old_key.open(old, aad.as_bytes()).unwrap(),
            new_key.open(new, aad.as_bytes()).unwrap(),
            "{aad}: the same plaintext"
        );
    }

    // A node with the new key: tokens sign and verify, the client secret authenticates.
    let mut settings = app.settings.clone();
    settings.master_key = None;
    settings.master_key_file = Some(file.clone());
    let node = start_node(settings, Clock::system());
    let token = node
        .token(&node.endpoint("token_endpoint").await, &id, &secret)
        .await;
    verify_with_jwks(&token, &node.jwks().await, "RS256").unwrap();
    verify_with_jwks(&token, &app.jwks().await, "RS256").unwrap();

    // The old key no longer opens the keys: a node with it does not start.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = Application::build_with(app.settings.clone(), Clock::system(), listener);
    assert!(refused.is_err(), "a node with the old master key started");

    // A second run finds everything already under the new key.
    let again = rewrapped(&app, &file);
    assert_eq!(
        again,
        json!({"signing_keys": 0, "client_secrets": 0, "totp_secrets": 0, "already_under_new_key": 10, "refresh_answers_dropped": 0})
    );
}

async fn keys_rewrap_refuses_a_malformed_key_file_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.cc_client("svc");
    let before = sealed_values(&app).await;
    let current = app
        .settings
        .master_key
        .as_ref()
        .unwrap()
        .expose()
        .to_string();
    let cases = [
        (
            "not-base64.key",
            "this is not a key\n".to_string(),
            "base64",
        ),
        ("short.key", "c2hvcnQ=\n".to_string(), "32 bytes"),
        ("same.key", format!("{current}\n"), "in use"),
    ];
    for (name, content, says) in cases {
        let file = app.dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let out = rewrap(&app, &file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(!stderr.contains(&current), "the key is never printed");
        assert_eq!(sealed_values(&app).await, before, "{name}: nothing changed");
    }
    let missing = app.dir.path().join("missing.key");
    let out = rewrap(&app, &missing);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(sealed_values(&app).await, before);
}

/// A refresh within `tokens.refresh_grace` keeps its answer sealed under the master key; a
/// rewrap drops those answers instead of re-sealing them (they serve only a retry within the
/// grace), and a retry afterwards is refused cleanly, never a 500.
async fn keys_rewrap_drops_the_answers_kept_for_the_refresh_grace(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.tokens.refresh_grace = sigil::config::DurationSetting::from_secs(60)
    })
    .await;
    app.add_user("alice");
    let (id, secret, tokens) = app.user_tokens("rp").await;
    let used = tokens["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(refresh(&app, &id, &secret, &used, None).await.status(), 200);
    let file = app.dir.path().join("new.master.key");
    std::fs::write(&file, MasterKey::generate().to_base64()).unwrap();
    let done = rewrapped(&app, &file);
    assert_eq!(done["refresh_answers_dropped"], 1, "{done}");
    // This node still runs with the old key (in real life the nodes are stopped): the retry
    // within the grace finds no kept answer and is told so like any spent token.
    let r = refresh(&app, &id, &secret, &used, None).await;
    assert_eq!(error_of(r).await, "invalid_grant");
}
