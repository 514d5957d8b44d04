use openidconnect::core::CoreProviderMetadata;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{spawn_app, Backend};

both_backends!(
    oidcc_discovery_parses_with_openidconnect_and_names_the_issuer,
    oauth_metadata_is_the_same_document,
    every_advertised_endpoint_is_served,
    discovery_is_cacheable_with_an_etag,
);

/// OpenID conformance "Discovery": issuer equals the URL base; jwks_uri has valid keys;
/// scopes_supported ∋ openid; required members present.
async fn oidcc_discovery_parses_with_openidconnect_and_names_the_issuer(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = app.discovery().await;
    let meta: CoreProviderMetadata =
        serde_json::from_value(doc.clone()).expect("CoreProviderMetadata parses");
    assert_eq!(meta.issuer().as_str(), app.address);
    assert_eq!(meta.issuer().as_str(), app.issuer());
    assert!(meta
        .scopes_supported()
        .unwrap()
        .iter()
        .any(|s| s.as_str() == "openid"));
    assert!(!meta.response_types_supported().is_empty());
    assert!(!meta.subject_types_supported().is_empty());
    assert!(!meta.id_token_signing_alg_values_supported().is_empty());
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
            "none"
        ])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query", "form_post"])
    );
    assert!(doc["userinfo_endpoint"].as_str().is_some());
    let jwks = app.jwks().await;
    let set: openidconnect::core::CoreJsonWebKeySet =
        serde_json::from_value(jwks).expect("JWKS parses");
    assert!(!set.keys().is_empty());
}

async fn oauth_metadata_is_the_same_document(backend: Backend) {
    let app = spawn_app(backend).await;
    let oidc = app.get_json("/.well-known/openid-configuration").await;
    let oauth = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(oidc, oauth);
}

/// Discovery advertises exactly what is mounted: every URL in it answers (no 404).
async fn every_advertised_endpoint_is_served(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = app.discovery().await;
    let urls: Vec<&str> = doc
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with("_endpoint") || k.ends_with("_uri"))
        .filter_map(|(_, v)| v.as_str())
        .collect();
    assert!(urls.len() >= 3, "{urls:?}");
    for url in urls {
        let get = app.http.get(url).send().await.unwrap().status();
        let post = app.http.post(url).send().await.unwrap().status();
        assert!(
            get != 404 || post != 404,
            "{url} is advertised but not served"
        );
    }
}

async fn discovery_is_cacheable_with_an_etag(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("public, max-age="));
    let again = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    let _: Value = r.json().await.unwrap();
}
