//! The admin API: an OAuth-protected resource that takes Sigil's own client_credentials tokens
//! with the scope `sigil:admin`; keys, resource servers and "log out everywhere" here, the rest
//! in one file a resource.

mod clients;
mod openapi;
mod password_links;
mod search_bench;
mod sessions;
mod users;

use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(
    admin_api_requires_a_client_token_with_the_admin_scope,
    admin_api_lists_rotates_and_retires_keys,
    admin_api_manages_resource_servers,
    admin_api_logout_everywhere_and_disable_end_a_users_tokens_at_once,
);

/// A client registered with `sigil:admin` and a fresh token of it.
pub async fn admin_token(app: &TestApp) -> String {
    fresh_admin_token(app, "ops").await
}

/// A client `client_id` registered with `sigil:admin` and a fresh token of it.
pub async fn fresh_admin_token(app: &TestApp, client_id: &str) -> String {
    let r = app.register_client(
        client_id,
        &json!({"grant_types": ["client_credentials"], "scope": "sigil:admin"}),
    );
    let secret = r["client_secret"].as_str().unwrap().to_string();
    let t: Value = app
        .token_basic(
            client_id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "sigil:admin"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["scope"], "sigil:admin");
    t["access_token"].as_str().unwrap().to_string()
}

pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.url(&format!("/admin/api{path}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

pub async fn json_of(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    r.json().await.unwrap()
}

async fn admin_api_requires_a_client_token_with_the_admin_scope(backend: Backend) {
    use reqwest::Method;
    let app = spawn_app(backend).await;
    // No token: 401 with a Bearer challenge.
    let r = call(&app, Method::GET, "/keys", None, None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
    // A token without the scope: 403 insufficient_scope.
    let (id, secret) = app.cc_client("svc");
    let t: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let r = call(
        &app,
        Method::GET,
        "/keys",
        Some(t["access_token"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // A client without the scope cannot ask for it.
    let r = app
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "sigil:admin"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    // A user's tokens (access and ID) are not admin tokens.
    app.add_user("alice");
    let (rp, rp_secret) = app.web_client("rp", json!({}));
    let code = app
        .code_for(&Browser::new(), &rp, &[("scope", "openid")])
        .await;
    let tokens: Value = app
        .exchange(&rp, &rp_secret, &code, Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    for t in ["access_token", "id_token"] {
        let r = call(&app, Method::GET, "/keys", tokens[t].as_str(), None).await;
        assert_eq!(r.status(), 401, "{t}");
    }
    // The admin token works, and stops working once revoked.
    let admin = admin_token(&app).await;
    let keys = json_of(
        call(&app, Method::GET, "/keys", Some(&admin), None).await,
        200,
    )
    .await;
    assert_eq!(keys.as_array().unwrap().len(), 8);
    assert_eq!(
        call(&app, Method::GET, "/keys", Some("junk"), None)
            .await
            .status(),
        401
    );
    let secret = app.register_client(
        "ops2",
        &json!({"grant_types": ["client_credentials"], "scope": "sigil:admin"}),
    )["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let t2: Value = app
        .token_basic("ops2", &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let t2 = t2["access_token"].as_str().unwrap();
    assert_eq!(
        call(&app, Method::GET, "/keys", Some(t2), None)
            .await
            .status(),
        200
    );
    let revoked = app
        .http
        .post(app.endpoint("revocation_endpoint").await)
        .basic_auth("ops2", Some(&secret))
        .form(&[("token", t2)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        call(&app, Method::GET, "/keys", Some(t2), None)
            .await
            .status(),
        401
    );
}

async fn admin_api_lists_rotates_and_retires_keys(backend: Backend) {
    use reqwest::Method;
    let app = spawn_app(backend).await;
    let admin = admin_token(&app).await;
    let find = |keys: &Value, alg: &str, state: &str| -> Vec<String> {
        keys.as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == alg && k["state"] == state)
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    let before = json_of(
        call(&app, Method::GET, "/keys", Some(&admin), None).await,
        200,
    )
    .await;
    let next = find(&before, "ES256", "next");
    let active = find(&before, "ES256", "active");
    assert_eq!((next.len(), active.len()), (1, 1));
    // The schedule: each algorithm's active and next key, the rotation due a period after
    // activation, and a next key too young to sign without force.
    let plan = json_of(
        call(&app, Method::GET, "/keys/schedule", Some(&admin), None).await,
        200,
    )
    .await;
    let es256 = plan["algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alg"] == "ES256")
        .unwrap()
        .clone();
    assert_eq!(plan["algorithms"].as_array().unwrap().len(), 4, "{plan}");
    assert_eq!(es256["next"], next[0].as_str());
    assert_eq!(es256["active"], active[0].as_str());
    assert_eq!(es256["rotation_needs_force"], true, "{es256}");
    assert!(
        es256["rotation_due_at"].as_str().unwrap() > es256["next_may_sign_at"].as_str().unwrap()
    );
    assert_eq!(plan["keys"].as_array().unwrap().len(), 8);
    // The next key was published just now: rotating it in is refused without force.
    let r = call(
        &app,
        Method::POST,
        "/keys/rotate",
        Some(&admin),
        Some(json!({"alg": "ES256"})),
    )
    .await;
    let err = json_of(r, 409).await;
    assert_eq!(err["error"], "too_early");
    let r = call(
        &app,
        Method::POST,
        "/keys/rotate",
        Some(&admin),
        Some(json!({"alg": "nope"})),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = call(
        &app,
        Method::POST,
        "/keys/rotate",
        Some(&admin),
        Some(json!({"alg": "ES256", "force": true})),
    )
    .await;
    let done = json_of(r, 200).await;
    assert_eq!(done[0]["activated"], next[0].as_str());
    let after = json_of(
        call(&app, Method::GET, "/keys", Some(&admin), None).await,
        200,
    )
    .await;
    assert_eq!(find(&after, "ES256", "active"), next);
    assert_eq!(find(&after, "ES256", "retiring"), active);
    // This node publishes the change at once: the new next key and the retiring one.
    let jwks = app.jwks().await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    let new_next = find(&after, "ES256", "next");
    assert!(published.contains(&new_next[0].as_str()));
    assert!(published.contains(&active[0].as_str()));
    // Retire the retiring key: it leaves the JWKS.
    let r = call(
        &app,
        Method::POST,
        &format!("/keys/{}/retire", active[0]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(json_of(r, 200).await["state"], "retired");
    let jwks = app.jwks().await;
    assert!(!jwks.to_string().contains(&active[0]));
    let r = call(
        &app,
        Method::POST,
        "/keys/no-such-kid/retire",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    // The active key cannot be retired.
    let r = call(
        &app,
        Method::POST,
        &format!("/keys/{}/retire", next[0]),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status(), 409);
}

async fn admin_api_manages_resource_servers(backend: Backend) {
    use reqwest::Method;
    let app = spawn_app(backend).await;
    let admin = admin_token(&app).await;
    let api = "https://api.example/orders";
    let r = call(
        &app,
        Method::POST,
        "/resources",
        Some(&admin),
        Some(json!({"resource": api, "scope": "orders:read orders:write"})),
    )
    .await;
    let record = json_of(r, 201).await;
    assert_eq!(record["resource"], api);
    // Duplicates and bad metadata are refused; nothing changes.
    let r = call(
        &app,
        Method::POST,
        "/resources",
        Some(&admin),
        Some(json!({"resource": api, "scope": "x"})),
    )
    .await;
    assert_eq!(r.status(), 409);
    let r = call(
        &app,
        Method::POST,
        "/resources",
        Some(&admin),
        Some(json!({"resource": "relative/path", "scope": "x"})),
    )
    .await;
    assert_eq!(r.status(), 400);
    let list = json_of(
        call(&app, Method::GET, "/resources", Some(&admin), None).await,
        200,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let encoded: String = url::form_urlencoded::byte_serialize(api.as_bytes()).collect();
    let one = json_of(
        call(
            &app,
            Method::GET,
            &format!("/resources?resource={encoded}"),
            Some(&admin),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(one["scope"], "orders:read orders:write");
    // The CLI sees what the API stored.
    let out = app.sigil(&["resource", "show", api], None);
    assert!(out.status.success());
    let r = call(
        &app,
        Method::DELETE,
        &format!("/resources?resource={encoded}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = call(
        &app,
        Method::GET,
        &format!("/resources?resource={encoded}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = call(&app, Method::DELETE, "/resources", Some(&admin), None).await;
    assert_eq!(r.status(), 400);
}

async fn admin_api_logout_everywhere_and_disable_end_a_users_tokens_at_once(backend: Backend) {
    use reqwest::Method;
    let app = spawn_app(backend).await;
    let admin = admin_token(&app).await;
    app.add_user("alice");
    let (rp, rp_secret) = app.web_client("rp", json!({}));
    let (probe, probe_secret) = app.cc_client("probe");
    let introspect = |token: String| {
        let app = &app;
        let (probe, probe_secret) = (probe.clone(), probe_secret.clone());
        async move {
            let v: Value = app
                .http
                .post(app.endpoint("introspection_endpoint").await)
                .basic_auth(probe, Some(probe_secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["active"].as_bool().unwrap()
        }
    };
    for action in ["logout-everywhere", "disable"] {
        app.state.clock.advance(2);
        let code = app
            .code_for(&Browser::new(), &rp, &[("scope", "openid offline_access")])
            .await;
        let tokens: Value = app
            .exchange(&rp, &rp_secret, &code, Some(VERIFIER))
            .await
            .json()
            .await
            .unwrap();
        let at = tokens["access_token"].as_str().unwrap().to_string();
        assert!(introspect(at.clone()).await, "{action}: active before");
        app.state.clock.advance(1);
        let r = call(
            &app,
            Method::POST,
            &format!("/users/alice/{action}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(json_of(r, 200).await["action"], action);
        // At once on this node, cached answers included.
        assert!(!introspect(at.clone()).await, "{action}: inactive after");
        assert_eq!(app.userinfo(&at).await.status(), 401);
        let r = app
            .token_basic(
                &rp,
                &rp_secret,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ],
            )
            .await;
        assert_eq!(r.status(), 400);
        if action == "disable" {
            let r = call(
                &app,
                Method::POST,
                "/users/alice/enable",
                Some(&admin),
                None,
            )
            .await;
            assert_eq!(r.status(), 200);
        }
    }
    let r = call(
        &app,
        Method::POST,
        "/users/nobody/disable",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = call(
        &app,
        Method::POST,
        "/users/alice/explode",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
}

/// The one audit event of `kind` on `target`, checked to name the admin client `ops` as its
/// actor.
pub async fn audited(app: &TestApp, token: &str, kind: &str, target: &str) -> Value {
    let target: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let page = json_of(
        call(
            app,
            reqwest::Method::GET,
            &format!("/audit?type={kind}&target={target}"),
            Some(token),
            None,
        )
        .await,
        200,
    )
    .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{kind} on {target}: {events:?}");
    assert_eq!(events[0]["actor_kind"], "client", "{events:?}");
    assert_eq!(events[0]["actor"], "ops", "{events:?}");
    events[0].clone()
}
