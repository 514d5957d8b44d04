//! SECURITY.md 30: `HTTP(S)_PROXY` / `ALL_PROXY` in the environment never carry Sigil's own
//! requests (a client's `jwks_uri`, back-channel logout) past the private-network rule: a proxy
//! would resolve and connect in Sigil's place. The real binary runs with every proxy variable
//! pointing at a listener that records connections; a client's `jwks_uri` names a private
//! address by a DNS name (`localhost`), so only the resolver, not a check of the URL, can
//! refuse it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{test_settings, Backend};
use crate::pg_cluster::free_port;
use crate::server_process::{migrate, register_client, settings_on, ServerProcess};

both_backends!(attack30_a_proxy_from_the_environment_never_carries_outbound_requests);

/// A listener that counts the connections made to it.
async fn recorder() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, seen)
}

/// A client assertion for `client_id` that names a key: Sigil must fetch the client's keys
/// before it can judge the (bogus) signature.
fn assertion(client_id: &str, audience: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.AAAA",
        b64(json!({"alg": "RS256", "kid": "k1"})),
        b64(
            json!({"iss": client_id, "sub": client_id, "aud": audience, "iat": now,
                   "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string()})
        )
    )
}

async fn attack30_a_proxy_from_the_environment_never_carries_outbound_requests(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (settings, _pg) = test_settings(backend, dir.path());
    let (proxy_port, proxied) = recorder().await;
    let (target_port, reached) = recorder().await;
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let mut env: Vec<(&str, &str)> = Vec::new();
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        env.push((name, &proxy));
    }
    let clients = [
        ("plain", format!("http://localhost:{target_port}/jwks")),
        ("tls", format!("https://localhost:{target_port}/jwks")),
    ];
    migrate(&settings, dir.path());
    for (id, jwks_uri) in &clients {
        let metadata = json!({"grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri});
        register_client(&settings, dir.path(), id, &metadata);
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // With the private-network rule on (the default): refused, and nothing reaches either.
    let server = ServerProcess::start(
        &settings_on(settings.clone(), free_port()),
        dir.path(),
        &env,
    )
    .await;
    let token = server.url("/token");
    for round in 0..3 {
        for (id, _) in &clients {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion(id, &token)),
            ];
            let r = http.post(&token).form(&form).send().await.unwrap();
            assert_eq!(r.status(), 401, "round {round}: {id} fails closed");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "invalid_client");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(proxied.load(Ordering::SeqCst), 0, "the proxy was asked");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the private target was reached"
    );
    drop(server);

    // The recorders do record: with private targets allowed, the fetch goes straight to the
    // target — still never through the proxy.
    let server = ServerProcess::start(
        &settings_on(settings.clone(), free_port()),
        dir.path(),
        &[
            env.as_slice(),
            &[("SIGIL_OUTBOUND__ALLOW_PRIVATE_NETWORKS", "true")],
        ]
        .concat(),
    )
    .await;
    let token = server.url("/token");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "plain"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", &assertion("plain", &token)),
    ];
    let r = http.post(&token).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 401, "the target serves no keys");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        reached.load(Ordering::SeqCst) >= 1,
        "the target was not reached"
    );
    assert_eq!(proxied.load(Ordering::SeqCst), 0, "the proxy was asked");
}
