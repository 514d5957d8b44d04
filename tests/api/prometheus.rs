//! Metrics on their own listener (`metrics.bind`): the public listener answers 404 at
//! `/metrics`; real sign-ins, tokens, introspections, replays, a back-channel logout, lockouts
//! and a database pool held busy show in the series read straight from the metrics listener;
//! Debian's Prometheus scrapes a live Sigil every second and its HTTP API returns the same
//! values, with the replay alert of `contrib/prometheus/alerts.yml` firing; `promtool` passes
//! the rules, their unit tests and the example configuration.

mod scrape;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backchannel::Receiver;
use crate::both_backends;
use crate::flow::{location, Browser, VERIFIER};
use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::logout::{assert_signed_out_page, end_session_url, id_token, sign_in};

both_backends!(
    metrics_listener_counts_sign_ins_tokens_replays_and_deliveries,
    metrics_listener_shows_lockouts_and_a_busy_database_pool,
);

/// The app with `/metrics` on a listener of its own (port 0: a free one).
pub async fn spawn_with_metrics(
    backend: Backend,
    configure: impl FnOnce(&mut sigil::config::Settings),
) -> TestApp {
    spawn_app_with(backend, |s| {
        s.metrics.bind = Some("127.0.0.1:0".parse().unwrap());
        configure(s);
    })
    .await
}

/// The metrics listener's address, as the application bound it.
pub fn metrics_address(app: &TestApp) -> String {
    app.state
        .settings
        .metrics
        .bind
        .expect("metrics.bind is set")
        .to_string()
}

/// The report from the metrics listener.
pub async fn report(app: &TestApp) -> String {
    let r = app
        .http
        .get(format!("http://{}/metrics", metrics_address(app)))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.unwrap()
}

/// The value of the series `selector` (its name and labels as Sigil writes them) in `report`.
pub fn value(report: &str, selector: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|l| l.strip_prefix(selector)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// Reads the report until every series has its expected value (deliveries happen off the
/// request path), for at most 20 s; returns the last report.
pub async fn until(app: &TestApp, expected: &[(String, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = report(app).await;
        let wrong: Vec<_> = expected
            .iter()
            .filter(|(s, v)| value(&seen, s) != Some(*v))
            .collect();
        if wrong.is_empty() {
            return seen;
        }
        if Instant::now() > deadline {
            panic!("series not as expected: {wrong:?} in\n{seen}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Real traffic through the public listener — a wrong password, two sign-ins, tokens from
/// three grants, two introspections of one token, a refresh token and a code each presented
/// again, a logout that reaches a back-channel receiver — and the series it must leave.
pub async fn scenario(app: &TestApp) -> Vec<(String, f64)> {
    let receiver = Receiver::start(200, false).await;
    let (rp, secret) = app.web_client(
        "rp",
        json!({ "backchannel_logout_uri": receiver.url("/bc"), "skip_consent": true }),
    );
    let (svc, svc_secret) = app.cc_client("svc");
    app.add_user("alice");
    // Registering clients moves the tokens revision: read it now, so that no later poll drops
    // the cached introspection answer between the two introspections below.
    app.state.verdicts.refresh(&app.state.db).unwrap();

    let stranger = Browser::new();
    let r = app.start(&stranger, &rp, &[]).await;
    let r = app
        .submit_login(&stranger, &location(&r), "alice", "not the password")
        .await;
    assert_eq!(r.status(), 401, "a wrong password");

    let first = sign_in(app, &Browser::new(), &rp, &secret, "alice", &[]).await;
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(app.introspect(&rp, &secret, access).await["active"], true);
    assert_eq!(app.introspect(&rp, &secret, access).await["active"], true);
    let refresh = first["refresh_token"].as_str().expect("a refresh token");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    assert_eq!(app.token_basic(&rp, &secret, &form).await.status(), 200);
    assert_eq!(
        app.token_basic(&rp, &secret, &form).await.status(),
        400,
        "a refresh replay"
    );

    let browser = Browser::new();
    let code = app.code_for(&browser, &rp, &[]).await;
    let second: Value = app
        .exchange(&rp, &secret, &code, Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    let url = end_session_url(app, &[("id_token_hint", &id_token(&second))]).await;
    assert_signed_out_page(browser.get(&url).await, "logout").await;
    receiver.wait_for(1).await;
    let replayed = app.exchange(&rp, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(replayed.status(), 400, "a code replay");

    let form = [("grant_type", "client_credentials")];
    assert_eq!(
        app.token_basic(&svc, &svc_secret, &form).await.status(),
        200
    );

    let issued = |grant: &str, token: &str, alg: &str| {
        format!("sigil_tokens_issued_total{{grant=\"{grant}\",token=\"{token}\",alg=\"{alg}\"}}")
    };
    vec![
        ("sigil_sign_ins_total{outcome=\"ok\"}".into(), 2.0),
        (
            "sigil_sign_ins_total{outcome=\"wrong_password\"}".into(),
            1.0,
        ),
        ("sigil_sign_ins_total{outcome=\"locked\"}".into(), 0.0),
        (issued("authorization_code", "access_token", "RS256"), 2.0),
        (issued("authorization_code", "id_token", "RS256"), 2.0),
        (issued("authorization_code", "refresh_token", "opaque"), 2.0),
        (issued("refresh_token", "access_token", "RS256"), 1.0),
        (issued("refresh_token", "refresh_token", "opaque"), 1.0),
        (issued("client_credentials", "access_token", "RS256"), 1.0),
        (
            "sigil_token_replays_total{token=\"authorization_code\"}".into(),
            1.0,
        ),
        (
            "sigil_token_replays_total{token=\"refresh_token\"}".into(),
            1.0,
        ),
        (
            "sigil_token_replays_total{token=\"device_code\"}".into(),
            0.0,
        ),
        (
            "sigil_introspection_cache_lookups_total{result=\"miss\"}".into(),
            1.0,
        ),
        (
            "sigil_introspection_cache_lookups_total{result=\"hit\"}".into(),
            1.0,
        ),
        (
            "sigil_backchannel_logout_deliveries_total{outcome=\"delivered\"}".into(),
            1.0,
        ),
        (
            "sigil_backchannel_logout_deliveries_total{outcome=\"failed\"}".into(),
            0.0,
        ),
        ("sigil_db_connections_max".into(), 4.0),
    ]
}

async fn metrics_listener_counts_sign_ins_tokens_replays_and_deliveries(backend: Backend) {
    let app = spawn_with_metrics(backend, |s| s.outbound.allow_private_networks = true).await;
    // DESIGN.md "Operations": /metrics is not on the public listener, and the metrics
    // listener serves nothing else.
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let other = format!(
        "http://{}/.well-known/openid-configuration",
        metrics_address(&app)
    );
    assert_eq!(app.http.get(other).send().await.unwrap().status(), 404);

    let expected = scenario(&app).await;
    let seen = until(&app, &expected).await;
    // The scrapes of the metrics listener are not requests to the public one.
    assert!(!seen.contains("route=\"/metrics\""), "{seen}");
    assert_eq!(
        value(
            &seen,
            "sigil_http_requests_total{route=\"unmatched\",status=\"4xx\"}"
        ),
        Some(1.0),
        "the public /metrics matched no route"
    );
    // The active RS256 key: how long it has signed, by the application's clock.
    let kid = app
        .state
        .keyring
        .current()
        .active(sigil::crypto::keys::SigningAlg::RS256)
        .expect("an active RS256 key")
        .kid
        .clone();
    let age = format!("sigil_signing_key_age_seconds{{kid=\"{kid}\",alg=\"RS256\"}}");
    let before = value(&seen, &age).expect("the active key's age");
    app.state.clock.advance(86_400);
    let after = value(&report(&app).await, &age).unwrap();
    assert!(
        (86_400.0..86_400.0 + 60.0).contains(&(after - before)),
        "a day later: {before} then {after}"
    );
    let period = value(&seen, "sigil_signing_key_rotation_period_seconds");
    assert_eq!(period, Some(30.0 * 86_400.0));
    let commit = seen
        .lines()
        .find(|l| l.starts_with("sigil_build_info{"))
        .expect("build info");
    assert!(
        commit.starts_with(&format!(
            "sigil_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )) && commit.ends_with("\"} 1"),
        "{commit}"
    );
    // Every series the alert rules ask for is one Sigil reports: a misspelt name would leave
    // an alert that can never fire.
    for name in scrape::alert_series() {
        assert!(
            seen.contains(&format!("# TYPE {name} ")),
            "contrib/prometheus/alerts.yml uses {name}, which Sigil does not report"
        );
    }
}

async fn metrics_listener_shows_lockouts_and_a_busy_database_pool(backend: Backend) {
    let app = spawn_with_metrics(backend, |s| {
        s.login.max_failures = 2;
        s.database.max_connections = 1;
        s.database.acquire_timeout = sigil::config::DurationSetting(Duration::from_millis(300));
        // The background tasks keep off the one connection while the test holds it.
        s.keys.refresh_interval = sigil::config::DurationSetting(Duration::from_secs(300));
        s.tokens.revocation_poll = sigil::config::DurationSetting(Duration::from_secs(60));
        s.maintenance.interval = sigil::config::DurationSetting(Duration::from_secs(3600));
    })
    .await;
    let (rp, _) = app.web_client("rp", json!({}));
    app.add_user("alice");
    let browser = Browser::new();
    for status in [401, 401, 429] {
        let r = app.start(&browser, &rp, &[]).await;
        let r = app
            .submit_login(&browser, &location(&r), "alice", "wrong")
            .await;
        assert_eq!(r.status(), status);
    }
    // The second failure locked both the account and the client address.
    until(
        &app,
        &[
            (
                "sigil_sign_ins_total{outcome=\"wrong_password\"}".into(),
                2.0,
            ),
            ("sigil_sign_ins_total{outcome=\"locked\"}".into(), 1.0),
            ("sigil_lockouts_total".into(), 2.0),
            ("sigil_db_connection_timeouts_total".into(), 0.0),
        ],
    )
    .await;

    // A slow statement holds the only connection until the test lets it go.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let db = app.state.db.clone();
    let holder = tokio::spawn(async move {
        db.run(move |_conn| {
            let _ = held.recv();
            Ok::<_, sigil::storage::StorageError>(())
        })
        .await
    });
    let in_use = |n: f64| {
        vec![
            ("sigil_db_connections{state=\"in_use\"}".to_string(), n),
            ("sigil_db_connections_max".to_string(), 1.0),
        ]
    };
    until(&app, &in_use(1.0)).await;
    let before = report(&app).await;
    let count = |report: &str, name: &str| value(report, name).expect(name);
    // A request that needs the database meanwhile waits `database.acquire_timeout`, then 503.
    let unknown = app.url("/authorize?client_id=nobody&response_type=code");
    let r = app.http.get(&unknown).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let after = report(&app).await;
    for name in [
        "sigil_db_connection_waits_total",
        "sigil_db_connection_timeouts_total",
    ] {
        let (was, is) = (count(&before, name), count(&after, name));
        assert!(is > was, "{name}: {was} then {is}");
    }
    let name = "sigil_db_connection_wait_seconds_total";
    let (was, is) = (count(&before, name), count(&after, name));
    assert!(is - was >= 0.3, "{name}: {was} then {is}");
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    until(&app, &in_use(0.0)).await;
    let r = app.http.get(&unknown).send().await.unwrap();
    assert_eq!(r.status(), 400, "the pool serves again");
}
