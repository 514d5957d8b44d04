//! Authlib (Python) exchanges a user's access token for one aimed at the next API (RFC 8693),
//! with an actor token for delegation, and is refused a refresh token as the subject.

use serde_json::{json, Value};

use super::node::Script;
use crate::both_backends;
use crate::helpers::{jwt_parts, spawn_app, Backend};

both_backends!(authlib_exchanges_a_users_access_token);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

async fn authlib_exchanges_a_users_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (_, _, tokens) = app.user_tokens("rp").await;
    let subject = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (_, subject_claims) = jwt_parts(subject);
    let svc = app.register_client(
        "svc",
        &json!({"grant_types": [GRANT], "scope": "openid email profile"}),
    );
    let out = app.sigil(
        &["resource", "add", "--metadata", "-"],
        Some(&json!({"resource": "https://orders.example/", "scope": "email"}).to_string()),
    );
    assert!(out.status.success(), "{out:?}");
    let (actor_id, actor_secret) = app.cc_client("actor");
    let actor: Value = app
        .token_basic(
            &actor_id,
            &actor_secret,
            &[("grant_type", "client_credentials")],
        )
        .await
        .json()
        .await
        .unwrap();

    let mut authlib = Script::start("token_exchange.py", &app.issuer());
    authlib.expect("tokens").await;
    authlib
        .reply(json!({
            "client_id": "svc",
            "client_secret": svc["client_secret"],
            "subject_token": subject,
            "refresh_token": refresh,
            "actor_token": actor["access_token"],
            "audience": "https://orders.example/",
        }))
        .await;
    let r = authlib.finish().await;

    let (_, plain) = jwt_parts(r["plain"]["access_token"].as_str().unwrap());
    assert_eq!(plain["sub"], subject_claims["sub"]);
    assert_eq!(plain["aud"], "https://orders.example/");
    assert_eq!(plain["scope"], "email");
    assert_eq!(plain["act"], json!({"sub": "svc"}));
    assert_eq!(
        r["plain"]["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let (_, delegated) = jwt_parts(r["delegated"]["access_token"].as_str().unwrap());
    assert_eq!(delegated["sub"], subject_claims["sub"]);
    assert_eq!(delegated["act"], json!({"sub": "actor"}));
    let i = &r["introspected"];
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], subject_claims["sub"], "{i}");
    assert_eq!(i["act"], json!({"sub": "actor"}), "{i}");
    assert_eq!(r["refresh_as_subject"], "invalid_request", "{r}");
}
