use crate::both_backends;
use crate::helpers::{spawn_app, Backend};
use crate::instant;

both_backends!(
    healthz_and_readyz_answer,
    metrics_count_requests_per_route_and_show_the_keys,
    thirty_requests_released_at_once_are_all_answered,
);

/// The harness for same-instant requests (tests/api/instant.rs) against a plain endpoint: every
/// answer arrives whole, chunked or not, with its headers.
async fn thirty_requests_released_at_once_are_all_answered(backend: Backend) {
    let app = spawn_app(backend).await;
    let host = app.address.trim_start_matches("http://").to_string();
    let mut requests = Vec::new();
    for n in 0..30 {
        requests.push(if n % 2 == 0 {
            instant::request("GET", &app.url("/healthz"), &[], "")
        } else {
            instant::form_post(&app.url("/token"), None, &[("grant_type", "x")], &[])
        });
    }
    let answers = instant::fire(&host, requests).await;
    let counts = instant::by_status(&answers);
    assert_eq!(counts.get(&200), Some(&15), "{counts:?}");
    assert_eq!(
        counts.get(&400).copied().unwrap_or(0) + counts.get(&401).copied().unwrap_or(0),
        15,
        "{counts:?}"
    );
    for a in &answers {
        match a.status {
            200 => assert!(a.body.contains("ok"), "{a:?}"),
            _ => assert!(a.body.contains("\"error\""), "{a:?}"),
        }
        assert!(a.header("content-type").is_some());
    }
}

async fn healthz_and_readyz_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let live = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    assert_eq!(
        app.http
            .get(app.url("/nothing-here"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

async fn metrics_count_requests_per_route_and_show_the_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    for _ in 0..3 {
        let r = app
            .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = app
        .token_basic(&id, "wrong", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
    for path in ["/no/such/path", "/another/one"] {
        app.http.get(app.url(path)).send().await.unwrap();
    }
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    for line in [
        "sigil_http_requests_total{route=\"/token\",status=\"2xx\"} 3",
        "sigil_http_requests_total{route=\"/token\",status=\"4xx\"} 1",
        // Unknown paths share one series, whatever they are.
        "sigil_http_requests_total{route=\"unmatched\",status=\"4xx\"} 2",
        "sigil_http_request_duration_seconds_count{route=\"/token\"} 4",
        "sigil_signing_keys{alg=\"ES256\",state=\"active\"} 1",
        "sigil_signing_keys{alg=\"RS256\",state=\"next\"} 1",
        "sigil_build_info{version=",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} missing from:\n{text}"
        );
    }
    assert!(!text.contains("/no/such/path"));
}
