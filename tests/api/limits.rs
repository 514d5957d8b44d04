//! SECURITY.md 27, storage flooding: oversized parameters and bodies are refused before anything
//! is stored, and one client address can keep only so many authorization requests parked.

use diesel::prelude::*;
use serde_json::json;

use crate::both_backends;
use crate::flow::{hidden, location, Browser, CHALLENGE, REDIRECT};
use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::instant;

both_backends!(
    attack27_oversized_parameters_are_refused_before_anything_is_stored,
    attack27_bodies_over_the_limit_are_refused_everywhere,
    attack27_one_address_keeps_at_most_its_cap_of_parked_requests,
);

async fn parked_count(app: &TestApp) -> i64 {
    use sigil::storage::schema::auth_requests::dsl;
    app.state
        .db
        .run(|c| -> Result<i64, sigil::storage::StorageError> {
            Ok(dsl::auth_requests.count().get_result(c)?)
        })
        .await
        .unwrap()
}

fn authorize_params<'a>(
    id: &'a str,
    extra: &[(&'static str, &'a str)],
) -> Vec<(&'static str, &'a str)> {
    let mut params = vec![
        ("client_id", id),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(p, _)| p != k);
        params.push((k, v));
    }
    params
}

async fn attack27_oversized_parameters_are_refused_before_anything_is_stored(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.http.max_param_bytes = 1024).await;
    let (id, _) = app.web_client("rp", json!({}));
    let browser = Browser::new();
    let big = "x".repeat(1025);
    let fits = "y".repeat(1024);
    // Right at the limit: accepted (and parked for the login page).
    let r = app.start(&browser, &id, &[("state", &fits)]).await;
    assert!(location(&r).contains("/login?"), "{}", r.status());
    assert_eq!(parked_count(&app).await, 1);
    let authorize = app.endpoint("authorization_endpoint").await;
    for name in [
        "state",
        "nonce",
        "login_hint",
        "claims",
        "ui_locales",
        "unknown_extra",
    ] {
        // GET: an error page, no redirect, nothing parked.
        let r = app.start(&browser, &id, &[(name, &big)]).await;
        assert_eq!(r.status(), 400, "GET {name}");
        assert!(r.headers().get("location").is_none(), "GET {name}");
        let page = r.text().await.unwrap();
        assert!(page.contains("longer than 1024 bytes"), "{page}");
        assert!(!page.contains(&big), "the value is not echoed");
        // POST likewise.
        let r = browser
            .post_form(&authorize, &authorize_params(&id, &[(name, &big)]))
            .await;
        assert_eq!(r.status(), 400, "POST {name}");
        assert!(r.headers().get("location").is_none(), "POST {name}");
    }
    assert_eq!(parked_count(&app).await, 1, "nothing more was stored");
    // The token endpoint answers with the RFC's error.
    let r = app
        .token_basic(
            "rp",
            "x",
            &[("grant_type", "authorization_code"), ("code", &big)],
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

async fn attack27_bodies_over_the_limit_are_refused_everywhere(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.http.max_body_bytes = 4096).await;
    let (id, _) = app.web_client("rp", json!({}));
    app.add_user("alice");
    let browser = Browser::new();
    let r = app.start(&browser, &id, &[]).await;
    let login_url = location(&r);
    let html = browser.get(&login_url).await.text().await.unwrap();
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    let parked = parked_count(&app).await;
    let pad = "p".repeat(3000);
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        let url = app.url(path);
        let http = browser.http.clone();
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    // Each form: a body over 4 KiB made of parameters under the parameter limit.
    let forms: Vec<(&str, Vec<(&'static str, String)>)> = vec![
        (
            "/authorize",
            authorize_params(&id, &[])
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .chain([("pad1", pad.clone()), ("pad2", pad.clone())])
                .collect(),
        ),
        (
            "/login",
            vec![
                ("request", request.clone()),
                ("csrf_token", csrf.clone()),
                ("username", "alice".into()),
                ("password", crate::flow::PASSWORD.into()),
                ("pad1", pad.clone()),
                ("pad2", pad.clone()),
            ],
        ),
        (
            "/consent",
            vec![
                ("request", request.clone()),
                ("csrf_token", csrf.clone()),
                ("decision", "allow".into()),
                ("pad1", pad.clone()),
                ("pad2", pad.clone()),
            ],
        ),
        (
            "/logout",
            vec![
                ("logout", "1".into()),
                ("pad1", pad.clone()),
                ("pad2", pad.clone()),
            ],
        ),
        (
            "/token",
            vec![
                ("grant_type", "client_credentials".into()),
                ("pad1", pad.clone()),
                ("pad2", pad.clone()),
            ],
        ),
        (
            "/userinfo",
            vec![("access_token", pad.clone()), ("pad", pad.clone())],
        ),
    ];
    for (path, form) in forms {
        let r = post(path, form).await;
        assert_eq!(r.status(), 413, "{path}");
        assert!(r.headers().get("location").is_none(), "{path}");
        assert!(r.headers().get("set-cookie").is_none(), "{path}");
    }
    assert_eq!(parked_count(&app).await, parked, "nothing was parked");
    // The same login, within the limit, still signs in: the refused one changed nothing.
    let r = app
        .submit_login(&browser, &login_url, "alice", crate::flow::PASSWORD)
        .await;
    assert_eq!(r.status(), 303);
}

async fn attack27_one_address_keeps_at_most_its_cap_of_parked_requests(backend: Backend) {
    const CAP: i64 = 5;
    let app = spawn_app_with(backend, |s| s.login.max_parked_per_address = CAP as u32).await;
    let (id, _) = app.web_client("rp", json!({}));
    let browser = Browser::new();
    let mut logins = Vec::new();
    for n in 0..12 {
        let state = format!("s{n}");
        let r = app.start(&browser, &id, &[("state", &state)]).await;
        logins.push(location(&r));
        assert!(parked_count(&app).await <= CAP);
        // Age is counted in seconds: one request per second makes "oldest" unambiguous.
        app.state.clock.advance(1);
    }
    assert_eq!(parked_count(&app).await, CAP);
    // The newest ones are still there, the oldest gave way.
    for (n, url) in logins.iter().enumerate() {
        let status = browser.get(url).await.status();
        if n >= logins.len() - CAP as usize {
            assert_eq!(status, 200, "request {n} is among the newest");
        } else {
            assert_eq!(status, 403, "request {n} was evicted");
        }
    }
    // Thirty at once: the database never holds more than the cap plus the requests that were
    // in flight together (bounded by the connection pool), and the next one trims it back.
    let host = app.address.trim_start_matches("http://").to_string();
    let mut url = url::Url::parse(&app.endpoint("authorization_endpoint").await).unwrap();
    url.query_pairs_mut()
        .extend_pairs(authorize_params(&id, &[]));
    let requests = (0..30)
        .map(|_| instant::request("GET", url.as_str(), &[], ""))
        .collect();
    let answers = instant::fire(&host, requests).await;
    assert!(
        answers.iter().all(|a| a.status == 303),
        "{:?}",
        instant::by_status(&answers)
    );
    let pool = i64::from(app.settings.database.max_connections);
    let after_burst = parked_count(&app).await;
    assert!(after_burst <= CAP + pool, "{after_burst} parked");
    app.start(&browser, &id, &[]).await;
    assert_eq!(parked_count(&app).await, CAP);
    // Another address has its own allowance: the cap is per address.
    let other: Vec<String> = {
        use sigil::storage::schema::auth_requests::dsl;
        app.state
            .db
            .run(|c| -> Result<Vec<String>, sigil::storage::StorageError> {
                Ok(dsl::auth_requests
                    .select(dsl::client_address)
                    .distinct()
                    .load(c)?)
            })
            .await
            .unwrap()
    };
    assert_eq!(other, vec!["127.0.0.1".to_string()]);
}
