//! Scheduled rotation: every node's background task rotates an algorithm once its active key
//! has served `keys.rotation_period` and its next key has been published long enough, deciding
//! again under the key lock so that several nodes rotate once.

use crate::both_backends;
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, Backend};
use crate::keys::{count, kid_of, kids, listed, rs256_token, ALGS};
use sigil::audit::By;
use sigil::config::DurationSetting;
use sigil::crypto::keys::SigningAlg;
use sigil::crypto::rotation;
use sigil::crypto::schedule::Schedule;
use sigil::storage::signing_keys;

both_backends!(
    scheduled_rotation_rotates_each_algorithm_once_its_period_has_passed,
    scheduled_rotation_waits_for_a_next_key_published_too_recently,
    concurrent_scheduled_rotations_rotate_once,
);

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
    rotation::retire(
        &state.db,
        &state.master,
        &old_next,
        state.clock.now(),
        &By::cli(),
    )
    .unwrap();
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
