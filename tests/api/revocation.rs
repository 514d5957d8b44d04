//! Revocation (RFC 7009) and what a resource server sees: a small resource server in the test
//! accepts Sigil's access tokens by local JWKS verification or by asking Sigil (introspection),
//! and stops accepting them right after revocation or "log out everywhere".

use std::net::TcpListener;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::{Browser, VERIFIER};
use crate::helpers::{jwt_parts, spawn_app, spawn_app_with, verify_with_jwks, Backend, TestApp};

both_backends!(
    revoking_an_access_token_ends_it_at_userinfo_introspection_and_the_resource_server,
    revoking_a_refresh_token_revokes_its_grant,
    a_client_revokes_only_its_own_tokens,
    unknown_expired_and_malformed_tokens_answer_200_and_bad_requests_are_refused,
    logout_everywhere_ends_access_at_the_resource_server,
    attack08_a_token_for_another_audience_is_refused_by_the_resource_server,
    the_deny_list_forgets_tokens_once_they_have_expired,
);

/// A resource server: `GET /local` verifies the bearer token with Sigil's JWKS; `GET /asked`
/// asks Sigil's introspection endpoint with its own client credentials. Both require `typ:
/// at+jwt`, Sigil as issuer and this server's audience.
struct ResourceServer {
    base: String,
}

#[derive(Clone)]
struct RsConfig {
    issuer: String,
    audience: String,
    jwks_uri: String,
    introspection: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
}

impl ResourceServer {
    async fn start(app: &TestApp, audience: &str) -> Self {
        let (client_id, client_secret) = app.cc_client(&format!("rs-{}", rand_suffix()));
        let config = RsConfig {
            issuer: app.issuer(),
            audience: audience.to_string(),
            jwks_uri: app.endpoint("jwks_uri").await,
            introspection: app.endpoint("introspection_endpoint").await,
            client_id,
            client_secret,
            http: reqwest::Client::new(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(config.clone()))
                .route("/local", web::get().to(local))
                .route("/asked", web::get().to(asked))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { base }
    }

    /// The status both ways of checking give `token`: (local, introspection).
    async fn statuses(&self, token: &str) -> (u16, u16) {
        let http = reqwest::Client::new();
        let mut out = [0u16; 2];
        for (i, path) in ["/local", "/asked"].iter().enumerate() {
            out[i] = http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
        }
        (out[0], out[1])
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_string)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn local(req: HttpRequest, config: web::Data<RsConfig>) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return HttpResponse::Unauthorized().finish();
    };
    let jwks: Value = match config.http.get(&config.jwks_uri).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => return HttpResponse::ServiceUnavailable().finish(),
    };
    if token.split('.').count() != 3 {
        return HttpResponse::Unauthorized().finish();
    }
    let (header, claims) = jwt_parts(&token);
    let good = header["typ"] == "at+jwt"
        && verify_with_jwks(&token, &jwks, "RS256").is_ok()
        && claims["iss"] == config.issuer.as_str()
        && claims["aud"] == config.audience.as_str()
        && claims["exp"].as_i64().is_some_and(|exp| exp > now());
    if good {
        HttpResponse::Ok().json(json!({"sub": claims["sub"]}))
    } else {
        HttpResponse::Unauthorized().finish()
    }
}

async fn asked(req: HttpRequest, config: web::Data<RsConfig>) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return HttpResponse::Unauthorized().finish();
    };
    let answer: Value = match config
        .http
        .post(&config.introspection)
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r.json().await.unwrap_or(Value::Null),
        _ => return HttpResponse::ServiceUnavailable().finish(),
    };
    if answer["active"] == true && answer["aud"] == config.audience.as_str() {
        HttpResponse::Ok().json(json!({"sub": answer["sub"]}))
    } else {
        HttpResponse::Unauthorized().finish()
    }
}

async fn revoke(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let url = app.endpoint("revocation_endpoint").await;
    app.http
        .post(url)
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("{name} in {v}"))
}

async fn introspected(app: &TestApp, token: &str) -> Value {
    let (id, secret) = app.cc_client(&format!("probe-{}", rand_suffix()));
    app.http
        .post(app.endpoint("introspection_endpoint").await)
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

async fn refresh(app: &TestApp, id: &str, secret: &str, rt: &str) -> reqwest::Response {
    app.token_basic(
        id,
        secret,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

async fn revoking_an_access_token_ends_it_at_userinfo_introspection_and_the_resource_server(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let rs = ResourceServer::start(&app, &app.issuer()).await;
    let (id, secret, tokens) = app.user_tokens("rp").await;
    let at = text(&tokens, "access_token");
    assert_eq!(rs.statuses(at).await, (200, 200));
    assert_eq!(app.userinfo(at).await.status(), 200);

    let r = revoke(&app, &id, &secret, &[("token", at)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.bytes().await.unwrap().is_empty());

    // Asking Sigil sees the revocation at once; a resource server that only verifies locally
    // cannot (that is the trade-off of self-contained tokens: short lifetimes bound it).
    assert_eq!(rs.statuses(at).await, (200, 401));
    assert_eq!(app.userinfo(at).await.status(), 401);
    assert_eq!(introspected(&app, at).await, json!({"active": false}));
    // Revoking an access token leaves the grant: the refresh token still works, and its new
    // access token is accepted.
    let next = refresh(&app, &id, &secret, text(&tokens, "refresh_token")).await;
    assert_eq!(next.status(), 200);
    let next: Value = next.json().await.unwrap();
    assert_eq!(rs.statuses(text(&next, "access_token")).await, (200, 200));
    // Revoking again is not an error.
    assert_eq!(
        revoke(&app, &id, &secret, &[("token", at)]).await.status(),
        200
    );
}

async fn revoking_a_refresh_token_revokes_its_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let rs = ResourceServer::start(&app, &app.issuer()).await;
    let (id, secret, tokens) = app.user_tokens("rp").await;
    // A second, unrelated grant of the same user and client stays alive.
    let (_, _, other) = app.user_tokens("rp2").await;
    let rt = text(&tokens, "refresh_token");
    let r = revoke(
        &app,
        &id,
        &secret,
        &[("token", rt), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let again = refresh(&app, &id, &secret, rt).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // RFC 7009 §2.1: the access tokens of the same grant end with it.
    let at = text(&tokens, "access_token");
    assert_eq!(app.userinfo(at).await.status(), 401);
    assert_eq!(rs.statuses(at).await.1, 401);
    assert_eq!(rs.statuses(text(&other, "access_token")).await, (200, 200));
    // A public client revokes its own refresh token with its client_id alone.
    let (spa, _) = app.web_client(
        "spa",
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}),
    );
    let code = app
        .code_for(&Browser::new(), &spa, &[("scope", "openid offline_access")])
        .await;
    let spa_tokens: Value = app
        .http
        .post(app.endpoint("token_endpoint").await)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", crate::flow::REDIRECT),
            ("client_id", &spa),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spa_rt = text(&spa_tokens, "refresh_token");
    let r = app
        .http
        .post(app.endpoint("revocation_endpoint").await)
        .form(&[("token", spa_rt), ("client_id", &spa)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .post(app.endpoint("token_endpoint").await)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", spa_rt),
            ("client_id", &spa),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn a_client_revokes_only_its_own_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let (id, secret, tokens) = app.user_tokens("rp").await;
    let (other, other_secret) = app.web_client("other", json!({}));
    for token in [
        text(&tokens, "access_token"),
        text(&tokens, "refresh_token"),
    ] {
        let r = revoke(&app, &other, &other_secret, &[("token", token)]).await;
        assert_eq!(r.status(), 400, "{token}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "unauthorized_client"
        );
    }
    assert_eq!(
        app.userinfo(text(&tokens, "access_token")).await.status(),
        200
    );
    assert_eq!(
        refresh(&app, &id, &secret, text(&tokens, "refresh_token"))
            .await
            .status(),
        200
    );
}

async fn unknown_expired_and_malformed_tokens_answer_200_and_bad_requests_are_refused(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cc_client("svc");
    let cc: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let cc = text(&cc, "access_token").to_string();
    for token in ["unknown", "a.b.c", "", &"x".repeat(4000)] {
        let form: Vec<(&str, &str)> = if token.is_empty() {
            vec![("token", "?")]
        } else {
            vec![("token", token)]
        };
        let r = revoke(&app, &id, &secret, &form).await;
        assert_eq!(r.status(), 200, "{token}");
    }
    // A token longer than http.max_param_bytes is refused before anything reads it.
    let long = "x".repeat(5000);
    let r = revoke(&app, &id, &secret, &[("token", long.as_str())]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // An unknown hint is ignored (RFC 7009 §2.1).
    let r = revoke(
        &app,
        &id,
        &secret,
        &[("token", "x"), ("token_type_hint", "something_else")],
    )
    .await;
    assert_eq!(r.status(), 200);
    // No token: invalid_request; no or wrong credentials: invalid_client, and nothing revoked.
    let r = revoke(&app, &id, &secret, &[("token_type_hint", "access_token")]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = revoke(&app, &id, "wrong", &[("token", &cc)]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = app
        .http
        .post(app.endpoint("revocation_endpoint").await)
        .form(&[("token", cc.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(introspected(&app, &cc).await["active"], true);
    // An expired token: 200, nothing to do.
    app.state.clock.advance(601);
    assert_eq!(
        revoke(&app, &id, &secret, &[("token", &cc)]).await.status(),
        200
    );
}

async fn logout_everywhere_ends_access_at_the_resource_server(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    let rs = ResourceServer::start(&app, &app.issuer()).await;
    let (id, secret, tokens) = app.user_tokens("rp").await;
    let at = text(&tokens, "access_token");
    assert_eq!(rs.statuses(at).await, (200, 200));
    // Tokens issued in the same second as "log out everywhere" count as before it.
    app.state.clock.advance(1);
    let out = app.sigil(&["user", "logout-everywhere", "alice"], None);
    assert!(out.status.success());
    // The CLI is another process: the server sees the change within `tokens.revocation_poll`
    // (100 ms in tests), and from then on every answer is inactive.
    let mut seen = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if rs.statuses(at).await.1 == 401 {
            seen = Some(());
            break;
        }
    }
    assert!(
        seen.is_some(),
        "logout-everywhere never reached introspection"
    );
    for _ in 0..3 {
        assert_eq!(rs.statuses(at).await.1, 401);
    }
    assert_eq!(app.userinfo(at).await.status(), 401);
    let r = refresh(&app, &id, &secret, text(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), 400);
}

async fn attack08_a_token_for_another_audience_is_refused_by_the_resource_server(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("alice");
    // This resource server is "B"; Sigil's tokens without a resource are for the issuer.
    let rs_b = ResourceServer::start(&app, "https://api-b.example").await;
    let (_, _, tokens) = app.user_tokens("rp").await;
    let at = text(&tokens, "access_token");
    let (header, claims) = jwt_parts(at);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["aud"], app.issuer());
    assert_eq!(rs_b.statuses(at).await, (401, 401));
    // An ID token is not an access token, at either check.
    let rs_a = ResourceServer::start(&app, &app.issuer()).await;
    assert_eq!(rs_a.statuses(text(&tokens, "id_token")).await, (401, 401));
}

async fn the_deny_list_forgets_tokens_once_they_have_expired(backend: Backend) {
    use diesel::RunQueryDsl;
    let app = spawn_app_with(backend, |s| {
        s.maintenance.interval =
            sigil::config::DurationSetting(std::time::Duration::from_millis(100))
    })
    .await;
    let (id, secret) = app.cc_client("svc");
    let cc: Value = app
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let cc = text(&cc, "access_token").to_string();
    assert_eq!(
        revoke(&app, &id, &secret, &[("token", &cc)]).await.status(),
        200
    );
    assert_eq!(introspected(&app, &cc).await["active"], false);
    let count = |app: &TestApp| {
        app.state
            .db
            .with_conn(|conn| {
                #[derive(diesel::QueryableByName)]
                struct N {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let rows: Vec<N> =
                    diesel::sql_query("SELECT COUNT(*) AS n FROM revoked_tokens").load(conn)?;
                Ok::<_, sigil::storage::StorageError>(rows[0].n)
            })
            .unwrap()
    };
    assert_eq!(count(&app), 1);
    app.state.clock.advance(601);
    // The maintenance task prunes it (every 100 ms here).
    for _ in 0..100 {
        if count(&app) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(&app), 0);
}
