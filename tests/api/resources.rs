//! Resource servers (RFC 8707 resource indicators): registration through the CLI, the
//! `resource` parameter at /authorize and the token endpoint, and what a token for a resource
//! carries (`aud`, narrowed scope, the resource's lifetime).

use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{location, query, Browser, REDIRECT, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, verify_with_jwks, Backend, TestApp};

both_backends!(
    resource_cli_add_list_show_remove,
    resource_cli_refuses_bad_metadata_and_stores_nothing,
    rfc8707_invalid_target_at_authorize_redirects_with_iss,
    rfc8707_invalid_target_at_token_endpoint,
    rfc8707_code_flow_token_is_for_the_resource_and_refresh_keeps_it,
    rfc8707_resource_named_only_at_the_token_endpoint,
    rfc8707_client_credentials_for_a_resource,
    attack08_token_for_resource_a_is_not_for_resource_b,
);

const API: &str = "https://api.example/v1";
const OTHER_API: &str = "https://other.example/";

/// `sigil resource add` from standard input; returns the printed record.
fn add_resource(app: &TestApp, metadata: &Value) -> Value {
    let out = app.sigil(
        &["resource", "add", "--metadata", "-"],
        Some(&metadata.to_string()),
    );
    assert!(
        out.status.success(),
        "resource add failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("resource add prints JSON")
}

fn list_resources(app: &TestApp) -> Value {
    let out = app.sigil(&["resource", "list", "--json"], None);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("resource list --json prints JSON")
}

/// The API (`api:read api:write`, 5 minute tokens) and a client that may use it.
fn api_and_web_client(app: &TestApp) -> (String, String) {
    add_resource(
        app,
        &json!({"resource": API, "scope": "api:read api:write", "access_token_ttl": "5m"}),
    );
    app.add_user("alice");
    app.web_client(
        "rp",
        json!({"scope": "openid profile email offline_access api:read"}),
    )
}

async fn token_error(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON error body"))
}

async fn resource_cli_add_list_show_remove(backend: Backend) {
    let app = spawn_app(backend).await;
    let record = add_resource(
        &app,
        &json!({"resource": API, "scope": "api:write api:read", "access_token_ttl": "300s",
                "unknown_member": true}),
    );
    assert_eq!(record["resource"], API);
    assert_eq!(record["scope"], "api:read api:write");
    assert_eq!(record["access_token_ttl"], "5m");
    assert!(record["created_at"].as_i64().unwrap() > 0);
    assert!(record.get("unknown_member").is_none());

    // From a file too; the stored record comes back from list and show.
    let file = app.dir.path().join("other.json");
    std::fs::write(
        &file,
        json!({"resource": OTHER_API, "scope": "other"}).to_string(),
    )
    .unwrap();
    let out = app.sigil(
        &["resource", "add", "--metadata", file.to_str().unwrap()],
        None,
    );
    assert!(out.status.success());
    let listed = list_resources(&app);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0], record);
    assert_eq!(listed[1]["resource"], OTHER_API);
    let out = app.sigil(&["resource", "list"], None);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(API) && table.contains(OTHER_API), "{table}");
    let out = app.sigil(&["resource", "show", API], None);
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        record
    );

    // A second registration of the same resource is refused and changes nothing.
    let out = app.sigil(
        &["resource", "add", "--metadata", "-"],
        Some(&json!({"resource": API, "scope": "x"}).to_string()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(list_resources(&app)[0], record);

    let out = app.sigil(&["resource", "remove", API], None);
    assert!(out.status.success());
    let out = app.sigil(&["resource", "show", API], None);
    assert_eq!(out.status.code(), Some(2));
    let out = app.sigil(&["resource", "remove", API], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(list_resources(&app).as_array().unwrap().len(), 1);
}

async fn resource_cli_refuses_bad_metadata_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let ec_key = json!({"kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let cases = [
        ("not JSON", "{".to_string()),
        (
            "relative",
            json!({"resource": "/api", "scope": "a"}).to_string(),
        ),
        (
            "fragment",
            json!({"resource": "https://api.example/#x", "scope": "a"}).to_string(),
        ),
        (
            "not http",
            json!({"resource": "urn:example:api", "scope": "a"}).to_string(),
        ),
        ("no scope", json!({"resource": API}).to_string()),
        (
            "bad scope",
            json!({"resource": API, "scope": "a\"b"}).to_string(),
        ),
        (
            "ttl too long",
            json!({"resource": API, "scope": "a", "access_token_ttl": "1h"}).to_string(),
        ),
        (
            "ttl too short",
            json!({"resource": API, "scope": "a", "access_token_ttl": "60s"}).to_string(),
        ),
        (
            "private key",
            json!({"resource": API, "scope": "a",
                   "jwks": {"keys": [{"kty": "oct", "k": "AAAA"}]}})
            .to_string(),
        ),
        (
            "unsupported alg",
            json!({"resource": API, "scope": "a", "jwks": {"keys": [ec_key]},
                   "access_token_encrypted_response_alg": "RSA1_5"})
            .to_string(),
        ),
        (
            "enc without alg",
            json!({"resource": API, "scope": "a",
                   "access_token_encrypted_response_enc": "A256GCM"})
            .to_string(),
        ),
        (
            "alg without a key for it",
            json!({"resource": API, "scope": "a", "jwks": {"keys": [ec_key]},
                   "access_token_encrypted_response_alg": "RSA-OAEP-256"})
            .to_string(),
        ),
    ];
    for (why, metadata) in cases {
        let out = app.sigil(&["resource", "add", "--metadata", "-"], Some(&metadata));
        assert_eq!(out.status.code(), Some(2), "{why}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid_request"), "{why}: {stderr}");
        assert!(out.stdout.is_empty(), "{why}");
    }
    assert_eq!(list_resources(&app), json!([]));
    // The same key and algorithm family that fit are accepted, and the encryption settings
    // are stored (A256GCM by default).
    let record = add_resource(
        &app,
        &json!({"resource": API, "scope": "a", "jwks": {"keys": [ec_key]},
                "access_token_encrypted_response_alg": "ECDH-ES"}),
    );
    assert_eq!(record["access_token_encrypted_response_enc"], "A256GCM");
    assert_eq!(record["jwks"]["keys"][0]["crv"], "P-256");
}

async fn rfc8707_invalid_target_at_authorize_redirects_with_iss(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client_id, _) = api_and_web_client(&app);
    add_resource(&app, &json!({"resource": OTHER_API, "scope": "other"}));
    for (why, resource) in [
        ("unknown", "https://unknown.example/"),
        ("relative", "/v1"),
        ("fragment", "https://api.example/v1#frag"),
        ("not open to this client", OTHER_API),
    ] {
        let r = app
            .start(&Browser::new(), &client_id, &[("resource", resource)])
            .await;
        assert_eq!(r.status(), 303, "{why}");
        let to = location(&r);
        assert!(to.starts_with(REDIRECT), "{why}: {to}");
        let q = query(&to);
        assert_eq!(q["error"], "invalid_target", "{why}");
        assert_eq!(q["iss"], app.issuer(), "{why}");
        assert_eq!(q["state"], "st-1", "{why}");
        assert!(!q.contains_key("code"), "{why}");
    }
    // A known resource but no requested scope it accepts: the scope is what is wrong.
    let r = app
        .start(
            &Browser::new(),
            &client_id,
            &[("resource", API), ("scope", "openid email")],
        )
        .await;
    let q = query(&location(&r));
    assert_eq!(q["error"], "invalid_scope");
    assert_eq!(q["iss"], app.issuer());
    // Two resources at once: refused before anything is trusted, as an error page.
    let url = app
        .authorize_url(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("resource", API),
            ("resource", OTHER_API),
        ])
        .await;
    let r = Browser::new().get(&url).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("invalid_target"));
    // POST /authorize checks the same way.
    let url = app.endpoint("authorization_endpoint").await;
    let r = Browser::new()
        .post_form(
            &url,
            &[
                ("client_id", client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid api:read"),
                ("state", "st-2"),
                ("code_challenge", crate::flow::CHALLENGE),
                ("code_challenge_method", "S256"),
                ("resource", "https://unknown.example/"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let q = query(&location(&r));
    assert_eq!(q["error"], "invalid_target");
    assert_eq!(q["state"], "st-2");
    assert_eq!(q["iss"], app.issuer());
}

async fn rfc8707_invalid_target_at_token_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client_id, secret) = api_and_web_client(&app);
    add_resource(&app, &json!({"resource": OTHER_API, "scope": "other"}));
    let (cc, cc_secret) = app.cc_client("svc");
    for (why, resource) in [
        ("unknown", "https://unknown.example/"),
        ("relative", "v1"),
        ("fragment", "https://api.example/v1#frag"),
        ("not open to this client", OTHER_API),
    ] {
        let r = app
            .token_basic(
                &cc,
                &cc_secret,
                &[("grant_type", "client_credentials"), ("resource", resource)],
            )
            .await;
        let (status, body) = token_error(r).await;
        assert_eq!(status, 400, "{why}");
        assert_eq!(body["error"], "invalid_target", "{why}: {body}");
    }
    let (status, body) = token_error(
        app.token_basic(
            &cc,
            &cc_secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", API),
                ("resource", OTHER_API),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );

    // A code authorized for the API cannot be exchanged for another resource; the refusal
    // leaves the code usable.
    add_resource(
        &app,
        &json!({"resource": "https://third.example/", "scope": "api:read"}),
    );
    let code = app
        .code_for(
            &Browser::new(),
            &client_id,
            &[("scope", "openid api:read"), ("resource", API)],
        )
        .await;
    let exchange = |resource: &'static str| {
        let (client_id, secret, code) = (client_id.clone(), secret.clone(), code.clone());
        let app = &app;
        async move {
            app.token_basic(
                &client_id,
                &secret,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                    ("resource", resource),
                ],
            )
            .await
        }
    };
    let (status, body) = token_error(exchange("https://third.example/").await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_target", "{body}");
    let (status, body) = token_error(exchange("https://unknown.example/").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let ok = exchange(API).await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.unwrap();
    assert_eq!(
        jwt_parts(tokens["access_token"].as_str().unwrap()).1["aud"],
        API
    );
}

async fn rfc8707_code_flow_token_is_for_the_resource_and_refresh_keeps_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client_id, secret) = api_and_web_client(&app);
    let code = app
        .code_for(
            &Browser::new(),
            &client_id,
            &[
                ("scope", "openid email offline_access api:read"),
                ("resource", API),
            ],
        )
        .await;
    let r = app
        .exchange(&client_id, &secret, &code, Some(VERIFIER))
        .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let jwks = app.jwks().await;
    verify_with_jwks(at, &jwks, "RS256").expect("the access token verifies against the JWKS");
    let (header, claims) = jwt_parts(at);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["iss"], app.issuer());
    assert_eq!(claims["client_id"], client_id);
    // Only the scopes the resource accepts; lifetime from the resource (5m), not the default.
    assert_eq!(claims["scope"], "api:read");
    assert_eq!(tokens["scope"], "api:read");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 300);
    assert_eq!(tokens["expires_in"], 300);
    // The ID token is unchanged: for the client, with the email claims of the grant.
    let id_token = tokens["id_token"].as_str().unwrap();
    verify_with_jwks(id_token, &jwks, "RS256").unwrap();
    let (_, id_claims) = jwt_parts(id_token);
    assert_eq!(id_claims["aud"], client_id);
    assert_eq!(id_claims["email"], "alice@example.com");

    // The resource's token is not for UserInfo (its audience is Sigil itself).
    let r = app.userinfo(at).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");

    // Refresh keeps the resource, with or without naming it; another one is refused and does
    // not burn the refresh token.
    let refresh = |token: String, resource: Option<&'static str>| {
        let (client_id, secret, app) = (client_id.clone(), secret.clone(), &app);
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ];
            if let Some(r) = resource {
                form.push(("resource", r));
            }
            app.token_basic(&client_id, &secret, &form).await
        }
    };
    add_resource(&app, &json!({"resource": OTHER_API, "scope": "api:read"}));
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = token_error(refresh(rt.clone(), Some(OTHER_API)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let r = refresh(rt, None).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(second["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "api:read");
    assert_eq!(second["expires_in"], 300);
    let r = refresh(
        second["refresh_token"].as_str().unwrap().to_string(),
        Some(API),
    )
    .await;
    assert_eq!(r.status(), 200);
    let third: Value = r.json().await.unwrap();
    assert_eq!(
        jwt_parts(third["access_token"].as_str().unwrap()).1["aud"],
        API
    );

    // Introspection answers for the resource's token and reports its audience.
    let (rs, rs_secret) = app.cc_client("api-server");
    let answer = app
        .introspect(&rs, &rs_secret, third["access_token"].as_str().unwrap())
        .await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["aud"], API);
    assert_eq!(answer["scope"], "api:read");
    assert_eq!(answer["client_id"], client_id);
}

async fn rfc8707_resource_named_only_at_the_token_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client_id, secret) = api_and_web_client(&app);
    // No resource at /authorize: the grant may be exchanged for any resource the client may
    // use, or for Sigil itself.
    let code = app
        .code_for(
            &Browser::new(),
            &client_id,
            &[("scope", "openid email offline_access api:read")],
        )
        .await;
    let r = app
        .token_basic(
            &client_id,
            &secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("resource", API),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "api:read");
    // Refreshing without a resource gives a token for Sigil (UserInfo accepts it) with the
    // grant's whole scope and the default lifetime.
    let rt = tokens["refresh_token"].as_str().unwrap();
    let r = app
        .token_basic(
            &client_id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let plain: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(plain["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], app.issuer());
    assert_eq!(claims["scope"], "api:read email offline_access openid");
    assert_eq!(plain["expires_in"], 600);
    let r = app.userinfo(plain["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    // A resource with a scope the refresh asks for none of: invalid_scope, token not burnt.
    let rt = plain["refresh_token"].as_str().unwrap();
    let (status, body) = token_error(
        app.token_basic(
            &client_id,
            &secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", "openid email"),
                ("resource", API),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let r = app
        .token_basic(
            &client_id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn rfc8707_client_credentials_for_a_resource(backend: Backend) {
    let app = spawn_app(backend).await;
    add_resource(
        &app,
        &json!({"resource": API, "scope": "api:read reports", "access_token_ttl": "7m"}),
    );
    let (cc, cc_secret) = app.cc_client("svc");
    let r = app
        .token_basic(
            &cc,
            &cc_secret,
            &[("grant_type", "client_credentials"), ("resource", API)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    verify_with_jwks(token, &app.jwks().await, "RS256").unwrap();
    let (_, claims) = jwt_parts(token);
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["sub"], cc);
    // The client's scopes (api:read api:write) narrowed to the resource's.
    assert_eq!(claims["scope"], "api:read");
    assert_eq!(body["scope"], "api:read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        420
    );
    assert_eq!(body["expires_in"], 420);
    // Asking only for a scope the resource does not accept.
    let (status, body) = token_error(
        app.token_basic(
            &cc,
            &cc_secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "api:write"),
                ("resource", API),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // Without a resource: a token for Sigil, as before.
    let body: Value = app
        .token_basic(&cc, &cc_secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], app.issuer());
    assert_eq!(claims["scope"], "api:read api:write");
    assert_eq!(body["expires_in"], 600);
}

async fn attack08_token_for_resource_a_is_not_for_resource_b(backend: Backend) {
    let app = spawn_app(backend).await;
    add_resource(&app, &json!({"resource": API, "scope": "api:read"}));
    add_resource(&app, &json!({"resource": OTHER_API, "scope": "api:read"}));
    let (cc, cc_secret) = app.cc_client("svc");
    let body: Value = app
        .token_basic(
            &cc,
            &cc_secret,
            &[("grant_type", "client_credentials"), ("resource", API)],
        )
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    // Resource B asks Sigil about the token: it is live, and its audience is A alone, so B
    // must refuse it.
    let (rs_b, rs_b_secret) = app.cc_client("resource-b");
    let answer = app.introspect(&rs_b, &rs_b_secret, token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["aud"], API);
    assert_ne!(answer["aud"], OTHER_API);
    // The token the client asks for B is for B alone.
    let body: Value = app
        .token_basic(
            &cc,
            &cc_secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", OTHER_API),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let answer = app
        .introspect(&rs_b, &rs_b_secret, body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(answer["aud"], OTHER_API);
}
