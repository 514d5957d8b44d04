//! Issue 10 item 11: PostgreSQL stops under a running Sigil and comes back. On a private
//! cluster (`pg_cluster`), never the shared server; PostgreSQL only, since this is about a
//! database server going away. While it is down: `/readyz` says 503 within a second, the OAuth
//! endpoints answer `temporarily_unavailable` (503, JSON, `Retry-After`), the pages a plain 503
//! page, all within `database.acquire_timeout` plus slack, never a 500, and the outage is logged
//! once at WARN; after it returns every endpoint works again within a few seconds, by itself.

use std::time::{Duration, Instant};

use reqwest::Response;
use serde_json::Value;

use sigil::config::{DurationSetting, Secret};

use crate::flow::{location, Browser};
use crate::helpers::{form_encode, spawn_app_with, Backend, TestApp};
use crate::instant;
use crate::pg_cluster::{free_port, PgCluster};
use crate::server_process::{settings_on, ServerProcess};

/// The pool's wait for a connection in this test (the default is 2 s).
const ACQUIRE: Duration = Duration::from_secs(1);
/// What a request may take beyond the pool's wait (a loaded two-core machine).
const SLACK: Duration = Duration::from_secs(3);

/// One request, failing the test rather than hanging; with how long it took.
async fn timed(
    what: &str,
    request: impl std::future::Future<Output = Response>,
) -> (Response, Duration) {
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"));
    (response, started.elapsed())
}

/// Everything the test asks during and after the outage.
struct Probe<'a> {
    app: &'a TestApp,
    client: (String, String),
    cc: (String, String),
    refresh_token: String,
    signed_in: Browser,
    login_url: String,
    stranger: Browser,
}

impl Probe<'_> {
    async fn token(&self, form: &[(&str, &str)], (id, secret): &(String, String)) -> Response {
        self.app.token_basic(id, secret, form).await
    }

    async fn refresh(&self) -> (Response, Duration) {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.as_str()),
        ];
        timed("refresh", self.token(&form, &self.client)).await
    }

    async fn client_credentials(&self) -> (Response, Duration) {
        let form = [("grant_type", "client_credentials")];
        timed("client_credentials", self.token(&form, &self.cc)).await
    }

    async fn readyz(&self) -> (Response, Duration) {
        timed("readyz", send(self.app.http.get(self.app.url("/readyz")))).await
    }

    async fn authorize(&self) -> (Response, Duration) {
        let url = self.app.url(&format!(
            "/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid&state=s",
            self.client.0,
            form_encode(crate::flow::REDIRECT)
        ));
        timed("authorize", self.stranger.get(&url)).await
    }

    async fn login_page(&self) -> (Response, Duration) {
        timed("login page", self.stranger.get(&self.login_url)).await
    }

    async fn logout(&self) -> (Response, Duration) {
        timed("logout", self.signed_in.get(&self.app.url("/logout"))).await
    }

    async fn introspect(&self) -> (Response, Duration) {
        let request = self
            .app
            .http
            .post(self.app.url("/introspect"))
            .basic_auth(&self.cc.0, Some(&self.cc.1))
            .form(&[("token", self.refresh_token.as_str())]);
        timed("introspect", send(request)).await
    }
}

async fn send(request: reqwest::RequestBuilder) -> Response {
    request.send().await.expect("request")
}

async fn assert_json_unavailable(what: &str, (r, took): (Response, Duration)) {
    assert!(took < ACQUIRE + SLACK, "{what} took {took:?}");
    assert_eq!(r.status(), 503, "{what}");
    assert!(
        r.headers().contains_key("retry-after"),
        "{what}: Retry-After"
    );
    let body: Value = r.json().await.expect("a JSON body");
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
}

async fn assert_page_unavailable(what: &str, (r, took): (Response, Duration)) {
    assert!(took < ACQUIRE + SLACK, "{what} took {took:?}");
    assert_eq!(
        r.status(),
        503,
        "{what}: a page, not a redirect to the client"
    );
    assert!(
        r.headers().contains_key("retry-after"),
        "{what}: Retry-After"
    );
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/html"), "{what}: {kind}");
    let html = r.text().await.unwrap();
    assert!(html.contains("temporarily_unavailable"), "{what}: {html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_and_sigil_recovers_by_itself() {
    let cluster = PgCluster::start_new();
    // SQLite in the harness's terms (it then creates nothing on the shared server); the URL is
    // the private cluster's.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.database_url = Secret::new(cluster.url());
        s.database.acquire_timeout = DurationSetting(ACQUIRE);
        // Clients are read from the database at every request, so that every endpoint needs it.
        s.clients.cache_ttl = DurationSetting(Duration::ZERO);
    })
    .await;
    // A second node, the real binary, on the same database: its log is read at the end.
    let node = ServerProcess::start(
        &settings_on(app.settings.clone(), free_port()),
        app.dir.path(),
        &[("SIGIL_DATABASE__ACQUIRE_TIMEOUT", "1s")],
    )
    .await;
    app.add_user("alice");
    let (id, secret, tokens) = app.user_tokens("rp").await;
    let signed_in = Browser::new();
    app.code_for(&signed_in, &id, &[]).await;
    let stranger = Browser::new();
    let parked = app.start(&stranger, &id, &[]).await;
    assert_eq!(parked.status(), 303);
    let probe = Probe {
        app: &app,
        client: (id, secret),
        cc: app.cc_client("svc"),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_string(),
        signed_in,
        login_url: location(&parked),
        stranger,
    };
    assert_eq!(probe.client_credentials().await.0.status(), 200);
    assert_eq!(probe.readyz().await.0.status(), 200);

    cluster.stop();

    let (ready, took) = probe.readyz().await;
    assert_eq!(ready.status(), 503, "readyz while the database is down");
    assert!(took < Duration::from_secs(1), "readyz took {took:?}");
    eprintln!("outage: /readyz answered 503 in {took:?}");
    assert!(ready.headers().contains_key("retry-after"));
    assert_json_unavailable("refresh", probe.refresh().await).await;
    assert_json_unavailable("client_credentials", probe.client_credentials().await).await;
    assert_json_unavailable("introspect", probe.introspect().await).await;
    assert_page_unavailable("authorize", probe.authorize().await).await;
    assert_page_unavailable("login page", probe.login_page().await).await;
    assert_page_unavailable("logout", probe.logout().await).await;
    // A burst released at once: every answer 503 within the bounded wait, none a 500.
    let addr = app.address.trim_start_matches("http://").to_string();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", probe.cc.0, probe.cc.1)
        )
    );
    let token_url = app.url("/token");
    for round in 0..3 {
        let burst = (0..40)
            .map(|_| {
                instant::form_post(
                    &token_url,
                    None,
                    &[("grant_type", "client_credentials")],
                    &[("Authorization", &basic)],
                )
            })
            .collect();
        let started = Instant::now();
        let answers = instant::fire(&addr, burst).await;
        let took = started.elapsed();
        assert!(
            took < ACQUIRE + SLACK,
            "round {round}: the burst took {took:?}"
        );
        eprintln!("outage: 40 token requests at once, all answered within {took:?}");
        for a in &answers {
            assert_eq!(a.status, 503, "round {round}: {a:?}");
            assert!(a.body.contains("temporarily_unavailable"), "{a:?}");
            assert!(a.header("retry-after").is_some(), "{a:?}");
        }
    }
    // The binary, too, during the outage.
    let http = reqwest::Client::new();
    for _ in 0..10 {
        let r = http
            .post(node.url("/token"))
            .basic_auth(&probe.cc.0, Some(&probe.cc.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }
    assert_eq!(
        http.get(node.url("/readyz")).send().await.unwrap().status(),
        503
    );

    cluster.start();
    let back = Instant::now();
    let recovered = loop {
        let ok = probe.readyz().await.0.status() == 200
            && probe.client_credentials().await.0.status() == 200
            && probe.introspect().await.0.status() == 200
            && probe.authorize().await.0.status() == 303
            && probe.login_page().await.0.status() == 200;
        if ok {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "Sigil did not recover within 30 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        recovered < Duration::from_secs(8),
        "recovery took {recovered:?}"
    );
    eprintln!("outage: every endpoint answered again {recovered:?} after the database's return");
    // The refresh token from before the outage was never spent: it still works.
    let (r, _) = probe.refresh().await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (r, _) = probe.logout().await;
    assert_eq!(r.status(), 200, "the sign-out confirmation page");
    let r = http.get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the binary recovered too");

    // The binary's log: the outage once at WARN, its end once at INFO, nothing at ERROR.
    let errors = node.log_lines_at("ERROR");
    assert!(errors.is_empty(), "ERROR lines: {errors:#?}");
    let warnings = node.log_lines_at("WARN");
    assert_eq!(warnings.len(), 1, "one WARN for the outage: {warnings:#?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("no database connection"),
        "{warnings:#?}"
    );
    let back_again = node
        .log_lines_at("INFO")
        .into_iter()
        .filter(|l| l["message"] == "database connections work again")
        .count();
    assert_eq!(back_again, 1, "{}", node.log_text());
}
