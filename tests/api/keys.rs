//! Signing key lifecycle: rotation by the CLI while the server runs, the pre-publication rule,
//! retirement, and tokens signed before a rotation that keep verifying.

use serde_json::Value;

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, verify_with_jwks, Backend, TestApp};
use crate::two_nodes::start_node;
use sigil::clock::Clock;
use sigil::config::DurationSetting;
use sigil::crypto::keys::SigningAlg;
use sigil::crypto::master_key::MasterKey;
use sigil::crypto::rotation::{self, KeyError, Lifecycle};
use sigil::crypto::schedule::Schedule;
use sigil::startup::Application;
use sigil::storage::{clients, signing_keys};

both_backends!(
    oidcc_key_rotation_keeps_the_old_key_and_old_tokens_verify,
    rotate_refuses_a_next_key_published_too_recently,
    retiring_keys_leave_the_jwks_once_their_tokens_have_expired,
    keys_retire_takes_next_and_retiring_keys_only,
    concurrent_rotations_leave_one_active_key_per_algorithm,
    scheduled_rotation_rotates_each_algorithm_once_its_period_has_passed,
    scheduled_rotation_waits_for_a_next_key_published_too_recently,
    concurrent_scheduled_rotations_rotate_once,
    a_token_signed_by_a_retiring_key_verifies_until_it_expires,
    a_next_key_never_signs,
    keys_rewrap_moves_every_secret_to_the_new_master_key,
    keys_rewrap_refuses_a_malformed_key_file_and_changes_nothing,
);

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn rs256_token(app: &TestApp, id: &str, secret: &str) -> String {
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
    );
    assert!(matches!(early, Err(KeyError::TooEarly { .. })), "{early:?}");
    let done = rotation::rotate(
        &state.db,
        &state.master,
        lifecycle,
        &[SigningAlg::ES256],
        false,
        published_at + 600,
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
fn listed(app: &TestApp) -> Vec<Value> {
    let out = app.sigil(&["keys", "list", "--json"], None);
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The kid of the one key of `alg` in `state`.
fn kid_of(keys: &[Value], alg: &str, state: &str) -> String {
    let found: Vec<&Value> = keys
        .iter()
        .filter(|k| k["alg"] == alg && k["state"] == state)
        .collect();
    assert_eq!(found.len(), 1, "{alg} {state}: {keys:?}");
    found[0]["kid"].as_str().unwrap().to_string()
}

fn count(keys: &[Value], alg: &str, state: &str) -> usize {
    keys.iter()
        .filter(|k| k["alg"] == alg && k["state"] == state)
        .count()
}

const ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// The background schedule (every refresh interval, on the application's clock) rotates every
/// algorithm once its active key has served `keys.rotation_period`, and not a moment before;
/// the new next key is published at the same time, ready for the next period.
async fn scheduled_rotation_rotates_each_algorithm_once_its_period_has_passed(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    let schedule = Schedule::from_settings(&state.settings);
    let before = listed(&app);
    let activated_at = state
        .db
        .run(signing_keys::all)
        .await
        .unwrap()
        .iter()
        .filter_map(|k| k.activated_at)
        .max()
        .unwrap();

    state
        .clock
        .advance(activated_at + schedule.period - 1 - state.clock.now());
    let early = schedule
        .run(&state.db, &state.master, &state.clock)
        .unwrap();
    assert!(early.is_empty(), "rotated before the period: {early:?}");
    assert_eq!(kids(&app.jwks().await).len(), 8);

    state.clock.advance(1);
    let jwks = app
        .wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 12)
        .await;
    let after = listed(&app);
    for alg in ALGS {
        assert_eq!(count(&after, alg, "retiring"), 1, "{alg} rotated once");
        assert_eq!(
            kid_of(&after, alg, "retiring"),
            kid_of(&before, alg, "active")
        );
        assert_eq!(kid_of(&after, alg, "active"), kid_of(&before, alg, "next"));
        let next = kid_of(&after, alg, "next");
        assert!(kids(&jwks).contains(&next), "the new next key is published");
        let row = after.iter().find(|k| k["kid"] == next.as_str()).unwrap();
        let active = after
            .iter()
            .find(|k| k["alg"] == alg && k["state"] == "active")
            .unwrap();
        assert_eq!(
            row["created_at"], active["activated_at"],
            "{alg}: the next key is prepared at the rotation, a whole period before it signs"
        );
    }
    // A second tick at the same time finds nothing due.
    let again = schedule
        .run(&state.db, &state.master, &state.clock)
        .unwrap();
    assert!(again.is_empty());

    let (id, secret) = app.cc_client("svc");
    let token = rs256_token(&app, &id, &secret).await;
    assert_eq!(
        jwt_parts(&token).0["kid"],
        kid_of(&after, "RS256", "active").as_str()
    );
}

/// A next key replaced shortly before the period ends (here by `keys retire`) has not been
/// published for 2 × jwks_max_age when the period ends: the schedule waits for it and never
/// forces, while the other algorithms rotate on time.
async fn scheduled_rotation_waits_for_a_next_key_published_too_recently(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    let schedule = Schedule::from_settings(&state.settings);
    let min_publication = schedule.lifecycle.min_publication;
    let before = listed(&app);
    let activated_at = state
        .db
        .run(signing_keys::all)
        .await
        .unwrap()
        .iter()
        .filter_map(|k| k.activated_at)
        .max()
        .unwrap();

    // 100 s before the period ends, the ES256 next key is replaced by a fresh one.
    state
        .clock
        .advance(activated_at + schedule.period - 100 - state.clock.now());
    let old_next = kid_of(&before, "ES256", "next");
    rotation::retire(&state.db, &state.master, &old_next, state.clock.now()).unwrap();
    let young_next = app.wait_for_jwks(|j| !kids(j).contains(&old_next)).await;
    let young_next = kids(&young_next)
        .into_iter()
        .find(|k| !before.iter().any(|b| b["kid"] == k.as_str()))
        .expect("a fresh ES256 next key");

    state.clock.advance(100);
    app.wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 11)
        .await;
    let plan = schedule.plan(
        &state.db.run(signing_keys::published).await.unwrap(),
        state.clock.now(),
    );
    assert_eq!(plan.waiting.len(), 1, "{plan:?}");
    assert_eq!(plan.waiting[0].0, SigningAlg::ES256);
    let during = listed(&app);
    assert_eq!(
        kid_of(&during, "ES256", "active"),
        kid_of(&before, "ES256", "active"),
        "not forced"
    );
    assert_eq!(kid_of(&during, "ES256", "next"), young_next);
    for alg in ["RS256", "PS256", "EdDSA"] {
        assert_eq!(count(&during, alg, "retiring"), 1, "{alg} rotated on time");
    }

    // Once the young key has been published long enough, ES256 rotates too.
    state.clock.advance(min_publication - 100);
    app.wait_for_jwks(|j| j["keys"].as_array().unwrap().len() == 12)
        .await;
    let after = listed(&app);
    assert_eq!(kid_of(&after, "ES256", "active"), young_next);
    assert_eq!(
        kid_of(&after, "ES256", "retiring"),
        kid_of(&before, "ES256", "active")
    );
}

/// Two nodes' schedules finding the same keys due at the same moment: the decision is taken
/// again under the key lock, so each algorithm gets exactly one new active key.
async fn concurrent_scheduled_rotations_rotate_once(backend: Backend) {
    // The application's own schedule ticks only every 300 s: the two threads below are the
    // only ones rotating.
    let app = spawn_app_with(backend, |s| {
        s.keys.refresh_interval = DurationSetting::from_secs(300);
    })
    .await;
    let state = app.state.clone();
    let schedule = Schedule::from_settings(&state.settings);
    let before = listed(&app);
    state.clock.advance(schedule.period);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (state, barrier) = (state.clone(), barrier.clone());
            tokio::task::spawn_blocking(move || {
                barrier.wait();
                rotation::rotate_due(
                    &state.db,
                    &state.master,
                    schedule.lifecycle,
                    schedule.period,
                    &SigningAlg::ALL,
                    &state.clock,
                )
            })
        })
        .collect();
    let mut activated = Vec::new();
    for h in handles {
        activated.extend(h.await.unwrap().unwrap().into_iter().map(|r| r.activated));
    }
    activated.sort();
    let mut expected: Vec<String> = ALGS.iter().map(|a| kid_of(&before, a, "next")).collect();
    expected.sort();
    assert_eq!(
        activated, expected,
        "each next key activated once, by one of the two"
    );
    let after = listed(&app);
    for alg in ALGS {
        assert_eq!(count(&after, alg, "active"), 1, "{alg}");
        assert_eq!(count(&after, alg, "retiring"), 1, "{alg}");
        assert_eq!(count(&after, alg, "next"), 1, "{alg}");
    }
}

async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    let url = app.endpoint("introspection_endpoint").await;
    let r = app
        .http
        .post(url)
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

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
    assert_eq!(introspect(&app, &id, &secret, &token).await["active"], true);
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
    assert_eq!(introspect(&app, &id, &secret, &token).await["active"], true);

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
    assert_eq!(
        introspect(&app, &id, &secret, &token).await["active"],
        false
    );
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

/// Every sealed value of the database, for comparing before and after.
async fn sealed_values(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let keys = app.state.db.run(signing_keys::all).await.unwrap();
    let clients = app.state.db.run(clients::all).await.unwrap();
    keys.into_iter()
        .map(|k| (k.kid, k.private_sealed))
        .chain(
            clients
                .into_iter()
                .filter_map(|c| Some((c.client_id, c.secret_sealed?))),
        )
        .collect()
}

/// `sigil keys rewrap`: afterwards every private key and client secret opens under the new
/// master key and none under the old one; a node started with the new key signs tokens that
/// verify, and client secrets still authenticate; a node with the old key no longer starts.
async fn keys_rewrap_moves_every_secret_to_the_new_master_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    app.web_client("public-rp", json!({"token_endpoint_auth_method": "none"}));
    let new_key = MasterKey::generate();
    let file = app.dir.path().join("new.master.key");
    std::fs::write(&file, format!("{}\n", new_key.to_base64())).unwrap();
    let old_key =
        MasterKey::from_base64(app.settings.master_key.as_ref().unwrap().expose()).unwrap();
    let before = sealed_values(&app).await;

    let out = app.sigil(
        &[
            "keys",
            "rewrap",
            "--new-master-key-file",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        done,
        json!({"signing_keys": 8, "client_secrets": 1, "already_under_new_key": 0})
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
    let out = app.sigil(
        &[
            "keys",
            "rewrap",
            "--new-master-key-file",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        again,
        json!({"signing_keys": 0, "client_secrets": 0, "already_under_new_key": 9})
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
        let out = app.sigil(
            &[
                "keys",
                "rewrap",
                "--new-master-key-file",
                file.to_str().unwrap(),
            ],
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(!stderr.contains(&current), "the key is never printed");
        assert_eq!(sealed_values(&app).await, before, "{name}: nothing changed");
    }
    let missing = app.dir.path().join("missing.key");
    let out = app.sigil(
        &[
            "keys",
            "rewrap",
            "--new-master-key-file",
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(sealed_values(&app).await, before);
}
