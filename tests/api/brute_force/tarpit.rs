//! SECURITY.md attack 23, the tarpit: every answer of the login form but a sign-in (a wrong
//! password, a locked or busy answer, a stale or forged form) waits `login.refusal_delay`, so a
//! flood that waits for its answers gets one attempt per connection and delay. The refused
//! answers wait side by side, not in turn.

use std::time::{Duration, Instant};

use super::{app_with, login, login_form, send, PROXY};
use crate::both_backends;
use crate::flow::PASSWORD;
use crate::helpers::Backend;
use crate::instant::{self, by_status};
use sigil::config::DurationSetting;
use sigil::web::throttle::Tarpit;

both_backends!(
    attack23_refused_sign_ins_wait_before_they_are_answered,
    attack23_the_more_refusals_wait_the_longer_each_waits,
);

const DELAY: Duration = Duration::from_millis(1500);

async fn attack23_refused_sign_ins_wait_before_they_are_answered(backend: Backend) {
    let (app, id) = app_with(backend, |s| {
        s.login.refusal_delay = DurationSetting(DELAY);
        s.login.max_failures = 2;
    })
    .await;
    let form = login_form(&app, &id).await;
    let timed = |request: Vec<u8>| {
        let app = &app;
        async move {
            let started = Instant::now();
            let answer = send(app, request).await;
            (answer, started.elapsed())
        }
    };
    // A wrong password, then the locked answer: each waited the delay.
    for expected in [401, 401, 429] {
        let (a, took) = timed(login(&app, &form, "alice", "wrong", "192.0.2.1", None)).await;
        assert_eq!(a.status, expected);
        assert!(took >= DELAY, "a {expected} after {took:?}");
    }
    // A form of another browser (its own CSRF token, not the parked request's) waits too.
    let mut forged = login(&app, &form, "alice", "wrong", "192.0.2.2", None);
    let text = String::from_utf8(forged.clone()).unwrap();
    forged = text
        .replace(&form.csrf, &"A".repeat(form.csrf.len()))
        .into_bytes();
    let (a, took) = timed(forged).await;
    assert_eq!(a.status, 400);
    assert!(took >= DELAY, "a 400 after {took:?}");
    // Thirty refusals at once all wait the delay, together.
    let requests = (0..30)
        .map(|i| {
            login(
                &app,
                &form,
                "alice",
                "wrong",
                &format!("192.0.2.{}", 10 + i),
                None,
            )
        })
        .collect();
    let started = Instant::now();
    let answers = instant::fire(&app.address.replace("http://", ""), requests).await;
    let took = started.elapsed();
    assert_eq!(
        by_status(&answers).get(&429),
        Some(&30),
        "the account is locked"
    );
    assert!(took >= DELAY);
    assert!(
        took < DELAY * 10,
        "held side by side, not one after the other: {took:?}"
    );
    // The right password from the user's own address, once the lock has passed, signs in.
    app.state.clock.advance(3600);
    let form = login_form(&app, &id).await;
    let (a, _) = timed(login(&app, &form, "alice", PASSWORD, PROXY, None)).await;
    assert_eq!(a.status, 303);
}

/// However many connections a flood opens, the login form answers about `Tarpit::SHARE`
/// refusals per delay: past each share of waiting answers, a further one waits a delay more.
async fn attack23_the_more_refusals_wait_the_longer_each_waits(backend: Backend) {
    const SHORT: Duration = Duration::from_secs(1);
    let (app, id) = app_with(backend, |s| s.login.refusal_delay = DurationSetting(SHORT)).await;
    let form = login_form(&app, &id).await;
    // Forged forms (another browser's CSRF token): refused at once, then held.
    let forged = |i: usize| {
        let text = String::from_utf8(login(
            &app,
            &form,
            "alice",
            "wrong",
            &format!("198.51.100.{}", i % 250),
            None,
        ))
        .unwrap();
        text.replace(&form.csrf, &"A".repeat(form.csrf.len()))
            .into_bytes()
    };
    let n = 2 * Tarpit::SHARE + 4;
    let started = Instant::now();
    let answers = instant::fire(
        &app.address.replace("http://", ""),
        (0..n).map(forged).collect(),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        by_status(&answers).get(&400),
        Some(&n),
        "every form refused"
    );
    // The last few came when two shares waited already: three delays.
    assert!(
        took >= SHORT * 3,
        "{n} refusals all answered within {took:?}"
    );
    assert!(took < SHORT * 20, "held side by side: {took:?}");
}
