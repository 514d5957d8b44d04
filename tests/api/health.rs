use crate::both_backends;
use crate::helpers::{spawn_app, Backend};

both_backends!(
    healthz_and_readyz_answer,
    metrics_count_requests_per_route_and_show_the_keys
);

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
