//! SECURITY.md attacks 24 and 25: guesses from elsewhere never lock a user out of their own
//! browser, the lockout is capped and can be lifted, and only trusted proxies name clients.

use serde_json::{json, Value};

use super::{app_with, counter, device_cookie, login, login_form, login_with, retry_after, send};
use crate::both_backends;
use crate::flow::PASSWORD;
use crate::helpers::{spawn_app_with, Backend, TestApp};

both_backends!(
    attack24_guesses_from_elsewhere_never_lock_a_user_out_of_their_own_browser,
    attack25_client_addresses_come_only_from_trusted_proxies,
);

fn sign_in_state(app: &TestApp, username: &str) -> Value {
    let out = app.sigil(&["user", "show", username], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    shown["sign_in"].clone()
}

async fn attack24_guesses_from_elsewhere_never_lock_a_user_out_of_their_own_browser(
    backend: Backend,
) {
    let (app, id) = app_with(backend, |s| s.login.max_failures = 3).await;
    let home = "192.0.2.10";
    let form1 = login_form(&app, &id).await;
    let first = send(&app, login(&app, &form1, "alice", PASSWORD, home, None)).await;
    assert_eq!(first.status, 303);
    let cookie = first
        .headers
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with("sigil_device="))
        .map(|(_, v)| v.clone())
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let mut device = device_cookie(&first).unwrap();

    // Guesses from elsewhere lock the account.
    for i in 0..3 {
        let from = format!("203.0.113.{i}");
        let r = send(&app, login(&app, &form1, "alice", "wrong", &from, None)).await;
        assert_eq!(r.status, 401);
    }
    let fresh = send(&app, login(&app, &form1, "alice", PASSWORD, home, None)).await;
    assert_eq!(fresh.status, 429, "a fresh browser is locked out");
    // Her own browser is not, and it gets a new device id.
    let own = send(
        &app,
        login(&app, &form1, "alice", PASSWORD, home, Some(&device)),
    )
    .await;
    assert_eq!(own.status, 303, "{}", own.body);
    let renewed = device_cookie(&own).unwrap();
    assert_ne!(renewed, device);
    let old = send(
        &app,
        login(&app, &form1, "alice", PASSWORD, home, Some(&device)),
    )
    .await;
    assert_eq!(old.status, 429, "the old device id is trusted no more");
    device = renewed;
    let shown = sign_in_state(&app, "alice");
    assert_eq!(shown["failures"], 3);
    assert!(shown["locked_until"].as_i64().is_some());
    assert_eq!(shown["lockouts"], 1);
    assert_eq!(shown["trusted_devices"], 1);

    // An attacker who keeps going doubles the lock, never past login.max_lockout (1 h).
    let window = app.settings.login.window.as_secs() as i64;
    let cap = app.settings.login.max_lockout.as_secs() as i64;
    let mut waits = vec![retry_after(&fresh)];
    for round in 1..6 {
        app.state.clock.advance(waits[round - 1] + 1);
        let form = login_form(&app, &id).await;
        for i in 0..3 {
            let from = format!("203.0.{round}.{i}");
            let r = send(&app, login(&app, &form, "alice", "wrong", &from, None)).await;
            assert_eq!(r.status, 401, "round {round}");
        }
        let probe = format!("198.51.100.{round}");
        let r = send(&app, login(&app, &form, "alice", PASSWORD, &probe, None)).await;
        assert_eq!(r.status, 429, "round {round}");
        waits.push(retry_after(&r));
    }
    let expected = [window, 2 * window, cap, cap, cap, cap];
    for (wait, expected) in waits.iter().zip(expected) {
        assert!(
            *wait <= expected && *wait > expected - 5,
            "{waits:?} against {expected}"
        );
    }
    assert_eq!(sign_in_state(&app, "alice")["lockouts"], 6);

    // A stolen device cookie is limited by its own counter.
    let form = login_form(&app, &id).await;
    for i in 0..3 {
        let from = format!("192.0.2.{}", 20 + i);
        let r = send(
            &app,
            login(&app, &form, "alice", "wrong", &from, Some(&device)),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = send(
        &app,
        login(&app, &form, "alice", PASSWORD, home, Some(&device)),
    )
    .await;
    assert_eq!(r.status, 429, "the device's own counter is full");

    // `sigil user unlock` clears the account's counter and its browsers'.
    let out = app.sigil(&["user", "unlock", "alice"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = send(
        &app,
        login(&app, &form, "alice", PASSWORD, home, Some(&device)),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = send(&app, login(&app, &form, "alice", PASSWORD, home, None)).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        sign_in_state(&app, "alice"),
        json!({"failures": 0, "locked_until": null, "lockouts": 0, "trusted_devices": 2})
    );
    let out = app.sigil(&["user", "unlock", "nobody"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));

    // So does the admin API.
    for i in 0..3 {
        let from = format!("203.0.113.{}", 50 + i);
        send(&app, login(&app, &form, "alice", "wrong", &from, None)).await;
    }
    assert!(counter(&app, "user:alice").await.unwrap().locked_until > 0);
    let token = crate::admin_api::admin_token(&app).await;
    let unlock = |name: &str| {
        app.http
            .post(app.url(&format!("/admin/api/users/{name}/unlock")))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(unlock("alice").await.unwrap().status(), 200);
    assert!(counter(&app, "user:alice").await.is_none());
    assert_eq!(unlock("nobody").await.unwrap().status(), 404);
    let r = send(&app, login(&app, &form, "alice", PASSWORD, home, None)).await;
    assert_eq!(r.status, 303);

    // Signing in from ever new browsers does not grow the table without bound; the browser
    // that signed in last is always remembered.
    let mut last = None;
    for _ in 0..34 {
        let r = send(&app, login(&app, &form, "alice", PASSWORD, home, None)).await;
        assert_eq!(r.status, 303);
        last = device_cookie(&r);
    }
    assert_eq!(sign_in_state(&app, "alice")["trusted_devices"], 32);
    for i in 0..3 {
        let from = format!("203.0.113.{}", 60 + i);
        send(&app, login(&app, &form, "alice", "wrong", &from, None)).await;
    }
    let r = send(
        &app,
        login(&app, &form, "alice", PASSWORD, home, last.as_deref()),
    )
    .await;
    assert_eq!(
        r.status, 303,
        "the last browser is trusted despite the lock"
    );
}

async fn attack25_client_addresses_come_only_from_trusted_proxies(backend: Backend) {
    // No trusted proxy: forwarding headers are the client's own words, and ignored.
    let app = spawn_app_with(backend, |_| {}).await;
    let (id, _) = app.web_client("rp", json!({}));
    app.add_user("alice");
    app.add_user("bob");
    let form1 = login_form(&app, &id).await;
    for i in 0..5 {
        let (xff, forwarded) = (format!("203.0.113.{i}"), format!("for=198.51.100.{i}"));
        let headers = [("X-Forwarded-For", xff.as_str()), ("Forwarded", &forwarded)];
        let request = login_with(&app, &form1, ("alice", "wrong"), &headers, None);
        assert_eq!(send(&app, request).await.status, 401);
    }
    let r = send(
        &app,
        login(&app, &form1, "bob", PASSWORD, "192.0.2.1", None),
    )
    .await;
    assert_eq!(r.status, 429, "the peer itself is throttled");
    assert!(counter(&app, "ip:127.0.0.1").await.is_some());
    assert!(counter(&app, "ip:203.0.113.0").await.is_none());

    // Behind a trusted proxy every client address has its own limit.
    let (app, id) = app_with(backend, |_| {}).await;
    app.add_user("bob");
    let form = login_form(&app, &id).await;
    let (a, b) = ("203.0.113.5", "198.51.100.7");
    for _ in 0..5 {
        let r = send(&app, login(&app, &form, "alice", "wrong", a, None)).await;
        assert_eq!(r.status, 401);
    }
    let r = send(&app, login(&app, &form, "bob", PASSWORD, b, None)).await;
    assert_eq!(r.status, 303, "bob's address is not alice's attacker's");
    let r = send(&app, login(&app, &form, "bob", PASSWORD, a, None)).await;
    assert_eq!(r.status, 429, "the attacker's address is locked");
    let r = send(&app, login(&app, &form, "alice", PASSWORD, b, None)).await;
    assert_eq!(r.status, 429, "the account is locked");
    // `Forwarded` (RFC 7239) names the client too.
    let headers = [("Forwarded", "for=\"198.51.100.8:4711\"")];
    let request = login_with(&app, &form, ("bob", PASSWORD), &headers, None);
    assert_eq!(send(&app, request).await.status, 303);
    // A client behind the proxy cannot escape its address by writing another one in front.
    let spoofed = format!("198.51.100.9, {a}");
    let r = send(&app, login(&app, &form, "bob", PASSWORD, &spoofed, None)).await;
    assert_eq!(r.status, 429);
}
