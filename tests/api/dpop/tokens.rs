//! RFC 9449 §5 and §6: tokens bound to the proof's key (all grants, introspection), public
//! clients' refresh tokens bound to it, `dpop_bound_access_tokens`, discovery.

use serde_json::{json, Value};

use super::*;
use crate::both_backends;
use crate::helpers::{jwt_parts, spawn_app, Backend};

both_backends!(
    rfc9449_5_tokens_are_bound_to_the_proof_key_and_introspection_shows_it,
    rfc9449_5_a_public_client_refresh_token_is_bound_to_its_key,
    rfc9449_5_a_confidential_client_refresh_token_is_not_bound,
    rfc9449_5_2_a_dpop_bound_access_tokens_client_must_send_a_proof,
    rfc9449_5_1_discovery_lists_the_proof_algorithms,
);

async fn rfc9449_5_tokens_are_bound_to_the_proof_key_and_introspection_shows_it(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("web", json!({}));
    let key = DpopKey::es256();
    let tokens = code_tokens(&app, (&id, &secret), &key).await;
    // §5: token_type DPoP; §6.1: cnf.jkt is the key's thumbprint.
    assert_eq!(tokens["token_type"], "DPoP");
    let at = tokens["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(at);
    assert_eq!(claims["cnf"], json!({"jkt": key.jkt()}));
    // §6.2: introspection says so (asked twice: the cached answer too).
    let (rs, rs_secret) = app.cc_client("rs");
    for _ in 0..2 {
        let answer = app.introspect(&rs, &rs_secret, at).await;
        assert_eq!(answer["active"], true);
        assert_eq!(answer["token_type"], "DPoP");
        assert_eq!(answer["cnf"]["jkt"], key.jkt());
    }
    // client_credentials: bound the same way.
    let body = cc_token(&app, (&rs, &rs_secret), &key).await;
    assert_eq!(body["token_type"], "DPoP");
    let cc_at = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(cc_at).1["cnf"]["jkt"], key.jkt());
    let answer = app.introspect(&rs, &rs_secret, cc_at).await;
    assert_eq!(answer["token_type"], "DPoP");
    // Without a proof: a bearer token, no cnf.
    let (_, _, plain) = app.user_tokens("plain").await;
    assert_eq!(plain["token_type"], "Bearer");
    let plain_at = plain["access_token"].as_str().unwrap();
    assert!(jwt_parts(plain_at).1.get("cnf").is_none());
    let answer = app.introspect(&rs, &rs_secret, plain_at).await;
    assert_eq!(answer["token_type"], "Bearer");
    assert!(answer.get("cnf").is_none());
}

async fn rfc9449_5_a_public_client_refresh_token_is_bound_to_its_key(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, _) = app.web_client("spa", json!({"token_endpoint_auth_method": "none"}));
    let client = (id.as_str(), "");
    let key = DpopKey::es256();
    let tokens = code_tokens(&app, client, &key).await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    // Another key, or no proof: invalid_grant, and nothing is spent or revoked.
    let r = refresh(&app, client, &rt, Some(&DpopKey::es256())).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let r = refresh(&app, client, &rt, None).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let at = tokens["access_token"].as_str().unwrap();
    let (rs, rs_secret) = app.cc_client("rs");
    assert_eq!(app.introspect(&rs, &rs_secret, at).await["active"], true);
    // The right key: the refresh token works, and its successor is bound the same way.
    let r = refresh(&app, client, &rt, Some(&key)).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["token_type"], "DPoP");
    let (_, claims) = jwt_parts(next["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], key.jkt());
    let rt2 = next["refresh_token"].as_str().unwrap();
    let r = refresh(&app, client, rt2, Some(&DpopKey::es256())).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    // A used bound token shown by someone without the key revokes nothing (RFC 9700 §4.14.2
    // needs the holder): the successor still refreshes.
    let r = refresh(&app, client, &rt, None).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let r = refresh(&app, client, rt2, Some(&key)).await;
    assert_eq!(r.status(), 200);
}

async fn rfc9449_5_a_confidential_client_refresh_token_is_not_bound(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, secret) = app.web_client("web", json!({}));
    let client = (id.as_str(), secret.as_str());
    let key = DpopKey::es256();
    let tokens = code_tokens(&app, client, &key).await;
    // §5: it authenticates, so its refresh token is not bound; the new access token is bound
    // to the key of the proof presented now.
    let other = DpopKey::es256();
    let r = refresh(
        &app,
        client,
        tokens["refresh_token"].as_str().unwrap(),
        Some(&other),
    )
    .await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["token_type"], "DPoP");
    assert_eq!(
        jwt_parts(next["access_token"].as_str().unwrap()).1["cnf"]["jkt"],
        other.jkt()
    );
    let r = refresh(&app, client, next["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), 200);
    let plain: Value = r.json().await.unwrap();
    assert_eq!(plain["token_type"], "Bearer");
}

async fn rfc9449_5_2_a_dpop_bound_access_tokens_client_must_send_a_proof(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.register_client(
        "bound",
        &json!({"grant_types": ["client_credentials"], "scope": "api", "dpop_bound_access_tokens": true}),
    );
    assert_eq!(r["dpop_bound_access_tokens"], true, "{r}");
    let secret = r["client_secret"].as_str().unwrap();
    let client = ("bound", secret);
    let r = token(&app, client, CC, &[]).await;
    assert!(r.headers().contains_key("dpop-nonce"));
    assert_eq!(error_of(r).await, (400, "invalid_dpop_proof".into()));
    let body = cc_token(&app, client, &DpopKey::es256()).await;
    assert_eq!(body["token_type"], "DPoP");
    // The metadata is shown as stored.
    let shown = app.sigil(&["client", "show", "bound"], None);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["dpop_bound_access_tokens"], true, "{shown}");
}

async fn rfc9449_5_1_discovery_lists_the_proof_algorithms(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.discovery().await;
    assert_eq!(
        d["dpop_signing_alg_values_supported"],
        json!(["ES256", "PS256", "RS256", "EdDSA"])
    );
    assert_eq!(
        app.get_json("/.well-known/oauth-authorization-server")
            .await["dpop_signing_alg_values_supported"],
        d["dpop_signing_alg_values_supported"]
    );
}
