//! Refresh tokens (rotation, replay, other clients, scope, concurrency; SECURITY.md attack 17)
//! and UserInfo (OIDC Core §5.3; SECURITY.md attack 8).

use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(
    oidcc_refresh_rotates_and_issues_a_new_id_token,
    attack17_refresh_replay_revokes_the_grant_and_wider_scope_is_invalid_scope,
    oidcc_client_b_cannot_use_client_a_refresh_token,
    concurrent_refreshes_with_one_token_yield_exactly_one_success,
    oidcc_userinfo_get_post_header_and_post_body_agree,
    oidcc_scope_claims_profile_email_address_phone,
    attack08_id_tokens_and_client_tokens_are_refused_at_userinfo,
);

async fn offline_tokens(app: &TestApp, scope: &str) -> (String, String, Value) {
    let (id, secret) = app.web_client("rp", json!({}));
    app.add_user("alice");
    let code = app
        .code_for(&Browser::new(), &id, &[("scope", scope)])
        .await;
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    (id, secret, r.json().await.unwrap())
}

pub async fn refresh(
    app: &TestApp,
    id: &str,
    secret: &str,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    app.token_basic(id, secret, &form).await
}

pub async fn error_of(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 400);
    r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn oidcc_refresh_rotates_and_issues_a_new_id_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret, first) = offline_tokens(&app, "openid email offline_access").await;
    let rt = first["refresh_token"]
        .as_str()
        .expect("offline_access gives a refresh token");
    let r = refresh(&app, &id, &secret, rt, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["scope"], "email offline_access openid");
    let (_, a) = crate::helpers::jwt_parts(first["id_token"].as_str().unwrap());
    let (_, b) = crate::helpers::jwt_parts(second["id_token"].as_str().unwrap());
    assert_eq!(a["sub"], b["sub"]);
    assert_eq!(
        a["auth_time"], b["auth_time"],
        "auth_time is the original sign-in"
    );
    // A narrower scope is fine.
    let third = refresh(
        &app,
        &id,
        &secret,
        second["refresh_token"].as_str().unwrap(),
        Some("openid"),
    )
    .await;
    assert_eq!(third.status(), 200);
    assert_eq!(third.json::<Value>().await.unwrap()["scope"], "openid");
}

async fn attack17_refresh_replay_revokes_the_grant_and_wider_scope_is_invalid_scope(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, secret, first) = offline_tokens(&app, "openid email offline_access").await;
    let old = first["refresh_token"].as_str().unwrap();
    let wider = refresh(
        &app,
        &id,
        &secret,
        old,
        Some("openid email phone offline_access"),
    )
    .await;
    assert_eq!(error_of(wider).await, "invalid_scope");
    // The refused request changed nothing: the token still works once.
    let second: Value = refresh(&app, &id, &secret, old, None)
        .await
        .json()
        .await
        .unwrap();
    let newer = second["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.userinfo(second["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // Replay of the rotated token: refused, and the whole grant is revoked.
    assert_eq!(
        error_of(refresh(&app, &id, &secret, old, None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error_of(refresh(&app, &id, &secret, newer, None).await).await,
        "invalid_grant"
    );
    assert_eq!(
        app.userinfo(second["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(
        app.userinfo(first["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

async fn oidcc_client_b_cannot_use_client_a_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret, first) = offline_tokens(&app, "openid offline_access").await;
    let (b, b_secret) = app.web_client("b", json!({}));
    let rt = first["refresh_token"].as_str().unwrap();
    assert_eq!(
        error_of(refresh(&app, &b, &b_secret, rt, None).await).await,
        "invalid_grant"
    );
    // …and the attempt did not burn A's token.
    assert_eq!(refresh(&app, &id, &secret, rt, None).await.status(), 200);
}

async fn concurrent_refreshes_with_one_token_yield_exactly_one_success(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret, first) = offline_tokens(&app, "openid offline_access").await;
    let rt = first["refresh_token"].as_str().unwrap();
    let (a, b) = tokio::join!(
        refresh(&app, &id, &secret, rt, None),
        refresh(&app, &id, &secret, rt, None)
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        1,
        "{statuses:?}"
    );
}

async fn oidcc_userinfo_get_post_header_and_post_body_agree(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, tokens) = offline_tokens(&app, "openid email").await;
    let at = tokens["access_token"].as_str().unwrap();
    let url = app.endpoint("userinfo_endpoint").await;
    let get: Value = app
        .http
        .get(&url)
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let post_header: Value = app
        .http
        .post(&url)
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .http
        .post(&url)
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let post_body: Value = r.json().await.unwrap();
    assert!(get["sub"].is_string());
    assert_eq!(get, post_header);
    assert_eq!(get, post_body);
    // Both places at once is a bad request; none is a bare challenge.
    let r = app
        .http
        .post(&url)
        .bearer_auth(at)
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
}

async fn oidcc_scope_claims_profile_email_address_phone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, tokens) = offline_tokens(&app, "openid profile email address phone").await;
    let info: Value = app
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], "Alice Liddell");
    assert_eq!(info["given_name"], "Alice");
    assert_eq!(info["family_name"], "Liddell");
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["locale"], "en-GB");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["address"]["locality"], "Oxford");
    assert_eq!(info["phone_number"], "+44 20 7946 0000");
    // openid alone: the subject only.
    let app2 = spawn_app(backend).await;
    let (_, _, tokens) = offline_tokens(&app2, "openid").await;
    let info: Value = app2
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        info.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["sub"]
    );
}

async fn attack08_id_tokens_and_client_tokens_are_refused_at_userinfo(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, tokens) = offline_tokens(&app, "openid email").await;
    let r = app.userinfo(tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
    let (cc, cc_secret) = app.cc_client("svc");
    let cc_token: Value = app
        .token_basic(&cc, &cc_secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.userinfo(cc_token["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    for junk in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        assert_eq!(app.userinfo(junk).await.status(), 401);
    }
    // Expired.
    app.state.clock.advance(601);
    assert_eq!(
        app.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}
