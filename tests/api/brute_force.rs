//! SECURITY.md attacks 22–25: guessing that concurrency cannot outrun and a bounded hashing
//! queue here; a lockout that cannot be used as a weapon and client addresses that cannot be
//! spoofed in `lockout`.
//!
//! Bursts are released at the same instant (`instant`) while the password pool is paused, so
//! that every request has taken its slot (or been refused) before anything is hashed: the
//! counts below are exact, not a matter of timing.

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::both_backends;
use crate::flow::{hidden, location, Browser, PASSWORD};
use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::instant::{self, by_status, Answer};

mod lockout;
mod tarpit;

both_backends!(
    attack22_concurrent_guesses_check_at_most_max_failures_passwords,
    attack22_nodes_on_one_database_share_the_slots,
    attack23_hashing_flood_is_bounded,
);

/// The test client connects from here, so it is the proxy that may name client addresses.
const PROXY: &str = "127.0.0.1";

async fn app_with(
    backend: Backend,
    configure: impl FnOnce(&mut sigil::config::Settings),
) -> (TestApp, String) {
    let app = spawn_app_with(backend, |s| {
        s.http.trusted_proxies = vec![PROXY.parse().unwrap()];
        configure(s)
    })
    .await;
    let (id, _) = app.web_client("rp", json!({}));
    app.add_user("alice");
    (app, id)
}

/// One browser's login form: a parked request and the CSRF token (equal to its cookie). The
/// form may be posted many times.
struct Form {
    request: String,
    csrf: String,
}

async fn login_form(app: &TestApp, id: &str) -> Form {
    let browser = Browser::new();
    let r = app.start(&browser, id, &[]).await;
    let html = browser.get(&location(&r)).await.text().await.unwrap();
    Form {
        request: hidden(&html, "request"),
        csrf: hidden(&html, "csrf_token"),
    }
}

/// A login POST from `form`'s browser, for the client at `from` (as the proxy says), with the
/// browser's device cookie if it has one.
fn login(
    app: &TestApp,
    form: &Form,
    username: &str,
    password: &str,
    from: &str,
    device: Option<&str>,
) -> Vec<u8> {
    login_with(
        app,
        form,
        (username, password),
        &[("X-Forwarded-For", from)],
        device,
    )
}

/// The same with any headers.
fn login_with(
    app: &TestApp,
    form: &Form,
    (username, password): (&str, &str),
    headers: &[(&str, &str)],
    device: Option<&str>,
) -> Vec<u8> {
    let mut cookie = format!("sigil_csrf={}", form.csrf);
    if let Some(d) = device {
        cookie.push_str(&format!("; sigil_device={d}"));
    }
    instant::form_post(
        &app.url("/login"),
        Some(&cookie),
        &[
            ("request", &form.request),
            ("csrf_token", &form.csrf),
            ("username", username),
            ("password", password),
        ],
        headers,
    )
}

/// `127.0.0.1:PORT` of a node's base URL.
fn host(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Fires `requests` at once at the node at `base`, in the background.
fn spawn_fire(base: &str, requests: Vec<Vec<u8>>) -> tokio::task::JoinHandle<Vec<Answer>> {
    let host = host(base);
    tokio::spawn(async move { instant::fire(&host, requests).await })
}

async fn send(app: &TestApp, request: Vec<u8>) -> Answer {
    instant::fire(&host(&app.address), vec![request])
        .await
        .remove(0)
}

fn device_cookie(a: &Answer) -> Option<String> {
    a.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.strip_prefix("sigil_device="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// A refusal's page with its wait in minutes blanked: two answers computed on either side of a
/// second's boundary may round the same lock to 15 and 16 minutes.
fn refusal(a: &Answer) -> String {
    let page = &a.body;
    match page.find("Try again in ") {
        Some(i) => {
            let rest = &page[i + "Try again in ".len()..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            format!("{}Try again in N{}", &page[..i], &rest[digits..])
        }
        None => page.clone(),
    }
}

fn retry_after(a: &Answer) -> i64 {
    a.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After in a {} answer", a.status))
        .parse()
        .unwrap()
}

/// Waits until `check` holds, polling; bounded, so that a broken server fails the test
/// instead of hanging it. Nothing here waits for a hash: the pool is paused meanwhile.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not reached within 30 s");
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Login requests the node at `base` answered so far, whatever their status.
async fn login_answers(base: &str) -> usize {
    metrics(base)
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("sigil_http_requests_total{route=\"/login\","))
        .map(|rest| rest.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum()
}

async fn attack22_concurrent_guesses_check_at_most_max_failures_passwords(backend: Backend) {
    let (app, id) = app_with(backend, |_| {}).await;
    let max = app.settings.login.max_failures as usize;
    assert_eq!(max, 5);
    let pool = &app.state.passwords;
    let mut right_answers = Vec::new();
    for (round, n) in [30usize, 30, 41, 30].into_iter().enumerate() {
        // A fresh account each round, guessed from its own address.
        let user = format!("victim{round}");
        app.add_user(&user);
        let form = login_form(&app, &id).await;
        let from = format!("203.0.113.{round}");
        let right_at = (round * 11 + 7) % n;
        let guesses: Vec<String> = (0..n).map(|i| format!("guess number {i}")).collect();
        let requests = (0..n)
            .map(|i| {
                let password = if i == right_at { PASSWORD } else { &guesses[i] };
                login(&app, &form, &user, password, &from, None)
            })
            .collect();
        let hashed_before = pool.stats().hashed;
        let answered_before = login_answers(&app.address).await;
        let paused = pool.pause();
        let burst = spawn_fire(&app.address, requests);
        // Every request has either taken a slot (and waits for the pool) or been refused.
        let app_ref = &app;
        until("every request queued or answered", || async move {
            pool.stats().queued_normal + login_answers(&app_ref.address).await - answered_before
                == n
        })
        .await;
        let queued = pool.stats().queued_normal;
        assert!(
            queued <= max,
            "round {round}: {queued} checks for {max} slots"
        );
        // Sent now, after the limit, the right password gets the very answer a wrong one gets.
        let late_right = send(&app, login(&app, &form, &user, PASSWORD, &from, None)).await;
        let late_wrong = send(&app, login(&app, &form, &user, "late", &from, None)).await;
        assert_eq!(late_right.status, 429);
        assert_eq!(late_right.status, late_wrong.status);
        assert_eq!(refusal(&late_right), refusal(&late_wrong), "no oracle");
        assert!(late_right.body.contains("Too many failed sign-ins"));
        assert!(retry_after(&late_right) > 0);
        drop(paused);
        let answers = burst.await.unwrap();
        let counts = by_status(&answers);
        let hashed = (pool.stats().hashed - hashed_before) as usize;
        let (failed, signed_in) = (
            counts.get(&401).copied().unwrap_or(0),
            counts.get(&303).copied().unwrap_or(0),
        );
        assert!(hashed <= max, "round {round}: {hashed} passwords checked");
        assert_eq!(hashed, queued);
        assert_eq!(failed + signed_in, hashed, "{counts:?}");
        assert_eq!(counts.get(&429).copied(), Some(n - hashed), "{counts:?}");
        for a in answers.iter().filter(|a| a.status == 429) {
            assert!(retry_after(a) > 0);
            assert_eq!(refusal(a), refusal(&late_wrong));
        }
        // The right password in the burst signed in only if it held one of the slots;
        // otherwise its answer is a wrong password's.
        let right = &answers[right_at];
        assert!(
            right.status == 303 || refusal(right) == refusal(&late_wrong),
            "round {round}: {} {}",
            right.status,
            right.body
        );
        right_answers.push(right.status);
        // Whatever the burst did, the account is now locked (the wrong guesses filled it) or,
        // after the right password, open again for its owner.
        let after = send(&app, login(&app, &form, &user, PASSWORD, &from, None)).await;
        if signed_in == 0 {
            assert_eq!(after.status, 429, "round {round}: locked");
            assert_eq!(refusal(&after), refusal(&late_wrong));
        }
        // Locked once, for one window, however many failures finished together — and only
        // when every slot was a real failure: a check in flight that succeeds locks no one.
        let address = counter(&app, &format!("ip:{from}")).await.unwrap();
        assert_eq!(address.pending, 0);
        assert_eq!(address.failures as usize, failed, "round {round}");
        let keys = [format!("ip:{from}"), format!("user:{user}")];
        for key in keys.iter().filter(|_| signed_in == 0) {
            let row = counter(&app, key).await.unwrap();
            assert_eq!(row.lockouts, 1, "{key}");
            let window = app.settings.login.window.as_secs() as i64;
            assert!(row.locked_until <= app.state.clock.now() + window, "{key}");
        }
        if signed_in == 1 {
            assert_eq!(
                address.lockouts, 0,
                "round {round}: four failures and a success"
            );
            assert!(
                counter(&app, &keys[1]).await.is_none(),
                "the account starts afresh"
            );
        }
    }
    assert!(right_answers.iter().all(|s| [303, 429].contains(s)));
}

async fn attack22_nodes_on_one_database_share_the_slots(backend: Backend) {
    let (app, id) = app_with(backend, |_| {}).await;
    let other = crate::two_nodes::start_node(app.settings.clone(), sigil::clock::Clock::system());
    let max = app.settings.login.max_failures as usize;
    let pools = [&app.state.passwords, &other.state.passwords];
    let bases = [app.address.as_str(), other.address.as_str()];
    let queued = || pools.iter().map(|p| p.stats().queued_normal).sum::<usize>();
    let hashed = || pools.iter().map(|p| p.stats().hashed).sum::<u64>() as usize;
    let answered = || async move { login_answers(bases[0]).await + login_answers(bases[1]).await };
    for round in 0..3 {
        let user = format!("shared{round}");
        app.add_user(&user);
        let form = login_form(&app, &id).await;
        let from = format!("203.0.113.{}", 100 + round);
        let mut requests: Vec<Vec<u8>> = (0..30)
            .map(|i| login(&app, &form, &user, &format!("guess {i}"), &from, None))
            .collect();
        let (hashed_before, answered_before) = (hashed(), answered().await);
        let paused = pools.map(|p| p.pause());
        // Half the burst to each node, at once.
        let second_half = requests.split_off(15);
        let bursts = [
            spawn_fire(bases[0], requests),
            spawn_fire(bases[1], second_half),
        ];
        until("every request queued or answered", || async {
            queued() + answered().await - answered_before == 30
        })
        .await;
        assert_eq!(
            queued(),
            max,
            "round {round}: the nodes agree on {max} slots"
        );
        drop(paused);
        let mut answers = Vec::new();
        for burst in bursts {
            answers.extend(burst.await.unwrap());
        }
        let counts = by_status(&answers);
        assert_eq!(hashed() - hashed_before, max);
        assert_eq!(counts.get(&401), Some(&max), "{counts:?}");
        assert_eq!(counts.get(&429), Some(&(30 - max)), "{counts:?}");
    }
}

async fn attack23_hashing_flood_is_bounded(backend: Backend) {
    // A high max_failures, so that only the pool's own bounds stand against the flood.
    let (app, id) = app_with(backend, |s| {
        s.login.max_pending = 8;
        s.login.max_failures = 1000;
    })
    .await;
    app.add_user("bob");
    let pool = &app.state.passwords;
    let bounds = pool.bounds();
    assert_eq!((bounds.normal.pending, bounds.normal.per_address), (8, 2));
    let form = login_form(&app, &id).await;
    // Alice's own browser signed in before: it carries a device cookie.
    let first = send(
        &app,
        login(&app, &form, "alice", PASSWORD, "192.0.2.200", None),
    )
    .await;
    assert_eq!(first.status, 303);
    let device = device_cookie(&first).expect("a device cookie");

    let before = pool.stats();
    let paused = pool.pause();
    let long = "x".repeat(1025);
    let mut flood = Vec::new();
    // One flooder, many addresses, and over-long passwords (for a real and unknown users).
    for i in 0..20 {
        let user = format!("ghost{i}");
        flood.push(login(&app, &form, &user, "guess", "203.0.113.66", None));
    }
    for i in 0..40 {
        let (user, from) = (format!("ghost{i}"), format!("198.51.100.{i}"));
        flood.push(login(&app, &form, &user, "guess", &from, None));
    }
    for i in 0..20 {
        let user = if i % 2 == 0 { "alice" } else { "ghost" };
        flood.push(login(
            &app,
            &form,
            user,
            &long,
            &format!("192.0.2.{i}"),
            None,
        ));
    }
    let flood = spawn_fire(&app.address, flood);
    let rejected_before = before.rejected;
    until(
        "every check of normal length queued or refused",
        || async move {
            let s = pool.stats();
            s.queued_normal as u64 + s.rejected - rejected_before == 60
        },
    )
    .await;
    assert_eq!(pool.stats().queued_normal, bounds.normal.pending);

    // During the flood: discovery answers; a new browser is told to come back, and keeps no
    // slot; the user's own browser goes ahead of the queue.
    assert_eq!(
        app.http
            .get(app.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let busy = send(
        &app,
        login(&app, &form, "bob", PASSWORD, "198.51.100.200", None),
    )
    .await;
    assert_eq!(busy.status, 503);
    assert_eq!(retry_after(&busy), 5);
    assert!(busy.body.contains("Try again in a few seconds"));
    let bob = counter(&app, "user:bob").await;
    assert_eq!(bob.map(|r| r.failures), Some(0), "the slot was given back");
    let own = spawn_fire(
        &app.address,
        vec![login(
            &app,
            &form,
            "alice",
            PASSWORD,
            "198.51.100.201",
            Some(&device),
        )],
    );
    until("the returning user's check queued", || async move {
        pool.stats().queued_priority == 1
    })
    .await;
    drop(paused);
    assert_eq!(
        own.await.unwrap()[0].status,
        303,
        "the returning user signs in"
    );
    let answers = flood.await.unwrap();
    let counts = by_status(&answers);
    assert_eq!(counts.get(&503), Some(&52), "{counts:?}");
    assert_eq!(counts.get(&401), Some(&(8 + 20)), "{counts:?}");
    for a in answers.iter().filter(|a| a.status == 503) {
        assert_eq!(retry_after(a), 5);
    }
    let flooder_checked = answers[..20].iter().filter(|a| a.status != 503).count();
    assert!(
        flooder_checked <= bounds.normal.per_address,
        "one address held {flooder_checked} of the pool's places"
    );
    let hashed = pool.stats().hashed - before.hashed;
    assert_eq!(hashed, 8 + 1, "over-long passwords are never hashed");
    // An over-long password is answered like a wrong one.
    let wrong = send(
        &app,
        login(&app, &form, "alice", "wrong", "192.0.2.0", None),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(answers[60].body, wrong.body);

    // Names that cannot be usernames (a NUL byte, too long — yet under http.max_param_bytes)
    // are answered like unknown users, and only the client address counts them.
    for name in ["al\0ice", &"y".repeat(4000)] {
        let r = send(&app, login(&app, &form, name, "guess", "192.0.2.77", None)).await;
        assert_eq!(r.status, 401);
        assert!(r.body.contains("Incorrect username or password."));
    }
    assert_eq!(counter(&app, "ip:192.0.2.77").await.unwrap().failures, 2);

    // Clients that go away while their checks wait are never hashed.
    let before = pool.stats();
    let paused = pool.pause();
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(host(&app.address))
            .await
            .unwrap();
        let (user, from) = (format!("gone{i}"), format!("198.51.100.{}", 100 + i));
        let request = login(&app, &form, &user, "guess", &from, None);
        stream.write_all(&request).await.unwrap();
        clients.push(stream);
    }
    until("the checks queued", || async move {
        pool.stats().queued_normal == 6
    })
    .await;
    drop(clients);
    // actix-web drops the handler of a closed connection, and with it the wait.
    until("the server saw the clients go", || async move {
        pool.stats().abandoned == 6
    })
    .await;
    drop(paused);
    until("the queue drained", || async move {
        let s = pool.stats();
        s.queued_normal + s.running == 0
    })
    .await;
    let after = pool.stats();
    assert_eq!(
        after.hashed, before.hashed,
        "no hash for a client that left"
    );
    assert_eq!(after.dropped, before.dropped + 6);
    // The pool's bounds and outcomes are in /metrics.
    let text = metrics(&app.address).await;
    for line in [
        "sigil_password_checks_limit{lane=\"normal\"} 8".to_string(),
        "sigil_password_checks_address_limit{lane=\"normal\"} 2".to_string(),
        "sigil_password_checks_queued{lane=\"normal\"} 0".to_string(),
        format!(
            "sigil_password_checks_total{{outcome=\"hashed\"}} {}",
            after.hashed
        ),
        format!(
            "sigil_password_checks_total{{outcome=\"rejected\"}} {}",
            after.rejected
        ),
        format!(
            "sigil_password_checks_total{{outcome=\"dropped\"}} {}",
            after.dropped
        ),
    ] {
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
}

async fn counter(app: &TestApp, key: &str) -> Option<sigil::storage::login_failures::FailureRow> {
    let key = key.to_string();
    app.state
        .db
        .run(move |c| sigil::storage::login_failures::get(c, &key))
        .await
        .unwrap()
}
