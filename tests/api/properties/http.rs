//! The parsers behind the real endpoints, over real HTTP on both backends: fuzzed forms,
//! credentials, queries, hints and metadata never give a 5xx, a dropped connection or a
//! redirect to an unregistered URI; every OAuth error is the RFC's, with the RFC's status; and
//! inputs of exactly the size limits (`http.max_body_bytes`, `http.max_param_bytes`) are
//! answered cleanly.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use serde_json::{json, Value};

use crate::both_backends;
use crate::flow::REDIRECT;
use crate::helpers::{spawn_app, Backend, TestApp};

use super::client_auth::authorization;
use super::forms::oauth_form;
use super::jose_keys::jwks;
use super::{bytes, hostile_text, mutated, report, samples};

both_backends!(
    fuzzed_token_requests_get_rfc_errors_never_5xx,
    fuzzed_authorization_requests_never_redirect_elsewhere,
    fuzzed_tokens_and_hints_are_refused_cleanly,
    fuzzed_resource_registrations_are_stored_or_refused,
    requests_at_exactly_the_size_limits_are_answered_cleanly,
);

/// RFC 6749 §5.2 (and RFC 8707 §2): the token endpoint's error codes.
const TOKEN_ERRORS: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

fn form_body(pairs: &[(String, String)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

/// A form body: the endpoints' parameter names with fuzzed values (the registered clients'
/// ids among them), or any bytes.
fn body(client_ids: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let with_client =
        (oauth_form(), proptest::sample::select(client_ids)).prop_map(|(mut f, id)| {
            f.push(("client_id".into(), id));
            f
        });
    prop_oneof![
        2 => oauth_form().prop_map(|f| form_body(&f)),
        2 => with_client.prop_map(|f| form_body(&f)),
        1 => bytes(3_000),
    ]
}

/// The first 200 characters of a fuzzed input, for failure messages.
fn short(text: impl AsRef<[u8]>) -> String {
    let text = String::from_utf8_lossy(text.as_ref());
    let cut: String = text.chars().take(200).collect();
    format!("{cut:?} ({} bytes)", text.len())
}

/// A GET with `query`, or the same parameters as a form POST when the URL would be too long for
/// the HTTP client (64 kB).
fn get_or_post(app: &TestApp, url: &str, query: &[u8]) -> reqwest::RequestBuilder {
    if query.len() > 8 * 1024 {
        return app
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(query.to_vec());
    }
    app.http
        .get(format!("{url}?{}", String::from_utf8_lossy(query)))
}

/// Sends `request`, failing the test on a dropped connection (a panic in a handler kills its
/// worker) and on any 5xx; returns status, headers and body.
async fn answer(
    request: reqwest::RequestBuilder,
    what: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    assert!(
        status < 500,
        "{what}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    (status, headers, body)
}

/// Times one family of requests and prints it like the parser properties.
struct Timer {
    name: String,
    started: Instant,
    slowest: Duration,
    count: u32,
}

impl Timer {
    fn new(name: &str, backend: Backend) -> Self {
        Self {
            name: format!("{name} over HTTP ({backend:?})"),
            started: Instant::now(),
            slowest: Duration::ZERO,
            count: 0,
        }
    }
    fn case(&mut self, since: Instant) {
        self.slowest = self.slowest.max(since.elapsed());
        self.count += 1;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        report(&self.name, self.count, self.started.elapsed(), self.slowest);
    }
}

/// The token endpoint (and introspection and revocation, which read the same form and
/// credentials): fuzzed forms and Authorization headers get the RFC 6749 §5.2 error with its
/// status — `invalid_client` 401 with `WWW-Authenticate` when Basic was tried (§5.2).
async fn fuzzed_token_requests_get_rfc_errors_never_5xx(backend: Backend) {
    let app = spawn_app(backend).await;
    let (cc, _) = app.cc_client("cc");
    let (web, _) = app.web_client("web", json!({}));
    let token = app.endpoint("token_endpoint").await;
    let introspect = app.endpoint("introspection_endpoint").await;
    let revoke = app.endpoint("revocation_endpoint").await;
    let input = (body(vec![cc, web]), proptest::option::of(authorization()));
    let mut timer = Timer::new("/token, /introspect, /revoke", backend);
    for (body, auth) in samples(input) {
        let auth = auth.and_then(|a| HeaderValue::from_str(&a).ok());
        for url in [&token, &introspect, &revoke] {
            let mut request = app
                .http
                .post(url.as_str())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone());
            if let Some(a) = &auth {
                request = request.header(AUTHORIZATION, a.clone());
            }
            let t = Instant::now();
            let what = format!("POST {url} {} {auth:?}", short(&body));
            let (status, headers, bytes) = answer(request, &what).await;
            timer.case(t);
            if url == &token {
                let v: Value =
                    serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{what}: not JSON"));
                let error = v["error"].as_str().unwrap_or_else(|| panic!("{what}: {v}"));
                assert!(TOKEN_ERRORS.contains(&error), "{what}: {v}");
                let expected = match error {
                    _ if body.len() > app.settings.http.max_body_bytes => 413,
                    "invalid_client" => 401,
                    _ => 400,
                };
                assert_eq!(status, expected, "{what}: {v}");
                if status == 401 && auth.is_some() {
                    assert!(headers.contains_key("www-authenticate"), "{what}");
                }
            }
        }
    }
}

/// /authorize with fuzzed queries (the registered client's id and mutated redirect URIs among
/// them): an error page or a redirect to the registered URI only (RFC 6749 §4.1.2.1, RFC 9700
/// §4.1.3; SECURITY.md 11), never a 5xx.
async fn fuzzed_authorization_requests_never_redirect_elsewhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let (web, _) = app.web_client("web", json!({}));
    let authorize = app.endpoint("authorization_endpoint").await;
    let query = (oauth_form(), mutated(REDIRECT.to_string()), any::<bool>());
    let mut timer = Timer::new("/authorize", backend);
    for (mut pairs, redirect, post) in samples(query) {
        pairs.retain(|(k, _)| k != "client_id" && k != "redirect_uri");
        pairs.push(("client_id".into(), web.clone()));
        pairs.push(("redirect_uri".into(), redirect.clone()));
        let body = form_body(&pairs);
        let request = if post {
            app.http
                .post(&authorize)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone())
        } else {
            get_or_post(&app, &authorize, &body)
        };
        let t = Instant::now();
        let what = format!("/authorize {}", short(&body));
        let (_, headers, _) = answer(request, &what).await;
        timer.case(t);
        if let Some(location) = headers.get(LOCATION) {
            let location = location.to_str().unwrap();
            let ours = location.starts_with(&app.address) || location.starts_with('/');
            assert!(
                ours || (redirect == REDIRECT && location.starts_with(REDIRECT)),
                "{what}: redirected to {location}"
            );
        }
    }
}

/// Forged bearer tokens at UserInfo (RFC 6750 §3.1: 401 `invalid_token`), forged hints at
/// /logout (no redirect, nothing ended) and at /authorize.
async fn fuzzed_tokens_and_hints_are_refused_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let userinfo = app.endpoint("userinfo_endpoint").await;
    let logout = app.endpoint("end_session_endpoint").await;
    let token = prop_oneof![
        hostile_text(),
        "[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,300}",
        mutated("eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJ4In0.c2ln".into()),
    ];
    let mut timer = Timer::new("/userinfo, /logout", backend);
    for token in samples(token) {
        let what = format!("token {}", short(&token));
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            let t = Instant::now();
            let (status, _, body) =
                answer(app.http.get(&userinfo).header(AUTHORIZATION, value), &what).await;
            timer.case(t);
            assert!(status == 401 || status == 400, "{what}: {status}");
            if status == 401 {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                assert!(
                    v.is_null() || v["error"] == "invalid_token" || v["error"] == "invalid_request",
                    "{what}: {v}"
                );
            }
        }
        let query = form_body(&[
            ("id_token_hint".into(), token.clone()),
            ("post_logout_redirect_uri".into(), REDIRECT.into()),
            ("state".into(), "s".into()),
        ]);
        let t = Instant::now();
        let (_, headers, _) = answer(get_or_post(&app, &logout, &query), &what).await;
        timer.case(t);
        assert!(
            !headers.contains_key(LOCATION),
            "{what}: a forged hint redirected"
        );
    }
}

/// The admin API's resource registration (RFC 8707 metadata) with fuzzed documents: 201 with
/// the stored record, 400 with an RFC 7591-style error body, or 413 for a body over the limit;
/// never a 5xx.
async fn fuzzed_resource_registrations_are_stored_or_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let bearer = crate::admin_api::admin_token(&app).await;
    let doc = (
        prop_oneof![
            Just(json!("https://api.example/")),
            hostile_text().prop_map(Value::String)
        ],
        prop_oneof![Just(json!("read")), hostile_text().prop_map(Value::String)],
        proptest::option::of(jwks()),
        proptest::option::of(prop_oneof![
            Just(json!("ECDH-ES")),
            Just(json!("RSA-OAEP-256")),
            super::json_value()
        ]),
    )
        .prop_map(|(resource, scope, jwks, alg)| {
            let mut d = json!({"resource": resource, "scope": scope});
            if let Some(j) = jwks {
                d["jwks"] = j;
            }
            if let Some(a) = alg {
                d["access_token_encrypted_response_alg"] = a;
            }
            d.to_string().into_bytes()
        });
    let doc = prop_oneof![4 => doc, 1 => bytes(2_000)];
    let url = app.url("/admin/api/resources");
    let mut timer = Timer::new("/admin/api/resources", backend);
    for (i, mut doc) in samples(doc).enumerate() {
        // Each accepted resource is new: its URI carries the case number.
        if let Ok(mut v) = serde_json::from_slice::<Value>(&doc) {
            if v["resource"] == "https://api.example/" {
                v["resource"] = format!("https://api.example/{i}").into();
                doc = v.to_string().into_bytes();
            }
        }
        let what = format!("POST /admin/api/resources {}", short(&doc));
        let t = Instant::now();
        let (status, _, body) = answer(
            app.http.post(&url).bearer_auth(&bearer).body(doc.clone()),
            &what,
        )
        .await;
        timer.case(t);
        // A body over the limit is refused whole (413) before it is parsed.
        let too_big = doc.len() > app.settings.http.max_body_bytes;
        assert!(
            status == 201 || status == 400 || (status == 413 && too_big),
            "{what}: {status}"
        );
        if status == 400 {
            let v: Value =
                serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: not JSON"));
            assert_eq!(v["error"], "invalid_request", "{what}: {v}");
        }
    }
}

/// `http.max_param_bytes` (4 KiB) and `http.max_body_bytes` (16 KiB), exactly and one byte
/// more, at the token endpoint: a clean RFC error each time, 413 for a body over the limit.
async fn requests_at_exactly_the_size_limits_are_answered_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let (cc, secret) = app.cc_client("cc");
    let token = app.endpoint("token_endpoint").await;
    let param = app.settings.http.max_param_bytes;
    let limit = app.settings.http.max_body_bytes;
    for extra in [0, 1] {
        let code = "c".repeat(param + extra);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        let r = app.token_basic(&cc, &secret, &form).await;
        assert_eq!(r.status(), 400, "a code of {} bytes", param + extra);
        let v: Value = r.json().await.unwrap();
        // One byte over http.max_param_bytes is refused before anything reads it.
        let allowed = if extra == 0 {
            &["invalid_grant", "unauthorized_client"][..]
        } else {
            &["invalid_request"][..]
        };
        assert!(
            allowed.contains(&v["error"].as_str().unwrap()),
            "{} bytes: {v}",
            param + extra
        );

        let prefix = "grant_type=client_credentials&pad=";
        let body = format!("{prefix}{}", "p".repeat(limit + extra - prefix.len()));
        assert_eq!(body.len(), limit + extra);
        let what = format!("a body of {} bytes", body.len());
        let request = app
            .http
            .post(&token)
            .basic_auth(&cc, Some(&secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let (status, _, bytes) = answer(request, &what).await;
        let v: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{what}: not JSON"));
        if extra == 0 {
            // Within the body limit, but its one parameter is over http.max_param_bytes.
            assert_eq!(status, 400, "{what}: {v}");
            assert_eq!(v["error"], "invalid_request", "{what}");
        } else {
            assert_eq!(status, 413, "{what}: {v}");
            assert_eq!(v["error"], "invalid_request", "{what}");
        }
    }
    // A request line far over any limit (60 kB of query) is refused, not dropped.
    let authorize = app.endpoint("authorization_endpoint").await;
    let url = format!("{authorize}?client_id=cc&state={}", "s".repeat(60_000));
    let (status, _, _) = answer(app.http.get(url), "a 60 kB query").await;
    assert!((400..500).contains(&status), "a 60 kB query: {status}");
}
