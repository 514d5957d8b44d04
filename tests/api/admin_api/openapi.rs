//! The admin API's OpenAPI 3.1 document: public, generated from the handlers, listing exactly
//! the routes the router serves — each of which refuses a request without a token (401) and
//! one whose token lacks `sigil:admin` (403).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{spawn_app, Backend};

both_backends!(openapi_document_lists_every_route_and_each_needs_the_admin_scope);

/// Every route of the admin API, as the README lists them.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/api/openapi.json"),
    ("GET", "/admin/api/users"),
    ("POST", "/admin/api/users"),
    ("GET", "/admin/api/users/{username}"),
    ("PATCH", "/admin/api/users/{username}"),
    ("DELETE", "/admin/api/users/{username}"),
    ("POST", "/admin/api/users/{username}/{action}"),
    ("POST", "/admin/api/users/{username}/reset-factors"),
    ("POST", "/admin/api/users/{username}/password-link"),
    ("GET", "/admin/api/clients"),
    ("POST", "/admin/api/clients"),
    ("GET", "/admin/api/clients/{client_id}"),
    ("PUT", "/admin/api/clients/{client_id}"),
    ("DELETE", "/admin/api/clients/{client_id}"),
    ("POST", "/admin/api/clients/{client_id}/secret"),
    ("GET", "/admin/api/resources"),
    ("POST", "/admin/api/resources"),
    ("PUT", "/admin/api/resources"),
    ("DELETE", "/admin/api/resources"),
    ("GET", "/admin/api/sessions"),
    ("DELETE", "/admin/api/sessions/{sid}"),
    ("GET", "/admin/api/keys"),
    ("GET", "/admin/api/keys/schedule"),
    ("POST", "/admin/api/keys/rotate"),
    ("POST", "/admin/api/keys/{kid}/retire"),
    ("GET", "/admin/api/groups"),
    ("POST", "/admin/api/groups"),
    ("PATCH", "/admin/api/groups/{name}"),
    ("DELETE", "/admin/api/groups/{name}"),
    ("GET", "/admin/api/groups/{name}/members"),
    ("PUT", "/admin/api/groups/{name}/members/{username}"),
    ("DELETE", "/admin/api/groups/{name}/members/{username}"),
    ("GET", "/admin/api/audit"),
];

async fn openapi_document_lists_every_route_and_each_needs_the_admin_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    // Public: no token.
    let r = app
        .http
        .get(app.url("/admin/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Sigil admin API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Exactly the routes served.
    let mut listed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(operation) = item.get(method) {
                listed.insert((method.to_uppercase(), path.clone()));
                assert!(operation["responses"].is_object(), "{method} {path}");
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert!(doc["components"]["schemas"]["UserPage"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // Each route is served and guarded: 401 without a token, 403 without the scope.
    let (id, secret) = app.cc_client("svc");
    let t: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let unscoped = t["access_token"].as_str().unwrap().to_string();
    for (method, path) in ROUTES.iter().filter(|(_, p)| !p.ends_with("openapi.json")) {
        let path = path
            .replace("{username}", "alice")
            .replace("{client_id}", "web")
            .replace("{sid}", "s1")
            .replace("{kid}", "k1")
            .replace("{name}", "staff")
            .replace("{action}", "unlock");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        let doc_says = &doc["paths"];
        assert!(doc_says.is_object());
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&unscoped)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
    }
    // A route not in the document is not served.
    let r = app
        .http
        .get(app.url("/admin/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
