//! The admin API's clients: register, list, show, replace the metadata, rotate the secret,
//! remove — with their effect on the token endpoint, refusals that change nothing, and audit
//! events.

use reqwest::Method;
use serde_json::{json, Value};

use super::{admin_token, audited, call, json_of};
use crate::both_backends;
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(admin_api_manages_clients_and_rotates_their_secrets);

/// The status of a client_credentials token request with this secret.
async fn token_status(app: &TestApp, id: &str, secret: &str) -> u16 {
    app.token_basic(id, secret, &[("grant_type", "client_credentials")])
        .await
        .status()
        .as_u16()
}

async fn admin_api_manages_clients_and_rotates_their_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = admin_token(&app).await;
    let metadata = json!({"client_name": "Batch", "grant_types": ["client_credentials"],
                          "scope": "reports:read"});
    let r = call(
        &app,
        Method::POST,
        "/clients?client_id=batch",
        Some(&t),
        Some(metadata.clone()),
    )
    .await;
    let made = json_of(r, 201).await;
    assert_eq!(made["client_id"], "batch");
    let secret = made["client_secret"].as_str().unwrap().to_string();
    assert_eq!(token_status(&app, "batch", &secret).await, 200);
    audited(&app, &t, "client.added", "batch").await;
    // The same id again: 409; bad metadata: 400 with the RFC 7591 code; nothing registered.
    let r = call(
        &app,
        Method::POST,
        "/clients?client_id=batch",
        Some(&t),
        Some(metadata.clone()),
    )
    .await;
    assert_eq!(json_of(r, 409).await["error"], "conflict");
    let bad = json!({"redirect_uris": ["https://app.example/cb#fragment"]});
    let r = call(
        &app,
        Method::POST,
        "/clients?client_id=other",
        Some(&t),
        Some(bad.clone()),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = call(&app, Method::GET, "/clients/other", Some(&t), None).await;
    assert_eq!(r.status(), 404);
    // List and show, never with a secret.
    let list = json_of(
        call(&app, Method::GET, "/clients", Some(&t), None).await,
        200,
    )
    .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"batch") && ids.contains(&"ops"), "{ids:?}");
    assert!(!list.to_string().contains(&secret));
    let shown = json_of(
        call(&app, Method::GET, "/clients/batch", Some(&t), None).await,
        200,
    )
    .await;
    assert_eq!(shown["client_name"], "Batch");
    assert!(shown.get("client_secret").is_none(), "{shown}");
    // Replace the metadata: checked as at registration; a bad one changes nothing.
    let r = call(&app, Method::PUT, "/clients/batch", Some(&t), Some(bad)).await;
    assert_eq!(r.status(), 400);
    let r = call(
        &app,
        Method::PUT,
        "/clients/batch",
        Some(&t),
        Some(json!(["not", "an object"])),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        json_of(
            call(&app, Method::GET, "/clients/batch", Some(&t), None).await,
            200
        )
        .await,
        shown
    );
    let renamed = json!({"client_name": "Nightly batch", "grant_types": ["client_credentials"],
                         "scope": "reports:read reports:write"});
    let r = call(&app, Method::PUT, "/clients/batch", Some(&t), Some(renamed)).await;
    let updated = json_of(r, 200).await;
    assert_eq!(updated["client_name"], "Nightly batch");
    assert_eq!(updated["client_id"], "batch");
    assert!(
        updated.get("client_secret").is_none(),
        "the secret stays: {updated}"
    );
    assert_eq!(token_status(&app, "batch", &secret).await, 200);
    audited(&app, &t, "client.updated", "batch").await;
    let r = call(
        &app,
        Method::PUT,
        "/clients/nobody",
        Some(&t),
        Some(metadata),
    )
    .await;
    assert_eq!(r.status(), 404);
    // Rotate the secret: the new one works at once, the old one does not.
    let r = call(&app, Method::POST, "/clients/batch/secret", Some(&t), None).await;
    let rotated = json_of(r, 200).await;
    let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(token_status(&app, "batch", &new_secret).await, 200);
    assert_eq!(token_status(&app, "batch", &secret).await, 401);
    let event = audited(&app, &t, "client.secret_rotated", "batch").await;
    assert!(!event.to_string().contains(&new_secret), "{event}");
    let r = call(&app, Method::POST, "/clients/nobody/secret", Some(&t), None).await;
    assert_eq!(r.status(), 404);
    // A public client has no secret to rotate.
    let public =
        json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"});
    let r = call(
        &app,
        Method::POST,
        "/clients?client_id=spa",
        Some(&t),
        Some(public),
    )
    .await;
    assert!(json_of(r, 201).await.get("client_secret").is_none());
    let r = call(&app, Method::POST, "/clients/spa/secret", Some(&t), None).await;
    assert_eq!(json_of(r, 400).await["error"], "invalid_request");
    // The CLI rotates it too (actor `cli`), and updates it.
    let out = app.sigil(&["client", "rotate-secret", "batch"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let new_secret = by_cli["client_secret"].as_str().unwrap().to_string();
    // Another process changed it: the server sees it once its cache entry (clients.cache_ttl)
    // has passed.
    let ttl = app.settings.clients.cache_ttl.as_secs() as i64;
    app.state.clock.advance(ttl + 1);
    assert_eq!(token_status(&app, "batch", &new_secret).await, 200);
    let events = json_of(
        call(
            &app,
            Method::GET,
            "/audit?type=client.secret_rotated&actor=cli",
            Some(&t),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(events["events"][0]["target"], "batch", "{events}");
    let file = app.dir.path().join("batch.json");
    std::fs::write(
        &file,
        r#"{"grant_types": ["client_credentials"], "scope": "x", "client_name": "By CLI"}"#,
    )
    .unwrap();
    let out = app.sigil(
        &[
            "client",
            "update",
            "batch",
            "--metadata",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = json_of(
        call(&app, Method::GET, "/clients/batch", Some(&t), None).await,
        200,
    )
    .await;
    assert_eq!(shown["client_name"], "By CLI");
    // Remove: its tokens end, and it is gone.
    let r = call(&app, Method::DELETE, "/clients/batch", Some(&t), None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(token_status(&app, "batch", &new_secret).await, 401);
    let r = call(&app, Method::DELETE, "/clients/batch", Some(&t), None).await;
    assert_eq!(r.status(), 404);
    audited(&app, &t, "client.removed", "batch").await;
    let _: Value = json_of(
        call(&app, Method::GET, "/clients", Some(&t), None).await,
        200,
    )
    .await;
}
