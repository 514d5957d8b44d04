//! Token introspection (RFC 7662): access and refresh tokens, and every way a token stops being
//! active.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(
    introspection_reports_live_access_and_refresh_tokens,
    introspection_turns_inactive_on_expiry_revocation_and_logout_everywhere,
    introspection_requires_a_confidential_client_and_a_token,
);

async fn introspect(
    app: &TestApp,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let url = app.endpoint("introspection_endpoint").await;
    app.http
        .post(url)
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Introspects `token` as the confidential client `id`; the answer (200, never cached).
pub async fn active(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    let r = introspect(app, id, secret, &[("token", token)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn user_tokens(app: &TestApp) -> (String, String, Value) {
    app.add_user("alice");
    app.user_tokens("rp").await
}

async fn introspection_reports_live_access_and_refresh_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret, tokens) = user_tokens(&app).await;
    let (rs, rs_secret) = app.cc_client("resource-server");
    // A resource server asks about a user's access token issued to another client.
    let at = active(
        &app,
        &rs,
        &rs_secret,
        tokens["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(at["active"], true);
    assert_eq!(at["client_id"], "rp");
    assert_eq!(at["scope"], "email offline_access openid");
    assert_eq!(at["token_type"], "Bearer");
    assert_eq!(at["iss"], app.issuer());
    assert_eq!(at["aud"], app.issuer());
    for claim in ["sub", "exp", "iat", "jti"] {
        assert!(!at[claim].is_null(), "{claim}");
    }
    // Its own client_credentials token.
    let cc: Value = app
        .token_basic(&rs, &rs_secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let own = active(&app, &rs, &rs_secret, cc["access_token"].as_str().unwrap()).await;
    assert_eq!(own["active"], true);
    assert_eq!(own["sub"], "resource-server");
    // A refresh token: for the client that holds it, not for others.
    let rt = tokens["refresh_token"].as_str().unwrap();
    let mine = introspect(
        &app,
        &id,
        &secret,
        &[("token", rt), ("token_type_hint", "refresh_token")],
    )
    .await;
    let mine: Value = mine.json().await.unwrap();
    assert_eq!(mine["active"], true);
    assert_eq!(mine["token_type"], "refresh_token");
    assert_eq!(mine["client_id"], "rp");
    assert_eq!(
        active(&app, &rs, &rs_secret, rt).await,
        json!({"active": false})
    );
    // ID tokens, junk and unknown tokens are simply inactive.
    for junk in [tokens["id_token"].as_str().unwrap(), "garbage", "a.b.c"] {
        assert_eq!(
            active(&app, &rs, &rs_secret, junk).await,
            json!({"active": false})
        );
    }
}

async fn introspection_turns_inactive_on_expiry_revocation_and_logout_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret, tokens) = user_tokens(&app).await;
    let at = tokens["access_token"].as_str().unwrap().to_string();
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    // Rotation: the used refresh token is inactive, the new one active.
    let next: Value = app
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active(&app, &id, &secret, &rt).await["active"], false);
    let new_rt = next["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(active(&app, &id, &secret, &new_rt).await["active"], true);
    // Log out everywhere: every token issued before it is inactive.
    assert!(app
        .sigil(&["user", "logout-everywhere", "alice"], None)
        .status
        .success());
    assert_eq!(active(&app, &id, &secret, &at).await["active"], false);
    assert_eq!(active(&app, &id, &secret, &new_rt).await["active"], false);
    // Expiry, for a client's token.
    let (rs, rs_secret) = app.cc_client("svc");
    let cc: Value = app
        .token_basic(&rs, &rs_secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let cc = cc["access_token"].as_str().unwrap().to_string();
    assert_eq!(active(&app, &rs, &rs_secret, &cc).await["active"], true);
    app.state.clock.advance(601);
    let (other, other_secret) = app.cc_client("other");
    assert_eq!(
        active(&app, &other, &other_secret, &cc).await["active"],
        false
    );
}

async fn introspection_requires_a_confidential_client_and_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    app.web_client(
        "spa",
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}),
    );
    let url = app.endpoint("introspection_endpoint").await;
    let r = app
        .http
        .post(&url)
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = app
        .http
        .post(&url)
        .form(&[("token", "x"), ("client_id", "spa")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = introspect(&app, &id, "wrong", &[("token", "x")]).await;
    assert_eq!(r.status(), 401);
    let r = introspect(&app, &id, &secret, &[("token_type_hint", "access_token")]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}
