use crate::both_backends;
use crate::helpers::{spawn_app, Backend};

both_backends!(healthz_and_readyz_answer);

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
