use serde_json::Value;

use crate::both_backends;
use crate::helpers::{spawn_app, Backend};

both_backends!(
    jwks_publishes_an_active_and_a_next_key_per_algorithm,
    jwks_has_cache_headers_and_etag
);

async fn jwks_publishes_an_active_and_a_next_key_per_algorithm(backend: Backend) {
    let app = spawn_app(backend).await;
    let jwks = app.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        8,
        "active + next for RS256, PS256, ES256, EdDSA"
    );
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        assert_eq!(keys.iter().filter(|k| k["alg"] == alg).count(), 2, "{alg}");
    }
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published"
            );
        }
    }
    let listed: Value =
        serde_json::from_slice(&app.sigil(&["keys", "list", "--json"], None).stdout).unwrap();
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "active").count(), 4);
    assert_eq!(states.iter().filter(|s| **s == "next").count(), 4);
}

async fn jwks_has_cache_headers_and_etag(backend: Backend) {
    let app = spawn_app(backend).await;
    let uri = app.endpoint("jwks_uri").await;
    let r = app.http.get(&uri).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let again = app
        .http
        .get(&uri)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let other = app
        .http
        .get(&uri)
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}
