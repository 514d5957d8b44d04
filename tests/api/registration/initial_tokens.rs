//! Initial access tokens (RFC 7591 §3): what `sigil client initial-token` prints and stores,
//! and that they, like registration access tokens, are good for nothing but their one purpose.

use serde_json::{json, Value};

use super::management::manage;
use super::{
    assert_invalid_token, client_count, count, initial_token, post, token_mode, web_metadata,
};
use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend};
use sigil::admin::registration::token_hash;

both_backends!(
    rfc7591_3_cli_initial_token_prints_the_token_and_its_expiry,
    rfc7591_3_tokens_are_single_purpose,
);

async fn rfc7591_3_cli_initial_token_prints_the_token_and_its_expiry(backend: Backend) {
    let app = spawn_app_with(backend, token_mode).await;
    let before = app.state.clock.now();
    let out = app.sigil(&["client", "initial-token", "--ttl", "2h"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let object = printed.as_object().unwrap();
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    assert_eq!(keys, ["expires_at", "initial_access_token"]);
    let token = printed["initial_access_token"].as_str().unwrap();
    assert_eq!(token.len(), 43, "256 bits, base64url");
    let expires = humantime::parse_rfc3339(printed["expires_at"].as_str().unwrap()).unwrap();
    let expires = expires
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (before + 7200..=before + 7210).contains(&expires),
        "{printed}"
    );
    // Stored as its hash only.
    assert_eq!(
        count(
            &app,
            "initial_access_tokens",
            &format!("token_hash = '{token}'")
        ),
        0
    );
    assert_eq!(
        count(
            &app,
            "initial_access_tokens",
            &format!("token_hash = '{}'", token_hash(token))
        ),
        1
    );

    // The default is an hour; lifetimes outside 1s–30d are refused.
    let out = app.sigil(&["client", "initial-token"], None);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expires = humantime::parse_rfc3339(printed["expires_at"].as_str().unwrap()).unwrap();
    let expires = expires
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (before + 3600..=before + 3610).contains(&expires),
        "{printed}"
    );
    for bad in ["0s", "31d", "500ms", "soon"] {
        let out = app.sigil(&["client", "initial-token", "--ttl", bad], None);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(out.stdout.is_empty(), "{bad}");
    }

    // The token registers a client once.
    let r = post(&app, Some(token), &web_metadata()).await;
    assert_eq!(r.status(), 201);
    assert_invalid_token(post(&app, Some(token), &web_metadata()).await, "used").await;
}

async fn rfc7591_3_tokens_are_single_purpose(backend: Backend) {
    let app = spawn_app_with(backend, token_mode).await;
    let initial = initial_token(&app, 600);
    // An initial access token is no access token anywhere else, and manages no client.
    let (admin_made, _) = app.web_client("admin-made", json!({}));
    assert_eq!(app.userinfo(&initial).await.status(), 401);
    let r = app
        .http
        .get(app.url("/admin/api/clients"))
        .bearer_auth(&initial)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = manage(&app, reqwest::Method::GET, &admin_made, &initial, None).await;
    assert_invalid_token(r, "an initial token at the configuration endpoint").await;

    // A registration access token registers nothing and is no access token either.
    let r = post(&app, Some(&initial), &web_metadata()).await;
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let rat = reg["registration_access_token"].as_str().unwrap();
    assert_invalid_token(
        post(&app, Some(rat), &web_metadata()).await,
        "a RAT at /register",
    )
    .await;
    assert_eq!(app.userinfo(rat).await.status(), 401);
    assert_eq!(client_count(&app), 2);
}
