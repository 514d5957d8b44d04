//! Dynamic client registration (RFC 7591) and its management (RFC 7592), SECURITY.md 32: off by
//! default; initial access tokens expire and are used once, also under concurrency; open
//! registration is capped per client address and in total; metadata passes the checks of
//! `sigil client add` and those for clients that register themselves; registration access
//! tokens are stored hashed and every failure to present one is the same 401.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::audit::{events, find};
use crate::both_backends;
use crate::flow::{Browser, REDIRECT, VERIFIER};
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::instant::{self, by_status};
use sigil::admin::registration::{issue_initial_token, token_hash};
use sigil::audit::By;
use sigil::config::{RegistrationMode, Settings};
use sigil::storage::StorageError;

mod initial_tokens;
mod management;

both_backends!(
    rfc7591_3_registration_is_off_by_default_and_then_404_and_not_in_discovery,
    rfc7591_3_token_mode_refuses_missing_wrong_expired_and_used_initial_tokens,
    rfc7591_3_one_initial_token_under_30_concurrent_registrations_makes_one_client,
    rfc7591_3_open_mode_caps_each_address_per_hour_and_the_total,
    rfc7591_3_open_mode_counts_each_client_address_behind_a_trusted_proxy,
    rfc7591_3_2_2_metadata_errors_register_nothing,
    rfc7591_3_2_1_the_registered_client_signs_in_with_the_code_flow,
);

pub(crate) fn token_mode(s: &mut Settings) {
    s.registration.mode = RegistrationMode::Token;
}

pub(crate) fn open_mode(s: &mut Settings) {
    s.registration.mode = RegistrationMode::Open;
    s.registration.max_per_address_per_hour = 1000;
}

/// A new initial access token good for `ttl` seconds, as the CLI makes it.
pub(crate) fn initial_token(app: &TestApp, ttl: u64) -> String {
    let now = app.state.clock.now();
    let issued = app
        .state
        .db
        .with_conn(|c| issue_initial_token(c, ttl, &By::cli(), now))
        .unwrap();
    issued["initial_access_token"].as_str().unwrap().to_string()
}

pub(crate) fn web_metadata() -> Value {
    json!({
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid email offline_access",
        "client_name": "Registered App",
    })
}

/// POST /register (found through discovery) with an optional bearer token.
pub(crate) async fn post(app: &TestApp, token: Option<&str>, body: &Value) -> reqwest::Response {
    let url = app.endpoint("registration_endpoint").await;
    let mut request = app.http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub(crate) async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or("").to_string())
}

/// Asserts the one 401 of RFC 6750 §3.1.
pub(crate) async fn assert_invalid_token(r: reqwest::Response, what: &str) -> String {
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\"",
        "{what}"
    );
    let body = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "invalid_token", "{what}: {body}");
    body
}

/// `SELECT COUNT(*) FROM table WHERE filter`.
pub(crate) fn count(app: &TestApp, table: &str, filter: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}");
    app.state
        .db
        .with_conn(|c| {
            use diesel::RunQueryDsl;
            diesel::sql_query(&sql)
                .get_result::<Count>(c)
                .map_err(StorageError::from)
        })
        .unwrap()
        .n
}

/// Clients other than Sigil's own.
pub(crate) fn client_count(app: &TestApp) -> i64 {
    count(app, "clients", "client_id NOT LIKE 'sigil-%'")
}

async fn rfc7591_3_registration_is_off_by_default_and_then_404_and_not_in_discovery(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    assert!(app.discovery().await.get("registration_endpoint").is_none());
    let r = app
        .http
        .post(app.url("/register"))
        .json(&web_metadata())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (id, _) = app.web_client("admin-made", json!({}));
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let r = app
            .http
            .request(method.clone(), app.url(&format!("/register/{id}")))
            .bearer_auth("anything")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method}");
    }
    assert_eq!(
        app.http
            .get(app.url("/register"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(client_count(&app), 1, "nothing registered");

    // On, it is advertised at the issuer's /register (RFC 8414 §2).
    let on = spawn_app_with(backend, token_mode).await;
    assert_eq!(
        on.discovery().await["registration_endpoint"],
        format!("{}/register", on.issuer())
    );
    let r = on.http.get(on.url("/register")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

async fn rfc7591_3_token_mode_refuses_missing_wrong_expired_and_used_initial_tokens(
    backend: Backend,
) {
    let app = spawn_app_with(backend, token_mode).await;
    let body = web_metadata();
    assert_invalid_token(post(&app, None, &body).await, "no token").await;
    assert_invalid_token(post(&app, Some("not-a-token"), &body).await, "wrong").await;
    // Authentication comes first: bad metadata without a token is still 401.
    assert_invalid_token(
        post(&app, None, &json!({"redirect_uris": ["x"]})).await,
        "bad",
    )
    .await;
    let r = app
        .http
        .post(app.endpoint("registration_endpoint").await)
        .basic_auth("someone", Some("secret"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_invalid_token(r, "Basic instead of Bearer").await;

    let expiring = initial_token(&app, 60);
    app.state.clock.advance(61);
    assert_invalid_token(post(&app, Some(&expiring), &body).await, "expired").await;

    // Bad metadata with a good token is refused and leaves the token usable.
    let token = initial_token(&app, 3600);
    let r = post(
        &app,
        Some(&token),
        &json!({"redirect_uris": ["http://rp.example/cb"]}),
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_redirect_uri".into())
    );
    assert_eq!(client_count(&app), 0);
    let r = post(&app, Some(&token), &body).await;
    assert_eq!(r.status(), 201);
    assert_invalid_token(post(&app, Some(&token), &body).await, "used").await;
    assert_eq!(client_count(&app), 1, "one registration per token");
    // Used and expired tokens are gone or refused; the used one's row is gone.
    assert_eq!(
        count(
            &app,
            "initial_access_tokens",
            &format!("token_hash = '{}'", token_hash(&token))
        ),
        0
    );
}

async fn rfc7591_3_one_initial_token_under_30_concurrent_registrations_makes_one_client(
    backend: Backend,
) {
    let app = spawn_app_with(backend, token_mode).await;
    let url = app.endpoint("registration_endpoint").await;
    let host = app.address.trim_start_matches("http://").to_string();
    for round in 0..2 {
        let token = initial_token(&app, 600);
        let auth = format!("Bearer {token}");
        let body = web_metadata().to_string();
        let requests = (0..30)
            .map(|_| {
                instant::request(
                    "POST",
                    &url,
                    &[
                        ("Content-Type", "application/json"),
                        ("Authorization", &auth),
                    ],
                    &body,
                )
            })
            .collect();
        let answers = instant::fire(&host, requests).await;
        let statuses = by_status(&answers);
        assert_eq!(statuses.get(&201), Some(&1), "round {round}: {statuses:?}");
        assert_eq!(statuses.get(&401), Some(&29), "round {round}: {statuses:?}");
        assert_eq!(count(&app, "registered_clients", "1 = 1"), round + 1);
    }
    assert_eq!(client_count(&app), 2);
}

async fn rfc7591_3_open_mode_caps_each_address_per_hour_and_the_total(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.registration.mode = RegistrationMode::Open;
        s.registration.max_per_address_per_hour = 3;
        s.registration.max_clients = 4;
    })
    .await;
    let url = app.endpoint("registration_endpoint").await;
    let host = app.address.trim_start_matches("http://").to_string();
    let body = web_metadata().to_string();
    let requests = (0..12)
        .map(|_| instant::request("POST", &url, &[("Content-Type", "application/json")], &body))
        .collect();
    let answers = instant::fire(&host, requests).await;
    let statuses = by_status(&answers);
    assert_eq!(statuses.get(&201), Some(&3), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&9), "{statuses:?}");
    let refused = answers.iter().find(|a| a.status == 429).unwrap();
    let wait: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    let v: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(v["error"], "temporarily_unavailable");
    assert_eq!(client_count(&app), 3);

    // The next hour the address may register again, up to the total of 4 clients.
    app.state.clock.advance(3601);
    let r = post(&app, None, &web_metadata()).await;
    assert_eq!(r.status(), 201);
    let r = post(&app, None, &web_metadata()).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_of(r).await.1, "temporarily_unavailable");
    assert_eq!(client_count(&app), 4);
    // Clients an administrator registers do not count, and are not refused.
    app.web_client("admin-made", json!({}));
}

async fn rfc7591_3_2_2_metadata_errors_register_nothing(backend: Backend) {
    let app = spawn_app_with(backend, open_mode).await;
    let with = |extra: Value| {
        let mut m = web_metadata();
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let cases = [
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["/relative"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/cb#f"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://rp.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://10.0.0.5/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"post_logout_redirect_uris": ["http://rp.example/"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (json!({"skip_consent": true}), "invalid_client_metadata"),
        (
            json!({"scope": "openid sigil:admin"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "response_types": []}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://127.0.0.1/jwks"}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://169.254.169.254/jwks"}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://localhost/jwks"}),
            "invalid_client_metadata",
        ),
        (
            json!({"backchannel_logout_uri": "https://10.1.1.1/bc"}),
            "invalid_client_metadata",
        ),
        (
            json!({"id_token_signed_response_alg": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"software_statement": "eyJhbGciOiJub25lIn0.e30."}),
            "unapproved_software_statement",
        ),
    ];
    for (extra, code) in cases {
        let r = post(&app, None, &with(extra.clone())).await;
        assert_eq!(
            error_of(r).await,
            (StatusCode::BAD_REQUEST, code.to_string()),
            "{extra}"
        );
    }
    let url = app.endpoint("registration_endpoint").await;
    for (content_type, body) in [
        ("application/json", "{not json".to_string()),
        ("application/json", "[1, 2]".to_string()),
        (
            "application/x-www-form-urlencoded",
            "redirect_uris=https://rp.example/cb".to_string(),
        ),
    ] {
        let r = app
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(r).await,
            (StatusCode::BAD_REQUEST, "invalid_client_metadata".into()),
            "{body}"
        );
    }
    // Bodies are bounded by http.max_body_bytes.
    let huge = with(json!({"client_name": "x".repeat(20 * 1024)}));
    let r = post(&app, None, &huge).await;
    assert_eq!(r.status(), 413);
    assert_eq!(client_count(&app), 0, "nothing was registered");

    // Loopback over http (RFC 8252 §7.3) and native schemes are fine, as for the CLI.
    let r = post(
        &app,
        None,
        &with(json!({
            "redirect_uris": ["http://127.0.0.1:8123/cb", "http://[::1]/cb", "http://localhost/cb", "com.example.app:/cb"],
            "token_endpoint_auth_method": "none",
        })),
    )
    .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("client_secret").is_none(), "a public client: {v}");
}

async fn rfc7591_3_2_1_the_registered_client_signs_in_with_the_code_flow(backend: Backend) {
    let app = spawn_app_with(backend, token_mode).await;
    let alice = app.add_user("alice");
    let token = initial_token(&app, 600);
    let r = post(&app, Some(&token), &web_metadata()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let reg: Value = r.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let rat = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(secret.len(), 43);
    assert_eq!(rat.len(), 43);
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert!(reg["client_id_issued_at"].as_i64().unwrap() > 0);
    assert_eq!(
        reg["registration_client_uri"],
        format!("{}/register/{id}", app.issuer())
    );
    assert_eq!(reg["redirect_uris"], json!([REDIRECT]));
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        reg["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(reg["client_name"], "Registered App");

    // The client works: code flow, client_secret_basic at /token, the ID token for it.
    let code = app
        .code_for(&Browser::new(), &id, &[("scope", "openid email")])
        .await;
    let r = app.exchange(&id, &secret, &code, Some(VERIFIER)).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let (_, claims) = crate::helpers::jwt_parts(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], id);
    assert_eq!(claims["sub"], alice["id"]);

    // Stored hashed: the registration access token and the initial token appear nowhere.
    let hash = token_hash(&rat);
    assert_eq!(
        count(
            &app,
            "registered_clients",
            &format!("client_id = '{id}' AND access_token_hash = '{hash}'")
        ),
        1
    );
    assert_eq!(
        count(
            &app,
            "registered_clients",
            &format!("access_token_hash = '{rat}' OR client_address = '{rat}'")
        ),
        0
    );
    assert_eq!(
        count(
            &app,
            "initial_access_tokens",
            &format!("token_hash = '{token}'")
        ),
        0
    );
    assert_eq!(
        count(
            &app,
            "audit_events",
            &format!("details LIKE '%{rat}%' OR details LIKE '%{token}%'")
        ),
        0
    );

    let all = events(&app).await;
    let added = find(&all, "client.added");
    assert_eq!(added.actor_kind, "registration");
    assert_eq!(added.target.as_deref(), Some(id.as_str()));
    assert_eq!(added.client_address.as_deref(), Some("127.0.0.1"));
    let issued = find(&all, "client.initial_token_issued");
    assert_eq!(issued.actor_kind, "cli");
}

async fn rfc7591_3_open_mode_counts_each_client_address_behind_a_trusted_proxy(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.registration.mode = RegistrationMode::Open;
        s.registration.max_per_address_per_hour = 1;
        s.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let url = app.endpoint("registration_endpoint").await;
    let from = |address: &'static str| {
        app.http
            .post(&url)
            .header("X-Forwarded-For", address)
            .json(&web_metadata())
            .send()
    };
    assert_eq!(from("203.0.113.1").await.unwrap().status(), 201);
    assert_eq!(from("203.0.113.1").await.unwrap().status(), 429);
    assert_eq!(from("203.0.113.2").await.unwrap().status(), 201);
    assert_eq!(
        count(&app, "registered_clients", "client_address = '203.0.113.2'"),
        1
    );
}
