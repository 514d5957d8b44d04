//! RFC 7592: the client configuration endpoint `/register/{client_id}`, read, replaced whole
//! and deleted with the registration access token; every other token is the same 401.

use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_invalid_token, count, open_mode, post, web_metadata};
use crate::audit::{events, find};
use crate::both_backends;
use crate::flow::{Browser, REDIRECT, VERIFIER};
use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::instant::{self, by_status};

both_backends!(
    rfc7592_2_read_update_with_full_replacement_and_delete,
    rfc7592_2_every_failure_to_authenticate_is_the_same_401,
    rfc7592_2_3_of_30_concurrent_deletes_one_removes_the_client,
);

pub(crate) async fn register_one(app: &TestApp, metadata: &Value) -> Value {
    let r = post(app, None, metadata).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

pub(crate) async fn manage(
    app: &TestApp,
    method: reqwest::Method,
    client_id: &str,
    token: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(&format!("/register/{client_id}")))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn rfc7592_2_read_update_with_full_replacement_and_delete(backend: Backend) {
    let app = spawn_app_with(backend, open_mode).await;
    app.add_user("alice");
    let reg = register_one(&app, &web_metadata()).await;
    let id = reg["client_id"].as_str().unwrap();
    let secret = reg["client_secret"].as_str().unwrap();
    let rat = reg["registration_access_token"].as_str().unwrap();
    let uri = reg["registration_client_uri"].as_str().unwrap();
    assert_eq!(uri, format!("{}/register/{id}", app.issuer()));

    // §2.1 read: the metadata, the configuration URI and the token; never the secret.
    let r = manage(&app, Method::GET, id, rat, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["client_id"], id);
    assert_eq!(read["client_name"], "Registered App");
    let mut scope: Vec<&str> = read["scope"].as_str().unwrap().split(' ').collect();
    scope.sort();
    assert_eq!(scope, ["email", "offline_access", "openid"]);
    assert_eq!(read["registration_client_uri"], uri);
    assert_eq!(read["registration_access_token"], rat);
    assert!(read.get("client_secret").is_none());

    // §2.2 update, refused: no client_id, another client_id, a chosen secret, an
    // administrator's field; nothing changes.
    let new_redirect = "https://rp.example/other";
    let refusals = [
        json!({"redirect_uris": [new_redirect]}),
        json!({"client_id": "someone-else", "redirect_uris": [new_redirect]}),
        json!({"client_id": id, "client_secret": "my-own-secret", "redirect_uris": [new_redirect]}),
        json!({"client_id": id, "redirect_uris": [new_redirect], "skip_consent": true}),
        json!({"client_id": id, "redirect_uris": ["http://rp.example/cb"]}),
    ];
    for body in &refusals {
        let r = manage(&app, Method::PUT, id, rat, Some(body)).await;
        assert_eq!(r.status(), 400, "{body}");
    }
    let unchanged: Value = manage(&app, Method::GET, id, rat, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged, read);

    // Accepted: the full metadata replaces the registration — client_name and scope, omitted,
    // are gone or back to their defaults; the server's members and the current secret are
    // taken as they are.
    let body = json!({
        "client_id": id,
        "client_secret": secret,
        "client_id_issued_at": 1,
        "registration_access_token": "ignored",
        "registration_client_uri": "https://elsewhere.example/",
        "client_secret_expires_at": 0,
        "redirect_uris": [new_redirect],
        "grant_types": ["authorization_code"],
    });
    let r = manage(&app, Method::PUT, id, rat, Some(&body)).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["redirect_uris"], json!([new_redirect]));
    assert_eq!(updated["grant_types"], json!(["authorization_code"]));
    assert_eq!(updated["scope"], "openid");
    assert!(updated.get("client_name").is_none(), "{updated}");
    assert_eq!(updated["client_id_issued_at"], read["client_id_issued_at"]);
    assert_eq!(
        updated["registration_access_token"], rat,
        "the token does not rotate"
    );
    assert!(
        updated.get("client_secret").is_none(),
        "the secret stays as it was"
    );
    let r = manage(&app, Method::GET, id, rat, None).await;
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, updated);
    let all = events(&app).await;
    let e = find(&all, "client.updated");
    assert_eq!(
        (e.actor_kind.as_str(), e.target.as_deref()),
        ("registration", Some(id))
    );

    // The updated client signs in at its new redirect URI with its unchanged secret.
    let browser = Browser::new();
    let r = app
        .start(
            &browser,
            id,
            &[("redirect_uri", new_redirect), ("scope", "openid")],
        )
        .await;
    let r = app.drive(&browser, r, "alice").await;
    let callback = crate::flow::location(&r);
    assert!(callback.starts_with(new_redirect), "{callback}");
    let code = crate::flow::query(&callback)["code"].clone();
    let r = app
        .token_basic(
            id,
            secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", new_redirect),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(access).await.status(), 200);

    // §2.3 delete: 204, then the client, its configuration endpoint and its tokens are gone.
    let r = manage(&app, Method::DELETE, id, rat, None).await;
    assert_eq!(r.status(), 204);
    assert_invalid_token(manage(&app, Method::GET, id, rat, None).await, "deleted").await;
    assert_eq!(count(&app, "clients", &format!("client_id = '{id}'")), 0);
    assert_eq!(count(&app, "registered_clients", "1 = 1"), 0);
    assert_eq!(app.userinfo(access).await.status(), 401);
    let r = app
        .token_basic(
            id,
            secret,
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        )
        .await;
    assert_eq!(r.status(), 401);
    let all = events(&app).await;
    assert_eq!(find(&all, "client.removed").actor_kind, "registration");
}

async fn rfc7592_2_every_failure_to_authenticate_is_the_same_401(backend: Backend) {
    let app = spawn_app_with(backend, open_mode).await;
    let a = register_one(&app, &web_metadata()).await;
    let b = register_one(&app, &web_metadata()).await;
    let (a_id, a_rat) = (
        a["client_id"].as_str().unwrap(),
        a["registration_access_token"].as_str().unwrap(),
    );
    let b_rat = b["registration_access_token"].as_str().unwrap();
    let (admin_made, _) = app.web_client("admin-made", json!({}));
    let put = json!({"client_id": a_id, "redirect_uris": ["https://evil.example/cb"]});

    let mut bodies = Vec::new();
    for (method, id, token, what) in [
        (Method::GET, a_id, b_rat, "another client's token"),
        (Method::PUT, a_id, b_rat, "another client's token (PUT)"),
        (
            Method::DELETE,
            a_id,
            b_rat,
            "another client's token (DELETE)",
        ),
        (Method::GET, a_id, "garbage", "a wrong token"),
        (Method::GET, a_id, &a_rat[..42], "a truncated token"),
        (Method::GET, "no-such-client", a_rat, "an unknown client"),
        (
            Method::GET,
            admin_made.as_str(),
            a_rat,
            "a client an administrator registered",
        ),
        (
            Method::DELETE,
            admin_made.as_str(),
            a_rat,
            "… and deleting it",
        ),
        (Method::GET, "sigil-account", a_rat, "Sigil's own client"),
    ] {
        let body = (method == Method::PUT).then_some(&put);
        bodies.push(assert_invalid_token(manage(&app, method, id, token, body).await, what).await);
    }
    let r = app
        .http
        .get(app.url(&format!("/register/{a_id}")))
        .send()
        .await
        .unwrap();
    bodies.push(assert_invalid_token(r, "no token").await);
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "one body for every cause: {bodies:?}");

    // Nothing changed.
    let r = manage(&app, Method::GET, a_id, a_rat, None).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["redirect_uris"], json!([REDIRECT]));
    assert_eq!(
        count(&app, "clients", &format!("client_id = '{admin_made}'")),
        1
    );
}

async fn rfc7592_2_3_of_30_concurrent_deletes_one_removes_the_client(backend: Backend) {
    let app = spawn_app_with(backend, open_mode).await;
    let host = app.address.trim_start_matches("http://").to_string();
    for round in 0..2 {
        let reg = register_one(&app, &web_metadata()).await;
        let id = reg["client_id"].as_str().unwrap();
        let auth = format!(
            "Bearer {}",
            reg["registration_access_token"].as_str().unwrap()
        );
        let url = app.url(&format!("/register/{id}"));
        let requests = (0..30)
            .map(|_| instant::request("DELETE", &url, &[("Authorization", &auth)], ""))
            .collect();
        let answers = instant::fire(&host, requests).await;
        let statuses = by_status(&answers);
        assert_eq!(statuses.get(&204), Some(&1), "round {round}: {statuses:?}");
        assert_eq!(statuses.get(&401), Some(&29), "round {round}: {statuses:?}");
        assert_eq!(count(&app, "clients", &format!("client_id = '{id}'")), 0);
        let removed = events(&app)
            .await
            .into_iter()
            .filter(|e| e.event_type == "client.removed" && e.target.as_deref() == Some(id))
            .count();
        assert_eq!(removed, 1, "one removal, one event");
    }
}
