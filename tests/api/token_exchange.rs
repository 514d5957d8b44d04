//! Token exchange (RFC 8693): a registered client trades a user's access token for one aimed
//! at the next API, never broader, never longer-lived, with `act` naming who acts.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{jwt_parts, spawn_app, Backend, TestApp};

both_backends!(
    rfc8693_2_1_4_1_gives_the_users_token_for_the_next_api_with_act,
    rfc8693_2_2_2_ends_with_the_users_grant,
    rfc8693_2_2_2_refuses_what_it_must,
);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A confidential client `id` registered for token exchange within `scope`; its secret.
fn exchanger(app: &TestApp, id: &str, scope: &str) -> String {
    let r = app.register_client(id, &json!({"grant_types": [GRANT], "scope": scope}));
    r["client_secret"].as_str().unwrap().to_string()
}

async fn exchange(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut all = vec![("grant_type", GRANT)];
    all.extend_from_slice(form);
    let r = app.token_basic(id, secret, &all).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn rfc8693_2_1_4_1_gives_the_users_token_for_the_next_api_with_act(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let d = app.discovery().await;
    assert!(d["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&GRANT.into()));
    let (_, _, tokens) = app.user_tokens("rp").await;
    let subject = tokens["access_token"].as_str().unwrap();
    let (_, subject_claims) = jwt_parts(subject);
    let secret = exchanger(&app, "svc", "openid email profile");
    let out = app.sigil(
        &["resource", "add", "--metadata", "-"],
        Some(&json!({"resource": "https://orders.example/", "scope": "email"}).to_string()),
    );
    assert!(out.status.success(), "{out:?}");

    let (status, body) = exchange(
        &app,
        "svc",
        &secret,
        &[
            ("subject_token", subject),
            ("subject_token_type", AT),
            ("audience", "https://orders.example/"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], AT);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let new = body["access_token"].as_str().unwrap();
    let (_, c) = jwt_parts(new);
    assert_eq!(c["sub"], subject_claims["sub"], "the user's token");
    assert_eq!(c["aud"], "https://orders.example/");
    assert_eq!(c["client_id"], "svc");
    assert_eq!(c["act"], json!({"sub": "svc"}));
    assert_eq!(
        c["scope"], "email",
        "what the resource accepts of what the user gave"
    );
    assert!(
        c["exp"].as_i64() <= subject_claims["exp"].as_i64(),
        "never outlives it"
    );
    assert_eq!(c["gid"], subject_claims["gid"]);
    assert_eq!(c["acr"], subject_claims["acr"]);
    let i = app.introspect("svc", &secret, new).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["act"], json!({"sub": "svc"}));

    // Without a target: Sigil's own (UserInfo takes it), within the subject's scope and the
    // client's; an actor token names the actor; a second exchange nests the first actor.
    let (id, cc_secret) = app.cc_client("actor");
    let actor: Value = app
        .token_basic(&id, &cc_secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let (status, body) = exchange(
        &app,
        "svc",
        &secret,
        &[
            ("subject_token", subject),
            ("subject_token_type", AT),
            ("actor_token", actor["access_token"].as_str().unwrap()),
            ("actor_token_type", AT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mine = body["access_token"].as_str().unwrap();
    let (_, c) = jwt_parts(mine);
    assert_eq!(c["act"], json!({"sub": "actor"}));
    let mut scope: Vec<&str> = c["scope"].as_str().unwrap().split(' ').collect();
    scope.sort();
    assert_eq!(scope, ["email", "openid"], "offline_access is not svc's");
    assert_eq!(app.userinfo(mine).await.status(), 200);
    let secret2 = exchanger(&app, "next", "openid email");
    let (status, body) = exchange(
        &app,
        "next",
        &secret2,
        &[("subject_token", mine), ("subject_token_type", AT)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, c) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(c["act"], json!({"sub": "next", "act": {"sub": "actor"}}));
}

async fn rfc8693_2_2_2_ends_with_the_users_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (_, _, tokens) = app.user_tokens("rp").await;
    let subject = tokens["access_token"].as_str().unwrap();
    let secret = exchanger(&app, "svc", "openid email");
    let form = [("subject_token", subject), ("subject_token_type", AT)];
    let (status, body) = exchange(&app, "svc", &secret, &form).await;
    assert_eq!(status, 200);
    let new = body["access_token"].as_str().unwrap().to_string();
    let out = app.sigil(&["user", "logout-everywhere", "alice"], None);
    assert!(out.status.success());
    app.state.clock.advance(1);
    assert_eq!(app.introspect("svc", &secret, &new).await["active"], false);
    let (status, body) = exchange(&app, "svc", &secret, &form).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

async fn rfc8693_2_2_2_refuses_what_it_must(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, rp_secret, tokens) = app.user_tokens("rp").await;
    let subject = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let secret = exchanger(&app, "svc", "openid email");

    // A client not registered for the grant.
    let (status, body) = exchange(
        &app,
        &id,
        &rp_secret,
        &[("subject_token", subject), ("subject_token_type", AT)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // A public client cannot register for it.
    let out = app.sigil(
        &["client", "add", "--client-id", "pub", "--metadata", "-"],
        Some(&json!({"grant_types": [GRANT], "token_endpoint_auth_method": "none"}).to_string()),
    );
    assert_eq!(out.status.code(), Some(2));

    let tampered = format!("{}x", &subject[..subject.len() - 1]);
    let refused: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("subject_token_type", AT)], "invalid_request"),
        (vec![("subject_token", subject)], "invalid_request"),
        (
            vec![
                ("subject_token", subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                ),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", AT),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
            ],
            "invalid_request",
        ),
        (
            vec![("subject_token", id_token), ("subject_token_type", AT)],
            "invalid_grant",
        ),
        (
            vec![("subject_token", &tampered), ("subject_token_type", AT)],
            "invalid_grant",
        ),
        (
            vec![("subject_token", "garbage"), ("subject_token_type", AT)],
            "invalid_grant",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("actor_token", "garbage"),
                ("actor_token_type", AT),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("actor_token", subject),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("scope", "openid offline_access"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("audience", "https://unknown.example/"),
            ],
            "invalid_target",
        ),
    ];
    for (form, error) in refused {
        let (status, body) = exchange(&app, "svc", &secret, &form).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert_eq!(body["error"], error, "{form:?}");
    }
    // Expired: refused.
    app.state.clock.advance(3600 * 24);
    let (status, body) = exchange(
        &app,
        "svc",
        &secret,
        &[("subject_token", subject), ("subject_token_type", AT)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}
