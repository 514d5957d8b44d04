//! Signing key lifecycle: rotation by the CLI while the server runs, the pre-publication rule,
//! retirement, and tokens signed before a rotation that keep verifying.

use serde_json::Value;

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, verify_with_jwks, Backend, TestApp};
use sigil::audit::By;
use sigil::crypto::keys::SigningAlg;
use sigil::crypto::rotation::{self, KeyError, Lifecycle};
use sigil::crypto::schedule::Schedule;
use sigil::storage::signing_keys;

both_backends!(
    oidcc_key_rotation_keeps_the_old_key_and_old_tokens_verify,
    rotate_refuses_a_next_key_published_too_recently,
    retiring_keys_leave_the_jwks_once_their_tokens_have_expired,
    keys_retire_takes_next_and_retiring_keys_only,
    concurrent_rotations_leave_one_active_key_per_algorithm,
    a_token_signed_by_a_retiring_key_verifies_until_it_expires,
    a_next_key_never_signs,
);

pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

pub async fn rs256_token(app: &TestApp, id: &str, secret: &str) -> String {
    let body: Value = app
        .token_basic(id, secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// OpenID conformance "key rotation": after rotation the JWKS holds the new key and still the
/// old one; a token signed before the rotation still verifies.
async fn oidcc_key_rotation_keeps_the_old_key_and_old_tokens_verify(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let before = rs256_token(&app, &id, &secret).await;
    let old_kid = jwt_parts(&before).0["kid"].as_str().unwrap().to_string();
    let jwks_before = app.jwks().await;

    let out = app.sigil(&["keys", "rotate", "--force"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotations: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rs = rotations
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alg"] == "RS256")
        .unwrap();
    assert_eq!(rs["retiring"], old_kid.as_str());
    let new_kid = rs["activated"].as_str().unwrap().to_string();
    assert!(
        kids(&jwks_before).contains(&new_kid),
        "the new key was published before it signs"
    );

    let jwks = app
        .wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 12)
        .await;
    let published = kids(&jwks);
    assert!(
        published.contains(&old_kid),
        "the retiring key is still published"
    );
    assert!(published.contains(&new_kid));
    assert!(published.contains(&rs["next"].as_str().unwrap().to_string()));
    verify_with_jwks(&before, &jwks, "RS256").expect("a token from before the rotation verifies");

    let after = rs256_token(&app, &id, &secret).await;
    assert_eq!(jwt_parts(&after).0["kid"], new_kid.as_str());
    verify_with_jwks(&after, &jwks, "RS256").unwrap();
}

async fn rotate_refuses_a_next_key_published_too_recently(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.jwks().await;
    let out = app.sigil(&["keys", "rotate", "--alg", "ES256"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--force") && stderr.contains("jwks_max_age"),
        "{stderr}"
    );
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["keys", "list", "--json"], None).stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["state"] != "retiring"),
        "nothing changed"
    );
    assert_eq!(kids(&app.jwks().await), kids(&before));

    // Once the next key has been published for 2 × jwks_max_age, rotation goes ahead.
    let state = app.state.clone();
    let lifecycle = Lifecycle::from_settings(&state.settings);
    let next = state
        .db
        .run(|c| signing_keys::with_state(c, "ES256", "next"))
        .await
        .unwrap();
    let published_at = next[0].created_at;
    assert_eq!(
        lifecycle.min_publication, 600,
        "2 × the default jwks_max_age of 5m"
    );
    let early = rotation::rotate(
        &state.db,
        &state.master,
        lifecycle,
        &[SigningAlg::ES256],
        false,
        published_at + 599,
        &By::cli(),
    );
    assert!(matches!(early, Err(KeyError::TooEarly { .. })), "{early:?}");
    let done = rotation::rotate(
        &state.db,
        &state.master,
        lifecycle,
        &[SigningAlg::ES256],
        false,
        published_at + 600,
        &By::cli(),
    )
    .unwrap();
    assert_eq!(done.len(), 1);
    app.wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 9)
        .await;
}

async fn retiring_keys_leave_the_jwks_once_their_tokens_have_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    let lifecycle = Lifecycle::from_settings(&state.settings);
    let done = rotation::rotate(
        &state.db,
        &state.master,
        lifecycle,
        &SigningAlg::ALL,
        true,
        state.clock.now(),
        &By::cli(),
    )
    .unwrap();
    let retiring: Vec<String> = done.iter().map(|r| r.retiring.clone().unwrap()).collect();
    app.wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 12)
        .await;

    // Not before the longest token lifetime plus skew…
    state.clock.advance(lifecycle.retirement_delay - 5);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(app.jwks().await["keys"].as_array().unwrap().len(), 12);
    // …but right after it.
    state.clock.advance(10);
    let jwks = app
        .wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 8)
        .await;
    for kid in &retiring {
        assert!(!kids(&jwks).contains(kid));
    }
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["keys", "list", "--json"], None).stdout).unwrap();
    let retired = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "retired")
        .count();
    assert_eq!(retired, 4);
}

async fn keys_retire_takes_next_and_retiring_keys_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["keys", "list", "--json"], None).stdout).unwrap();
    let find = |state: &str, alg: &str| -> String {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["state"] == state && k["alg"] == alg)
            .unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let active = find("active", "EdDSA");
    let next = find("next", "EdDSA");

    let out = app.sigil(&["keys", "retire", &active], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rotate"));
    let out = app.sigil(&["keys", "retire", "no-such-kid"], None);
    assert_eq!(out.status.code(), Some(2));

    let out = app.sigil(&["keys", "retire", &next], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwks = app.wait_for_jwks(|j| !kids(j).contains(&next)).await;
    // A fresh next key took its place, so EdDSA can still rotate.
    let eddsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "EdDSA")
        .count();
    assert_eq!(eddsa, 2);
    let out = app.sigil(&["keys", "retire", &next], None);
    assert_eq!(out.status.code(), Some(2), "already retired");
}

/// Each rotation is one transaction under the key lock: two at once serialise, and every
/// algorithm ends with exactly one active key.
async fn concurrent_rotations_leave_one_active_key_per_algorithm(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    let lifecycle = Lifecycle::from_settings(&state.settings);
    let now = state.clock.now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                rotation::rotate(
                    &state.db,
                    &state.master,
                    lifecycle,
                    &SigningAlg::ALL,
                    true,
                    now,
                    &By::cli(),
                )
            })
        })
        .collect();
    let mut activated = Vec::new();
    for h in handles {
        for r in h
            .await
            .unwrap()
            .expect("both rotations succeed, one after the other")
        {
            activated.push(r.activated);
        }
    }
    activated.sort();
    activated.dedup();
    assert_eq!(
        activated.len(),
        8,
        "the two rotations activated different keys"
    );
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["keys", "list", "--json"], None).stdout).unwrap();
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let of = |state: &str| {
            listed
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["alg"] == alg && k["state"] == state)
                .count()
        };
        assert_eq!(of("active"), 1, "{alg}");
        assert_eq!(of("next"), 1, "{alg}");
        assert_eq!(of("retiring"), 2, "{alg}");
    }
}

/// `sigil keys list --json`.
pub fn listed(app: &TestApp) -> Vec<Value> {
    let out = app.sigil(&["keys", "list", "--json"], None);
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The kid of the one key of `alg` in `state`.
pub fn kid_of(keys: &[Value], alg: &str, state: &str) -> String {
    let found: Vec<&Value> = keys
        .iter()
        .filter(|k| k["alg"] == alg && k["state"] == state)
        .collect();
    assert_eq!(found.len(), 1, "{alg} {state}: {keys:?}");
    found[0]["kid"].as_str().unwrap().to_string()
}

pub fn count(keys: &[Value], alg: &str, state: &str) -> usize {
    keys.iter()
        .filter(|k| k["alg"] == alg && k["state"] == state)
        .count()
}

pub const ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// A token signed just before a scheduled rotation: its key, now retiring, stays in the JWKS
/// and the token keeps verifying (at the client and at Sigil) until it expires; then the key is
/// retired and gone from the JWKS.
async fn a_token_signed_by_a_retiring_key_verifies_until_it_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    let schedule = Schedule::from_settings(&state.settings);
    let (id, secret) = app.cc_client("svc");
    state.clock.advance(schedule.period - 60);
    let token = rs256_token(&app, &id, &secret).await;
    let (header, claims) = jwt_parts(&token);
    let kid = header["kid"].as_str().unwrap().to_string();
    let exp = claims["exp"].as_i64().unwrap();

    state.clock.advance(60);
    let jwks = app
        .wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 12)
        .await;
    let keys = listed(&app);
    let row = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(row["state"], "retiring");
    verify_with_jwks(&token, &jwks, "RS256").expect("verifies against the JWKS after rotation");
    assert_eq!(app.introspect(&id, &secret, &token).await["active"], true);
    let newer = rs256_token(&app, &id, &secret).await;
    assert_ne!(
        jwt_parts(&newer).0["kid"],
        kid.as_str(),
        "a retiring key no longer signs"
    );

    // Moments before the token expires: still published, still valid.
    state.clock.advance(exp - 5 - state.clock.now());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let jwks = app.jwks().await;
    assert!(kids(&jwks).contains(&kid));
    verify_with_jwks(&token, &jwks, "RS256").unwrap();
    assert_eq!(app.introspect(&id, &secret, &token).await["active"], true);

    // The key is retired once the token has expired, clock skew and refresh lag included.
    let retire_after = state
        .db
        .run({
            let kid = kid.clone();
            move |c| signing_keys::get(c, &kid)
        })
        .await
        .unwrap()
        .unwrap()
        .retire_after
        .unwrap();
    assert!(exp + state.settings.tokens.clock_skew.as_secs() as i64 <= retire_after);
    state.clock.advance(retire_after - state.clock.now());
    let jwks = app.wait_for_jwks(|j| !kids(j).contains(&kid)).await;
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        8,
        "the four keys retiring since the same rotation are gone, active and next remain"
    );
    assert_eq!(app.introspect(&id, &secret, &token).await["active"], false);
    let keys = listed(&app);
    let row = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(row["state"], "retired");
}

/// `(alg, kid)` of the ID token and the access token of one sign-in at each client.
async fn signing_kids(app: &TestApp, clients: &[(String, String, &str)]) -> Vec<(String, Value)> {
    let browser = Browser::new();
    let mut used = Vec::new();
    for (id, secret, alg) in clients {
        let code = app.code_for(&browser, id, &[]).await;
        let tokens: Value = app
            .exchange(id, secret, &code, Some(VERIFIER))
            .await
            .json()
            .await
            .unwrap();
        let id_token = tokens["id_token"].as_str().unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        used.push((alg.to_string(), jwt_parts(id_token).0["kid"].clone()));
        used.push(("RS256".into(), jwt_parts(access).0["kid"].clone()));
    }
    used
}

/// ID tokens in every algorithm and access tokens are signed by the active key, never by the
/// published next key, before and after a scheduled rotation.
async fn a_next_key_never_signs(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    app.add_user("alice");
    let clients: Vec<(String, String, &str)> = ALGS
        .iter()
        .map(|alg| {
            let (id, secret) = app.web_client(
                &format!("rp-{alg}"),
                json!({"id_token_signed_response_alg": alg, "skip_consent": true}),
            );
            (id, secret, *alg)
        })
        .collect();
    // Long after the next keys were published, but before the period ends.
    state
        .clock
        .advance(Schedule::from_settings(&state.settings).period / 2);
    let keys = listed(&app);
    for (alg, kid) in signing_kids(&app, &clients).await {
        assert_eq!(kid, kid_of(&keys, &alg, "active").as_str(), "{alg}");
        assert_ne!(kid, kid_of(&keys, &alg, "next").as_str(), "{alg}");
    }

    state
        .clock
        .advance(Schedule::from_settings(&state.settings).period);
    app.wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 12)
        .await;
    let keys = listed(&app);
    for (alg, kid) in signing_kids(&app, &clients).await {
        assert_eq!(kid, kid_of(&keys, &alg, "active").as_str(), "{alg}");
        assert_ne!(kid, kid_of(&keys, &alg, "next").as_str(), "{alg}");
    }
}
