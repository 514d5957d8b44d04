//! JWT client authentication (RFC 7523 §2.2, OIDC Core §9): `client_secret_jwt` and
//! `private_key_jwt` at the token, introspection and revocation endpoints, keys from `jwks` and a
//! `jwks_uri`, and SECURITY.md attacks 1–5 and 7 against client assertions and
//! `id_token_hint`. Client keys are made here with josekit and openssl, never with Sigil's code.

mod attacks;
mod id_token_hint;
pub mod keys;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use keys::{ClientKey, ASSERTION_TYPE};

both_backends!(
    client_secret_jwt_at_the_token_introspection_and_revocation_endpoints,
    private_key_jwt_with_jwks_for_every_algorithm,
    private_key_jwt_with_a_jwks_uri_cached_and_refetched_for_a_new_kid,
    jwks_uri_on_a_private_address_is_refused_by_default,
    one_method_per_client_and_per_request,
    registration_refuses_jwt_methods_without_fitting_keys,
);

/// The body of every client authentication failure (RFC 6749 §5.2).
pub fn assert_invalid_client(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(
        body,
        &json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        "{what}"
    );
}

/// Claims a well-behaved client puts in its assertion (RFC 7523 §3), `aud` the token endpoint.
pub async fn claims(app: &TestApp, client_id: &str) -> Value {
    let token_endpoint = app.discovery().await["token_endpoint"].clone();
    let now = app.state.clock.now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "iat": now,
        "exp": now + 60,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// POSTs `form` plus the assertion to an endpoint named in discovery; (status, JSON body).
pub async fn post(
    app: &TestApp,
    endpoint: &str,
    assertion: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let url = app.endpoint(endpoint).await;
    let mut body: Vec<(&str, &str)> = form.to_vec();
    body.push(("client_assertion_type", ASSERTION_TYPE));
    body.push(("client_assertion", assertion));
    let r = app.http.post(url).form(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A client_credentials token request authenticated by `assertion`.
pub async fn token(app: &TestApp, assertion: &str) -> (u16, Value) {
    post(
        app,
        "token_endpoint",
        assertion,
        &[("grant_type", "client_credentials")],
    )
    .await
}

/// Registers a client_credentials client with the given authentication metadata.
pub fn register(app: &TestApp, client_id: &str, auth: Value) -> Value {
    let mut metadata = json!({"grant_types": ["client_credentials"], "scope": "api:read"});
    for (k, v) in auth.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    app.register_client(client_id, &metadata)
}

/// A `private_key_jwt` client whose `jwks` holds `key`.
pub fn key_client(app: &TestApp, client_id: &str, key: &ClientKey) {
    let r = register(
        app,
        client_id,
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key.public_jwk]}}),
    );
    assert!(r.get("client_secret").is_none(), "no secret for {r}");
}

/// An HTTP server on 127.0.0.1 answering every request with `body` (or 500 while `set_down`),
/// counting connections: a count of 0 proves Sigil never reached it.
pub struct LocalServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
    body: Arc<Mutex<String>>,
    down: Arc<AtomicBool>,
}

impl LocalServer {
    pub fn start(body: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(Mutex::new(body));
        let down = Arc::new(AtomicBool::new(false));
        let (h, b, d) = (hits.clone(), body.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16_384 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = match d.load(Ordering::SeqCst) {
                    true => ("500 Internal Server Error", "{}".to_string()),
                    false => ("200 OK", b.lock().unwrap().clone()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            url,
            hits,
            body,
            down,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn serve(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

async fn client_secret_jwt_at_the_token_introspection_and_revocation_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = app.discovery().await;
    for list in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        for method in ["client_secret_jwt", "private_key_jwt"] {
            assert!(
                doc[list].as_array().unwrap().contains(&json!(method)),
                "{list}"
            );
        }
    }
    assert_eq!(
        doc["token_endpoint_auth_signing_alg_values_supported"],
        json!(["HS256", "RS256", "PS256", "ES256", "EdDSA"])
    );
    let r = register(
        &app,
        "hmac-app",
        json!({"token_endpoint_auth_method": "client_secret_jwt"}),
    );
    let key = ClientKey::hmac(r["client_secret"].as_str().unwrap());
    let (status, body) = token(&app, &key.sign(&claims(&app, "hmac-app").await)).await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        crate::helpers::jwt_parts(&access_token).1["client_id"],
        "hmac-app"
    );

    // Introspection, with `aud` the issuer this time (RFC 7523 §3 item 3).
    let mut c = claims(&app, "hmac-app").await;
    c["aud"] = app.issuer().into();
    let (status, body) = post(
        &app,
        "introspection_endpoint",
        &key.sign(&c),
        &[("token", &access_token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "hmac-app");

    // Revocation (RFC 7009 §2.1 authenticates the client the same way), then the token is dead.
    let (status, body) = post(
        &app,
        "revocation_endpoint",
        &key.sign(&claims(&app, "hmac-app").await),
        &[("token", &access_token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &app,
        "introspection_endpoint",
        &key.sign(&claims(&app, "hmac-app").await),
        &[("token", &access_token)],
    )
    .await;
    assert_eq!((status, body), (200, json!({"active": false})));

    // Signed with another secret: refused.
    let wrong = ClientKey::hmac("0123456789012345678901234567890123456789012");
    let (status, body) = token(&app, &wrong.sign(&claims(&app, "hmac-app").await)).await;
    assert_invalid_client(status, &body, "wrong secret");
}

async fn private_key_jwt_with_jwks_for_every_algorithm(backend: Backend) {
    let app = spawn_app(backend).await;
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let key = ClientKey::generate(alg);
        let id = format!("keys-{}", alg.to_lowercase());
        let mut jwks_key = key.public_jwk.clone();
        let mut auth = json!({"token_endpoint_auth_method": "private_key_jwt"});
        match alg {
            // PS256 pinned by the registration, ES256 by the key's own `alg`; RS256 and EdDSA
            // by the key type.
            "PS256" => auth["token_endpoint_auth_signing_alg"] = "PS256".into(),
            "ES256" => jwks_key["alg"] = "ES256".into(),
            _ => {}
        }
        auth["jwks"] = json!({"keys": [jwks_key]});
        let r = register(&app, &id, auth);
        assert!(r.get("client_secret").is_none(), "{alg}: no secret");
        let (status, body) = token(&app, &key.sign(&claims(&app, &id).await)).await;
        assert_eq!(status, 200, "{alg}: {body}");
        // Without a kid, the client's keys of that algorithm are tried.
        let (status, body) = token(&app, &key.sign_without_kid(&claims(&app, &id).await)).await;
        assert_eq!(status, 200, "{alg} without kid: {body}");
        // client_id in the form, naming the same client, is fine (RFC 7521 §4.2).
        let assertion = key.sign(&claims(&app, &id).await);
        let (status, body) = post(
            &app,
            "token_endpoint",
            &assertion,
            &[("grant_type", "client_credentials"), ("client_id", &id)],
        )
        .await;
        assert_eq!(status, 200, "{alg} with client_id: {body}");
    }
}

async fn private_key_jwt_with_a_jwks_uri_cached_and_refetched_for_a_new_kid(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.outbound.allow_private_networks = true).await;
    let first = ClientKey::generate("ES256");
    let server = LocalServer::start(json!({"keys": [first.public_jwk]}).to_string());
    register(
        &app,
        "remote-keys",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url}),
    );
    let (status, body) = token(&app, &first.sign(&claims(&app, "remote-keys").await)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.hits(), 1);
    let (status, _) = token(&app, &first.sign(&claims(&app, "remote-keys").await)).await;
    assert_eq!(status, 200);
    assert_eq!(server.hits(), 1, "the keys are cached");

    // The client rotates to a new key. A kid Sigil has not seen is looked up again, but not
    // within a minute of the last fetch.
    let second = ClientKey::generate("RS256");
    server.serve(json!({"keys": [second.public_jwk]}).to_string());
    let (status, body) = token(&app, &second.sign(&claims(&app, "remote-keys").await)).await;
    assert_invalid_client(status, &body, "new kid within a minute");
    assert_eq!(server.hits(), 1, "no refetch within a minute");
    app.state.clock.advance(61);
    let (status, body) = token(&app, &second.sign(&claims(&app, "remote-keys").await)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.hits(), 2, "refetched for the new kid");
    // The old key left the client's set.
    let (status, body) = token(&app, &first.sign(&claims(&app, "remote-keys").await)).await;
    assert_invalid_client(status, &body, "retired key");
    // Unknown kids do not make Sigil fetch again and again.
    for n in 0..5 {
        let (status, _) = token(
            &app,
            &second.sign_with_kid(&claims(&app, "remote-keys").await, &format!("other-{n}")),
        )
        .await;
        assert_eq!(status, 401);
    }
    assert_eq!(server.hits(), 2, "at most one fetch a minute");
    // After the cache's lifetime the keys are fetched again.
    app.state.clock.advance(301);
    let (status, _) = token(&app, &second.sign(&claims(&app, "remote-keys").await)).await;
    assert_eq!(status, 200);
    assert_eq!(server.hits(), 3, "stale keys are refreshed");
}

async fn jwks_uri_on_a_private_address_is_refused_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = ClientKey::generate("ES256");
    let server = LocalServer::start(json!({"keys": [key.public_jwk]}).to_string());
    register(
        &app,
        "loopback-keys",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url}),
    );
    let (status, body) = token(&app, &key.sign(&claims(&app, "loopback-keys").await)).await;
    assert_invalid_client(status, &body, "jwks_uri on 127.0.0.1");
    assert_eq!(server.hits(), 0, "Sigil never connected");
}

async fn one_method_per_client_and_per_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let hmac_secret = register(
        &app,
        "hmac-app",
        json!({"token_endpoint_auth_method": "client_secret_jwt"}),
    )["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let hmac = ClientKey::hmac(&hmac_secret);
    let rsa = ClientKey::generate("RS256");
    key_client(&app, "key-app", &rsa);
    let (basic_id, basic_secret) = app.cc_client("basic-app");

    // A client_secret_jwt client cannot use its secret directly, and a private_key_jwt client
    // has no secret to use.
    let r = app
        .token_basic(
            "hmac-app",
            &hmac_secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
    let status = r.status().as_u16();
    assert_invalid_client(
        status,
        &r.json().await.unwrap(),
        "secret for client_secret_jwt",
    );
    let url = app.endpoint("token_endpoint").await;
    let r = app
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "key-app"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_invalid_client(
        status,
        &r.json().await.unwrap(),
        "no credentials for private_key_jwt",
    );
    // A client_secret_basic client cannot send an assertion, even one made with its secret.
    let assertion = ClientKey::hmac(&basic_secret).sign(&claims(&app, &basic_id).await);
    let (status, body) = token(&app, &assertion).await;
    assert_invalid_client(status, &body, "assertion for client_secret_basic");
    // An HMAC assertion for the private_key_jwt client, and an RSA one for the HMAC client.
    let (status, body) = token(&app, &hmac.sign(&claims(&app, "key-app").await)).await;
    assert_invalid_client(status, &body, "HS256 for private_key_jwt");
    let (status, body) = token(&app, &rsa.sign(&claims(&app, "hmac-app").await)).await;
    assert_invalid_client(status, &body, "RS256 for client_secret_jwt");
    // An unknown client answers the same.
    let (status, body) = token(&app, &rsa.sign(&claims(&app, "nobody").await)).await;
    assert_invalid_client(status, &body, "unknown client");

    // RFC 6749 §2.3: one method per request.
    let assertion = hmac.sign(&claims(&app, "hmac-app").await);
    let r = app
        .http
        .post(&url)
        .basic_auth("hmac-app", Some(&hmac_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let (status, body) = post(
        &app,
        "token_endpoint",
        &assertion,
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &hmac_secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_request"))
    );
    // RFC 7521 §4.2: both parameters are required; another assertion type is an unsupported
    // authentication method (RFC 6749 §5.2: invalid_client).
    let r = app
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "assertion without its type");
    for kind in [
        "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let r = app
            .http
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", kind),
                ("client_assertion", &assertion),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert_invalid_client(status, &r.json().await.unwrap(), kind);
    }
    // The untouched assertion still works: none of the refusals above used up its jti.
    let (status, body) = token(&app, &assertion).await;
    assert_eq!(status, 200, "{body}");
}

async fn registration_refuses_jwt_methods_without_fitting_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let ec = ClientKey::generate("ES256");
    let add = |id: &str, metadata: Value| {
        let mut m = json!({"grant_types": ["client_credentials"]});
        for (k, v) in metadata.as_object().unwrap() {
            m[k] = v.clone();
        }
        app.sigil(
            &["client", "add", "--client-id", id, "--metadata", "-"],
            Some(&m.to_string()),
        )
    };
    for (what, metadata) in [
        (
            "private_key_jwt without keys",
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
        ),
        (
            "private_key_jwt with only a symmetric key",
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        (
            "private_key_jwt pinned to RS256 with an EC key",
            json!({"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "RS256", "jwks": {"keys": [ec.public_jwk]}}),
        ),
        (
            "private_key_jwt with HS256",
            json!({"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "HS256", "jwks": {"keys": [ec.public_jwk]}}),
        ),
        (
            "client_secret_jwt with RS256",
            json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "RS256"}),
        ),
        (
            "client_secret_jwt with none",
            json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "none"}),
        ),
    ] {
        let out = add("refused", metadata);
        assert!(!out.status.success(), "{what} was accepted");
        let err = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(err.contains("invalid_client_metadata"), "{what}: {err}");
    }
    let out = app.sigil(&["client", "show", "refused"], None);
    assert!(!out.status.success(), "nothing was registered");
}
