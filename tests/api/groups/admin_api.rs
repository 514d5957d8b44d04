//! The admin API's groups: each operation with its authorization (401 without a token, 403
//! without the scope `sigil:admin`) and its errors (400 bad name or body, 404 unknown, 409
//! taken).

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin_api::admin_token;
use crate::both_backends;
use crate::helpers::{spawn_app, Backend, TestApp};

both_backends!(
    admin_api_groups_need_an_admin_token,
    admin_api_manages_groups_and_members,
);

async fn call(
    app: &TestApp,
    method: Method,
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

/// The status, and the body as JSON (Null when empty).
async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const ROUTES: [(&str, &str); 7] = [
    ("GET", "/groups"),
    ("POST", "/groups"),
    ("PATCH", "/groups/ops"),
    ("DELETE", "/groups/ops"),
    ("GET", "/groups/ops/members"),
    ("PUT", "/groups/ops/members/alice"),
    ("DELETE", "/groups/ops/members/alice"),
];

async fn admin_api_groups_need_an_admin_token(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let out = app.sigil(&["group", "add", "ops"], None);
    assert!(out.status.success());
    let (id, secret) = app.cc_client("svc");
    let t: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let plain = t["access_token"].as_str().unwrap().to_string();
    let body = Some(json!({"name": "sre"}));
    for (method, path) in ROUTES {
        let method: Method = method.parse().unwrap();
        let r = call(&app, method.clone(), path, None, body.clone()).await;
        assert_eq!(r.status(), 401, "{method} {path} without a token");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let r = call(&app, method.clone(), path, Some(&plain), body.clone()).await;
        assert_eq!(r.status(), 403, "{method} {path} without the scope");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "insufficient_scope"
        );
    }
    // Nothing changed.
    let listed = app.sigil(&["group", "list", "--json"], None);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "ops");
    assert_eq!(listed[0]["members"], 0);
}

async fn admin_api_manages_groups_and_members(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let admin = admin_token(&app).await;
    let t = Some(admin.as_str());

    // Create: 201; taken 409; bad names and bodies 400.
    let (status, made) = answer(
        call(
            &app,
            Method::POST,
            "/groups",
            t,
            Some(json!({"name": "ops"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, &made["name"], &made["members"]),
        (201, &json!("ops"), &json!(0))
    );
    let (status, err) = answer(
        call(
            &app,
            Method::POST,
            "/groups",
            t,
            Some(json!({"name": "ops"})),
        )
        .await,
    )
    .await;
    assert_eq!((status, err["error"].as_str()), (409, Some("conflict")));
    // The creation is an audit event whose actor is the calling client; the refusal is none.
    crate::admin_api::audited(&app, &admin, "group.added", "ops").await;
    for bad in [
        json!({"name": "two words"}),
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
        json!({}),
        json!({"name": 7}),
        json!({"name": "a", "extra": 1}),
        json!(["ops"]),
    ] {
        let (status, err) =
            answer(call(&app, Method::POST, "/groups", t, Some(bad.clone())).await).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(err["error"], "invalid_request", "{bad}");
    }
    let (status, listed) = answer(call(&app, Method::GET, "/groups", t, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Members: PUT adds (201), again changes nothing (200); unknown user or group 404.
    let (status, added) =
        answer(call(&app, Method::PUT, "/groups/ops/members/alice", t, None).await).await;
    assert_eq!((status, &added["added"]), (201, &json!(true)));
    let (status, added) =
        answer(call(&app, Method::PUT, "/groups/ops/members/alice", t, None).await).await;
    assert_eq!((status, &added["added"]), (200, &json!(false)));
    for path in ["/groups/ops/members/nobody", "/groups/nope/members/alice"] {
        let (status, err) = answer(call(&app, Method::PUT, path, t, None).await).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (status, members) =
        answer(call(&app, Method::GET, "/groups/ops/members", t, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["username"], "alice");
    assert_eq!(
        call(&app, Method::GET, "/groups/nope/members", t, None)
            .await
            .status(),
        404
    );

    // Rename: 200 with the members kept; unknown 404, taken 409, bad 400.
    call(
        &app,
        Method::POST,
        "/groups",
        t,
        Some(json!({"name": "taken"})),
    )
    .await;
    let (status, renamed) = answer(
        call(
            &app,
            Method::PATCH,
            "/groups/ops",
            t,
            Some(json!({"name": "sre"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, &renamed["name"], &renamed["members"]),
        (200, &json!("sre"), &json!(1))
    );
    for (path, name, expected) in [
        ("/groups/ops", "x", 404),
        ("/groups/sre", "taken", 409),
        ("/groups/sre", "no good", 400),
    ] {
        let r = call(&app, Method::PATCH, path, t, Some(json!({"name": name}))).await;
        assert_eq!(r.status(), expected, "{path} → {name}");
    }
    let shown = app.sigil(&["user", "show", "alice"], None);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["groups"], json!(["sre"]));

    // Names with a slash travel percent-encoded.
    let (status, _) = answer(
        call(
            &app,
            Method::POST,
            "/groups",
            t,
            Some(json!({"name": "team/platform"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let r = call(
        &app,
        Method::PUT,
        "/groups/team%2Fplatform/members/alice",
        t,
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let (_, members) = answer(
        call(
            &app,
            Method::GET,
            "/groups/team%2Fplatform/members",
            t,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(members[0]["username"], "alice");

    // Remove a membership: 204, then 404.
    let r = call(&app, Method::DELETE, "/groups/sre/members/alice", t, None).await;
    assert_eq!(r.status(), 204);
    let (status, err) =
        answer(call(&app, Method::DELETE, "/groups/sre/members/alice", t, None).await).await;
    assert_eq!(status, 404);
    assert!(err["error_description"]
        .as_str()
        .unwrap()
        .contains("not a member"));

    // Remove groups: 204, then 404; the list shows what is left.
    assert_eq!(
        call(&app, Method::DELETE, "/groups/sre", t, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        call(&app, Method::DELETE, "/groups/sre", t, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        call(&app, Method::DELETE, "/groups/team%2Fplatform", t, None)
            .await
            .status(),
        204
    );
    let (_, listed) = answer(call(&app, Method::GET, "/groups", t, None).await).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["taken"]);
    let shown = app.sigil(&["user", "show", "alice"], None);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["groups"], json!([]));
}
