//! Token replays and key rotations (by the CLI, the admin API and the schedule) as audit
//! events.

use serde_json::{json, Value};

use super::{assert_no_secret, details, dump, events, find, run_ok};
use crate::admin_api::admin_token;
use crate::both_backends;
use crate::helpers::{spawn_app, Backend};
use sigil::crypto::schedule::Schedule;
use sigil::storage::signing_keys;

both_backends!(
    a_refresh_token_replay_is_one_event_naming_the_client,
    key_rotations_by_cli_admin_api_and_schedule_are_events,
);

async fn a_refresh_token_replay_is_one_event_naming_the_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.add_user("alice");
    let (id, secret, tokens) = app.user_tokens("rp").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let refresh = |token: String| {
        let (app, id, secret) = (&app, id.clone(), secret.clone());
        async move {
            app.token_basic(
                &id,
                &secret,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    let rotated: Value = refresh(rt.to_string()).await.json().await.unwrap();
    assert!(rotated["refresh_token"].is_string());
    assert!(events(&app)
        .await
        .iter()
        .all(|e| e.event_type != "token.replay_detected"));
    for _ in 0..2 {
        assert_eq!(refresh(rt.to_string()).await.status(), 400);
    }
    let all = events(&app).await;
    let replays: Vec<_> = all
        .iter()
        .filter(|e| e.event_type == "token.replay_detected")
        .collect();
    assert_eq!(replays.len(), 1, "one event: the grant is revoked once");
    let e = replays[0];
    assert_eq!((e.actor_kind.as_str(), e.actor.as_str()), ("client", "rp"));
    assert_eq!(e.target.as_deref(), Some("rp"));
    assert_eq!(e.outcome, "failure");
    assert_eq!(e.client_address.as_deref(), Some("127.0.0.1"));
    let d = details(e);
    assert_eq!(d["token"], "refresh_token");
    assert_eq!(d["user_id"], alice["id"]);
    assert_eq!(d["grant_revoked"], true);
    assert_no_secret(
        &all,
        &[
            rt,
            rotated["refresh_token"].as_str().unwrap(),
            rotated["access_token"].as_str().unwrap(),
            &secret,
        ],
    );
}

async fn key_rotations_by_cli_admin_api_and_schedule_are_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let state = app.state.clone();
    run_ok(&app, &["keys", "rotate", "--alg", "ES256", "--force"], None);
    let all = events(&app).await;
    let by_cli = find(&all, "keys.rotated");
    assert_eq!(by_cli.actor, "cli");
    let d = details(by_cli);
    assert_eq!(
        (d["alg"].as_str(), d["forced"].as_bool()),
        (Some("ES256"), Some(true))
    );
    assert_eq!(by_cli.target.as_deref(), d["activated"].as_str());

    let token = admin_token(&app).await;
    let r = app
        .http
        .post(app.url("/admin/api/keys/rotate"))
        .bearer_auth(&token)
        .json(&json!({"alg": "EdDSA", "force": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let all = events(&app).await;
    let by_api = find(&all, "keys.rotated");
    assert_eq!(
        (by_api.actor_kind.as_str(), by_api.actor.as_str()),
        ("client", "ops")
    );
    assert_eq!(by_api.client_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(details(by_api)["alg"], "EdDSA");
    // Too early (not forced): refused, and no event.
    let r = app
        .http
        .post(app.url("/admin/api/keys/rotate"))
        .bearer_auth(&token)
        .json(&json!({"alg": "EdDSA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(events(&app).await.len(), all.len());
    // Retired by the admin API.
    let retired = d["retiring"].as_str().unwrap().to_string();
    let r = app
        .http
        .post(app.url(&format!("/admin/api/keys/{retired}/retire")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let all = events(&app).await;
    let e = find(&all, "keys.retired");
    assert_eq!(
        (e.actor.as_str(), e.target.as_deref()),
        ("ops", Some(retired.as_str()))
    );

    // The schedule (the node's background task), once the period has passed: one event per
    // algorithm, by the scheduler.
    let schedule = Schedule::from_settings(&state.settings);
    state.clock.advance(schedule.period + 1);
    let mut scheduled = Vec::new();
    for _ in 0..100 {
        scheduled = events(&app)
            .await
            .into_iter()
            .filter(|e| e.event_type == "keys.rotated" && e.actor == "scheduler")
            .collect();
        if scheduled.len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut algs: Vec<String> = scheduled
        .iter()
        .map(|e| details(e)["alg"].as_str().unwrap().to_string())
        .collect();
    algs.sort();
    assert_eq!(
        algs,
        ["ES256", "EdDSA", "PS256", "RS256"],
        "one rotation per algorithm"
    );
    let active = |kid: &str| {
        let kid = kid.to_string();
        let state = state.clone();
        async move {
            state
                .db
                .run(move |c| signing_keys::get(c, &kid))
                .await
                .unwrap()
                .unwrap()
                .state
        }
    };
    for e in &scheduled {
        assert_eq!(e.actor_kind, "scheduler");
        assert_eq!(e.client_address, None);
        assert_eq!(details(e)["forced"], false);
        assert_eq!(active(e.target.as_deref().unwrap()).await, "active");
    }
    let all = events(&app).await;
    assert_no_secret(&all, &[&token]);
    assert!(!dump(&all).contains("private"), "no key material");
}
