//! The access log and request ids, from the real binary's JSON (and human) log: one line per
//! request with the route pattern, never the path's ids nor the query; the request id taken
//! from `X-Request-Id` when sane, echoed, and on every line logged while handling the request;
//! and no token, code or secret anywhere in the log of a whole code flow.

use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::Response;
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{hidden, location, query, Browser, CHALLENGE, PASSWORD, REDIRECT, VERIFIER};
use crate::helpers::{form_encode, sigil_command, test_settings, Backend};
use crate::pg_cluster::free_port;
use crate::server_process::{migrate, register_client, settings_on, ServerProcess};

both_backends!(access_lines_name_the_route_status_client_and_request_id);
both_backends!(a_code_flow_logs_no_secret_and_its_replay_carries_the_request_id);

/// A server on a fresh, migrated database with the client `web` (code flow, first party) and
/// the user `alice`; `env` added to its environment. Also the directory and client secret.
async fn start(
    backend: Backend,
    env: &[(&str, &str)],
) -> (impl Sized, tempfile::TempDir, ServerProcess, String) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, pg) = test_settings(backend, dir.path());
    let settings = settings_on(settings, free_port());
    migrate(&settings, dir.path());
    let web = register_client(
        &settings,
        dir.path(),
        "web",
        &json!({"redirect_uris": [REDIRECT], "skip_consent": true,
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid email offline_access"}),
    );
    let out = sigil_command(
        &settings,
        dir.path(),
        &["user", "add", "alice", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(out.status.success());
    let server = ServerProcess::start(&settings, dir.path(), env).await;
    let secret = web["client_secret"].as_str().unwrap().to_string();
    // In this order, so that the server stops before its directory and database go.
    (pg, dir, server, secret)
}

/// The access line of the request `id`, waiting (bounded) for it to be written.
async fn access_line(server: &ServerProcess, id: &str) -> Value {
    for _ in 0..100 {
        if let Some(line) = server
            .log_lines_at("INFO")
            .into_iter()
            .find(|l| l["target"] == "sigil::access" && l["request_id"] == id)
        {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no access line for {id}:\n{}", server.log_text());
}

fn echoed(r: &Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("X-Request-Id echoed")
        .to_str()
        .unwrap()
        .to_string()
}

fn is_generated(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn access_lines_name_the_route_status_client_and_request_id(backend: Backend) {
    // The test client is the trusted proxy here: the forwarded address is the client's.
    let (_pg, _dir, server, _secret) = start(
        backend,
        &[
            ("SIGIL_HTTP__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"),
            ("SIGIL_PORT", "tcp://10.96.0.7:80"),
            ("SIGIL_SERVICE_HOST", "10.96.0.7"),
        ],
    )
    .await;
    let http = reqwest::Client::new();

    let r = http
        .get(server.url("/.well-known/openid-configuration?probe=query-value-1"))
        .header("x-request-id", "probe-42")
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(echoed(&r), "probe-42");
    let line = access_line(&server, "probe-42").await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/.well-known/openid-configuration");
    assert_eq!(line["status"], 200);
    assert_eq!(line["client"], "198.51.100.7");
    assert!(line["ms"].as_f64().unwrap() >= 0.0, "{line}");

    // A path with an id: the route's pattern is logged, not the id.
    let r = http
        .get(server.url("/admin/api/clients/zq9-client-in-path"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let id = echoed(&r);
    assert!(is_generated(&id), "{id}");
    let line = access_line(&server, &id).await;
    assert_eq!(line["route"], "/admin/api/clients/{client_id}");
    assert_eq!(line["status"], 401);
    assert_eq!(line["client"], "127.0.0.1", "no forwarded header: the peer");

    // No route at all.
    let r = http.post(server.url("/no/such/path")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let line = access_line(&server, &echoed(&r)).await;
    assert_eq!(line["route"], "-");
    assert_eq!(line["method"], "POST");

    // Hostile ids are replaced by generated ones, and never logged.
    let long = "a".repeat(200);
    let hostile: Vec<HeaderValue> = vec![
        HeaderValue::from_str(&long).unwrap(),
        HeaderValue::from_static("id\twith-tab"),
        HeaderValue::from_static("x\" forged=\"1"),
        HeaderValue::from_bytes(b"caf\xc3\xa9-\xff").unwrap(),
        HeaderValue::from_static(""),
    ];
    for value in &hostile {
        let r = http
            .get(server.url("/healthz"))
            .header("x-request-id", value.clone())
            .send()
            .await
            .unwrap();
        let id = echoed(&r);
        assert!(is_generated(&id), "{value:?} gave {id}");
        assert_eq!(access_line(&server, &id).await["route"], "/healthz");
    }

    let log = server.log_text();
    assert!(!log.contains("query-value-1"), "a query string was logged");
    assert!(
        !log.contains("zq9-client-in-path"),
        "a path's id was logged"
    );
    assert!(!log.contains(&long), "a hostile request id was logged");
    assert!(!log.contains("forged"), "a hostile request id was logged");
    // Unknown SIGIL_* variables: one warning naming them, not their values.
    let warned: Vec<Value> = server
        .log_lines_at("WARN")
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("name no setting")
        })
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    let names = warned[0]["variables"].as_str().unwrap();
    assert!(names.contains("SIGIL_PORT") && names.contains("SIGIL_SERVICE_HOST"));
    assert!(!log.contains("10.96.0.7"), "a variable's value was logged");
}

/// The endpoint `name` from discovery.
async fn endpoint(server: &ServerProcess, name: &str) -> String {
    let doc: Value = reqwest::get(server.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = doc["issuer"].as_str().unwrap();
    let path = doc[name].as_str().unwrap().strip_prefix(issuer).unwrap();
    server.url(path)
}

/// The cookie values a response sets.
fn cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next()?.split_once('=').map(|(_, v)| v.into()))
        .filter(|v: &String| v.len() >= 16)
        .collect()
}

async fn a_code_flow_logs_no_secret_and_its_replay_carries_the_request_id(backend: Backend) {
    let (_pg, _dir, server, secret) = start(backend, &[]).await;
    let browser = Browser::new();
    let mut secrets = vec![secret.clone(), PASSWORD.to_string(), VERIFIER.to_string()];

    let mut authorize =
        url::Url::parse(&endpoint(&server, "authorization_endpoint").await).unwrap();
    authorize.query_pairs_mut().extend_pairs([
        ("client_id", "web"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid email offline_access"),
        ("state", "state-in-query"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let mut r = browser.get(authorize.as_str()).await;
    // Sigil's own redirects (the login form, the resumed request) until the client's.
    for _ in 0..6 {
        assert_eq!(r.status(), 303);
        secrets.extend(cookies(&r));
        let to = location(&r);
        let to = if to.starts_with('/') {
            server.url(&to)
        } else {
            to
        };
        if to.starts_with(REDIRECT) {
            break;
        }
        r = if to.contains("/login?") {
            let html = browser.get(&to).await.text().await.unwrap();
            let csrf = hidden(&html, "csrf_token");
            secrets.push(csrf.clone());
            let form = [
                ("request", hidden(&html, "request")),
                ("csrf_token", csrf),
                ("username", "alice".into()),
                ("password", PASSWORD.into()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post_form(&server.url("/login"), &form).await
        } else {
            browser.get(&to).await
        };
    }
    let code = query(&location(&r))["code"].clone();
    secrets.push(code.clone());

    let token_url = endpoint(&server, "token_endpoint").await;
    let http = reqwest::Client::new();
    let exchange = |request_id: &'static str| {
        http.post(&token_url)
            .basic_auth("web", Some(form_encode(&secret)))
            .header("x-request-id", request_id)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
    };
    let r = exchange("exchange-1").await.unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    for name in ["access_token", "id_token", "refresh_token"] {
        secrets.push(tokens[name].as_str().unwrap().to_string());
    }
    let access = tokens["access_token"].as_str().unwrap();
    let r = http
        .get(endpoint(&server, "userinfo_endpoint").await)
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(endpoint(&server, "introspection_endpoint").await)
        .basic_auth("web", Some(form_encode(&secret)))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&token_url)
        .basic_auth("web", Some(form_encode(&secret)))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    for name in ["access_token", "refresh_token"] {
        secrets.push(refreshed[name].as_str().unwrap().to_string());
    }

    // The code again: refused, the grant revoked, and the warning carries this request's id.
    let r = exchange("replay-9").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(echoed(&r), "replay-9");
    assert_eq!(access_line(&server, "replay-9").await["status"], 400);
    let warning = server
        .log_lines_at("WARN")
        .into_iter()
        .find(|l| l["message"].as_str().unwrap_or("").contains("revoked"))
        .unwrap_or_else(|| panic!("no replay warning:\n{}", server.log_text()));
    assert_eq!(warning["span"]["request_id"], "replay-9", "{warning}");

    let log = server.log_text();
    let lines = log.lines().count();
    assert!(lines >= 10, "the flow was logged: {log}");
    for value in &secrets {
        assert!(
            !log.contains(value.as_str()),
            "{value:.24}… is in the log:\n{log}"
        );
    }
    for fragment in ["state-in-query", "code_challenge"] {
        assert!(!log.contains(fragment), "{fragment} is in the log:\n{log}");
    }
}

/// The human format shows the same fields, and the request id on a handler's line.
#[tokio::test]
async fn the_human_format_shows_the_fields_and_the_request_id() {
    let (_pg, _dir, server, _secret) =
        start(Backend::Sqlite, &[("SIGIL_LOG__FORMAT", "human")]).await;
    let http = reqwest::Client::new();
    let r = http
        .post(server.url("/token"))
        .header("x-request-id", "human-5")
        .form(&[("grant_type", "client_credentials")])
        .basic_auth("web", Some("wrong secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut line = None;
    for _ in 0..100 {
        line = server
            .log_text()
            .lines()
            .find(|l| l.contains("sigil::access") && l.contains("request_id=human-5"))
            .map(String::from);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = line.unwrap_or_else(|| panic!("no access line:\n{}", server.log_text()));
    for field in [
        "INFO",
        "method=POST",
        "route=\"/token\"",
        "status=401",
        "ms=",
        "client=127.0.0.1",
    ] {
        assert!(line.contains(field), "{field} not in {line}");
    }
}
